import { FIELD_MANAGER, FINALIZER, poolsPath, type RelayPool } from './api.js'
import { ApiError, isNotFound, JSON_PATCH, type KubeClient } from './kube.js'

/**
 * Removes the operator's finalizer (at `index`) from a pool with a JSON patch
 * that first tests it is still there: 'moved' when the list changed under us
 * (retry with a fresh cache), 'gone' when the pool no longer exists.
 */
export async function removeFinalizer (client: KubeClient, pool: RelayPool, index: number): Promise<'removed' | 'moved' | 'gone'> {
  try {
    await client.request('PATCH', `${poolsPath(pool.metadata.namespace ?? 'default')}/${pool.metadata.name}`, {
      contentType: JSON_PATCH,
      query: { fieldManager: FIELD_MANAGER },
      body: [
        { op: 'test', path: `/metadata/finalizers/${index}`, value: FINALIZER },
        { op: 'remove', path: `/metadata/finalizers/${index}` }
      ]
    })
    return 'removed'
  } catch (err) {
    if (isNotFound(err)) return 'gone'
    if (err instanceof ApiError && (err.code === 422 || err.code === 409)) return 'moved'
    throw err
  }
}
