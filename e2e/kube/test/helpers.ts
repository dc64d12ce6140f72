import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pollUntil } from '@pos-relay/testing'
import { CHART_DIR, ensureKubeBinaries, run, type ControlPlane, type ExecResult } from '../harness.ts'

let helmHome: string | undefined
process.once('exit', () => { if (helmHome != null) rmSync(helmHome, { recursive: true, force: true }) })

/** helm without a cluster (template, lint), with throwaway config/cache dirs. */
export async function helmOffline (args: string[]): Promise<ExecResult> {
  const bins = await ensureKubeBinaries()
  helmHome ??= mkdtempSync(join(tmpdir(), 'pos-relay-helm-'))
  return await run(bins.helm, args, {
    env: { HELM_CONFIG_HOME: join(helmHome, 'config'), HELM_CACHE_HOME: join(helmHome, 'cache'), HELM_DATA_HOME: join(helmHome, 'data'), KUBECONFIG: '/nonexistent' },
    timeoutMs: 120_000
  })
}

/** `helm template` of the chart; throws with helm's stderr on failure. */
export async function renderChart (setArgs: string[] = [], opts: { release?: string, namespace?: string, includeCrds?: boolean } = {}): Promise<string> {
  const r = await helmOffline(['template', opts.release ?? 'pos-relay', CHART_DIR, '--namespace', opts.namespace ?? 'pos-relay',
    ...(opts.includeCrds === true ? ['--include-crds'] : []), ...setArgs])
  assert.equal(r.code, 0, `helm template ${setArgs.join(' ')} failed:\n${r.stderr}`)
  return r.stdout
}

export interface Doc { kind: string, name: string, namespace?: string, text: string }

/** Splits multi-document YAML (helm output) into documents with their kind/name (top-level keys only). */
export function splitDocs (yaml: string): Doc[] {
  return yaml.split(/^---\s*$/m).map((text) => {
    const kind = /^kind:\s*(\S+)/m.exec(text)?.[1]
    const name = /^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]{2}name:\s*(\S+)/m.exec(text)?.[1]
    const namespace = /^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]{2}namespace:\s*(\S+)/m.exec(text)?.[1]
    return { kind: kind ?? '', name: (name ?? '').replace(/^"|"$/g, ''), ...(namespace != null ? { namespace } : {}), text }
  }).filter((d) => d.kind !== '')
}

/** kubectl that must succeed; returns stdout. */
export async function k (cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input)
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed:\n${r.stderr}`)
  return r.stdout
}

export async function kJson (cp: ControlPlane, args: string[]): Promise<any> {
  return JSON.parse(await k(cp, [...args, '-o', 'json']))
}

export async function ensureNamespace (cp: ControlPlane, name: string): Promise<void> {
  const r = await cp.kubectl(['get', 'namespace', name])
  if (r.code !== 0) await k(cp, ['create', 'namespace', name])
}

/** pollUntil with this suite's defaults: 15 s, every 200 ms */
export async function poll<T> (what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000, intervalMs = 200): Promise<T> {
  return await pollUntil(what, fn, { timeoutMs, intervalMs })
}
