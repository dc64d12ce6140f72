// pre-delete hook of the pos-relay chart (runs on `helm uninstall`, before
// anything else is deleted, so the operator is still running): deletes every
// RelayPool and waits until the operator's finalizers have removed their
// relays from the discovery registry and let the pools go.
// Plain Node (no dependencies); in-cluster it uses the pod's ServiceAccount.
//
// env: WATCH_NAMESPACE (empty = all namespaces), TIMEOUT_SECONDS (300),
//      REMOVE_FINALIZERS_ON_TIMEOUT (false), KUBE_API and KUBE_TOKEN_FILE
//      (defaults: in-cluster); the API's CA comes from NODE_EXTRA_CA_CERTS.
import { readFileSync } from 'node:fs'

const api = process.env.KUBE_API ||
  `https://${process.env.KUBERNETES_SERVICE_HOST}:${process.env.KUBERNETES_SERVICE_PORT ?? '443'}`
const tokenFile = process.env.KUBE_TOKEN_FILE || '/var/run/secrets/kubernetes.io/serviceaccount/token'
const ns = process.env.WATCH_NAMESPACE || ''
// strict, like the CLI's boolean env vars: a typo must not silently mean "false" (or "true")
function envBool (name, fallback) {
  const v = (process.env[name] ?? '').trim()
  if (v === '') return fallback
  if (/^(true|1|yes|on)$/i.test(v)) return true
  if (/^(false|0|no|off)$/i.test(v)) return false
  process.stderr.write(`${name} must be true or false (also 1/0, yes/no, on/off), got "${v}"\n`)
  process.exit(2)
}
const timeoutSeconds = Number(process.env.TIMEOUT_SECONDS || 300)
if (!(timeoutSeconds > 0)) { process.stderr.write(`TIMEOUT_SECONDS must be a positive number, got "${process.env.TIMEOUT_SECONDS}"\n`); process.exit(2) }
const timeoutMs = timeoutSeconds * 1000
const force = envBool('REMOVE_FINALIZERS_ON_TIMEOUT', false)
const base = `/apis/pos-relay.io/v1alpha1${ns ? `/namespaces/${ns}` : ''}/relaypools`

const log = (event, fields = {}) => process.stdout.write(JSON.stringify({ time: new Date().toISOString(), event, ...fields }) + '\n')

async function call (method, path, body, contentType = 'application/json') {
  const token = readFileSync(tokenFile, 'utf8').trim()
  const res = await fetch(api + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json', ...(body ? { 'Content-Type': contentType } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(15_000)
  })
  const text = await res.text()
  let json
  try { json = JSON.parse(text) } catch { json = undefined }
  return { status: res.status, json, text }
}

async function list () {
  const r = await call('GET', base)
  if (r.status === 404) return null // CRD not installed: nothing to clean up
  if (r.status !== 200) throw new Error(`GET ${base}: ${r.status} ${r.text.slice(0, 500)}`)
  return r.json.items
}

const pathOf = (p) => `/apis/pos-relay.io/v1alpha1/namespaces/${p.metadata.namespace}/relaypools/${p.metadata.name}`
const idOf = (p) => `${p.metadata.namespace}/${p.metadata.name}`

async function main () {
  const pools = await list()
  if (pools == null) { log('crd_absent'); return 0 }
  log('deleting', { relaypools: pools.map(idOf) })
  for (const p of pools) {
    const r = await call('DELETE', pathOf(p), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' })
    if (r.status !== 200 && r.status !== 202 && r.status !== 404) throw new Error(`DELETE ${idOf(p)}: ${r.status} ${r.text.slice(0, 500)}`)
  }
  const deadline = Date.now() + timeoutMs
  let remaining = pools
  for (;;) {
    remaining = (await list()) ?? []
    if (remaining.length === 0) { log('done'); return 0 }
    if (Date.now() >= deadline) break
    log('waiting', { relaypools: remaining.map((p) => ({ id: idOf(p), finalizers: p.metadata.finalizers ?? [] })) })
    await new Promise((resolve) => setTimeout(resolve, 2000))
  }
  if (!force) {
    log('timeout', { relaypools: remaining.map(idOf), hint: 'is the operator running? set cleanup.removeFinalizersOnTimeout=true to force' })
    return 1
  }
  let failed = 0
  for (const p of remaining) {
    const r = await call('PATCH', pathOf(p), { metadata: { finalizers: null } }, 'application/merge-patch+json')
    if (r.status === 200 || r.status === 404) log('finalizers_removed', { id: idOf(p) })
    else { failed++; log('finalizers_not_removed', { id: idOf(p), status: r.status, message: r.json?.message ?? r.text.slice(0, 300) }) }
  }
  return failed === 0 ? 0 : 1
}

main().then((code) => { process.exitCode = code }, (err) => { log('error', { message: err.message }); process.exitCode = 1 })
