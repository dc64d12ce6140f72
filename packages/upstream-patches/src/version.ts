import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Thrown when an upstream package is not a version a patch was written for,
 * or lacks the internals the patch relies on. Starting without the patch would
 * bring back the bug it works around, silently; so every patch fails loudly.
 */
export class UpstreamChangedError extends Error {
  override name = 'UpstreamChangedError'
}

/** What a patch was written for: a package and the exact versions checked against it. */
export interface UpstreamTarget {
  /** the patch's module, named in error messages, e.g. 'quic-read-backpressure' */
  patch: string
  package: string
  versions: readonly string[]
}

/**
 * The version of `pkg` that node resolves from `from` (a file URL or path;
 * default: this package), read from the first `node_modules/<pkg>/package.json`
 * found walking up, as node's resolution does. Undefined when not installed.
 */
export function installedVersion (pkg: string, from: string = import.meta.url): string | undefined {
  let dir = dirname(from.startsWith('file:') ? fileURLToPath(from) : from)
  while (true) {
    const manifest = join(dir, 'node_modules', pkg, 'package.json')
    if (existsSync(manifest)) return (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

/** Throws UpstreamChangedError unless the installed version of the target package is one the patch was written for. */
export function checkVersion (target: UpstreamTarget, from?: string): string {
  const version = installedVersion(target.package, from)
  if (version == null || !target.versions.includes(version)) {
    throw new UpstreamChangedError(
      `${target.package} ${version ?? '(not installed)'} is not a version the patch '${target.patch}' of @pos-relay/upstream-patches was written for (${target.versions.join(', ')}). ` +
      'Run packages/upstream-patches\' tests against it: if the test of the bug fails, upstream fixed it and the patch can go; ' +
      'otherwise re-check the patch and add the version to its list (see UPSTREAM.md).'
    )
  }
  return version
}

/** Throws UpstreamChangedError naming the patch and what is missing, unless `ok`. */
export function requireInternal (target: UpstreamTarget, ok: boolean, what: string): void {
  if (!ok) {
    throw new UpstreamChangedError(`${target.package} internals changed: ${what} (patch '${target.patch}' of @pos-relay/upstream-patches, written for ${target.versions.join(', ')}; see UPSTREAM.md)`)
  }
}
