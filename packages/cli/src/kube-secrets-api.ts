import { AppsV1Api, ApiException, CoreV1Api, PatchStrategy, setHeaderOptions, type V1Secret } from '@kubernetes/client-node'
import { loadKubeConfig } from '@pos-relay/operator'
import type { SecretObject, SecretsApi } from './ensure-secrets.js'

const code = (err: unknown): number | undefined => err instanceof ApiException ? err.code : undefined

/** SecretsApi over @kubernetes/client-node, in one namespace. */
export function kubeSecretsApi (kubeconfig: string | undefined, namespace: string): SecretsApi {
  const kc = loadKubeConfig(kubeconfig)
  const core = kc.makeApiClient(CoreV1Api)
  const apps = kc.makeApiClient(AppsV1Api)
  return {
    async read (name) {
      try { return await core.readNamespacedSecret({ name, namespace }) as SecretObject } catch (err) {
        if (code(err) === 404) return undefined
        throw err
      }
    },
    async create (secret) {
      try { await core.createNamespacedSecret({ namespace, body: secret as V1Secret }); return 'created' } catch (err) {
        if (code(err) === 409) return 'exists'
        throw err
      }
    },
    async replace (secret) {
      try { await core.replaceNamespacedSecret({ name: secret.metadata.name, namespace, body: secret as V1Secret }); return 'replaced' } catch (err) {
        if (code(err) === 409) return 'conflict'
        throw err
      }
    },
    async annotatePodTemplate (name, annotations) {
      try {
        await apps.patchNamespacedDeployment({ name, namespace, body: { spec: { template: { metadata: { annotations } } } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch))
        return true
      } catch (err) {
        if (code(err) === 404) return false
        throw err
      }
    }
  }
}
