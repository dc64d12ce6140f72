import { Command } from 'commander'
import { ensureAccountSecrets } from '../ensure-secrets.js'
import { ensureRegistrySecrets } from '../ensure-registry-secrets.js'
import { intArg, option } from '../options.js'

function label (value: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = value.indexOf('=')
  if (at < 1) throw new Error(`--label must be key=value, got "${value}"`)
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) }
}

interface EnsureFlags {
  namespace: string
  ticketKeysSecret?: string
  adminSecret?: string
  generation: number
  retireAfter: number
  rolloutDeployment?: string
  discoverySecret?: string
  apiUrl?: string
  redisSecret?: string
  redisSecretExisting?: boolean
  redisHost?: string
  label?: Record<string, string>
  kubeconfig?: string
}

export function ensureSecretsCommand (): Command {
  return new Command('ensure-secrets')
    .description('Create the chart\'s Secrets in Kubernetes when absent (accounts: ticket signing keys, admin secret; registry: the discovery Secret with the p2p secret, the bundled Redis\'s password), and rotate the ticket keys when --generation rises. The Helm chart runs this as a pre-install/pre-upgrade hook so that Helm never renders key material')
    .addOption(option('-n, --namespace <ns>', 'namespace of the Secrets').makeOptionMandatory())
    .addOption(option('--ticket-keys-secret <name>', 'Secret holding the ticket keys (key ticket-keys.json: JSON array of Ed25519 JWKs, first signs)'))
    .addOption(option('--admin-secret <name>', 'Secret holding the admin secret (key admin-secret)'))
    .addOption(option('--generation <n>', 'raise by one to rotate: a new signing key is put in front, the old ones stay published until retired').argParser(intArg('--generation')).default(1))
    .addOption(option('--retire-after <seconds>', 'a superseded key is dropped at the first run this long after it stopped signing (longer than any ticket lives)').argParser(intArg('--retire-after')).default(7200))
    .addOption(option('--rollout-deployment <name>', 'Deployment (discovery) whose pod template gets annotation pos-relay.io/ticket-kids when the key set changes, so it restarts with the new keys'))
    .addOption(option('--discovery-secret <name>', 'discovery Secret: p2p-secret generated when absent (kept), api-url and redis-url set on every run'))
    .addOption(option('--api-url <url>', 'the discovery Secret\'s api-url (the discovery Service\'s in-cluster URL)'))
    .addOption(option('--redis-secret <name>', 'Secret with the bundled Redis\'s password (key password), generated when absent'))
    .addOption(option('--redis-secret-existing', 'the --redis-secret is the user\'s: read it, never create it'))
    .addOption(option('--redis-host <host:port>', 'the bundled Redis: the discovery Secret\'s redis-url is redis://:<password>@<host:port>; without it, redis-url comes from env POS_RELAY_REDIS_URL'))
    .addOption(option('--label <key=value>', 'label for created Secrets (repeatable)').argParser(label))
    .addOption(option('--kubeconfig <file>', 'kubeconfig (default: in-cluster, then KUBECONFIG/~/.kube/config)'))
    .action(async (opts: EnsureFlags) => {
      if (opts.ticketKeysSecret == null && opts.adminSecret == null && opts.discoverySecret == null && opts.redisSecret == null) {
        throw new Error('nothing to do: give --ticket-keys-secret, --admin-secret, --discovery-secret and/or --redis-secret')
      }
      if (opts.retireAfter < 3600) throw new Error('--retire-after must be at least 3600 seconds (the longest ticket lifetime)')
      // the Kubernetes client loads only when this command runs
      const { kubeSecretsApi } = await import('../kube-secrets-api.js')
      const api = kubeSecretsApi(opts.kubeconfig, opts.namespace)
      const log = (e: Record<string, unknown>): void => { process.stdout.write(JSON.stringify({ ...e, namespace: opts.namespace }) + '\n') }
      const externalUrl = process.env.POS_RELAY_REDIS_URL
      await ensureRegistrySecrets(api, {
        ...(opts.discoverySecret != null ? { discoverySecret: opts.discoverySecret } : {}),
        ...(opts.apiUrl != null ? { apiUrl: opts.apiUrl } : {}),
        ...(opts.redisSecret != null ? { redisSecret: opts.redisSecret, createRedisSecret: opts.redisSecretExisting !== true } : {}),
        ...(opts.redisHost != null ? { redisHost: opts.redisHost } : {}),
        ...(externalUrl != null && externalUrl !== '' ? { redisUrl: externalUrl } : {}),
        labels: opts.label ?? {},
        log
      })
      if (opts.ticketKeysSecret == null && opts.adminSecret == null) return
      await ensureAccountSecrets(api, {
        ...(opts.ticketKeysSecret != null ? { ticketKeysSecret: opts.ticketKeysSecret } : {}),
        ...(opts.adminSecret != null ? { adminSecret: opts.adminSecret } : {}),
        ...(opts.rolloutDeployment != null ? { rolloutDeployment: opts.rolloutDeployment } : {}),
        generation: opts.generation,
        retireAfterSeconds: opts.retireAfter,
        labels: opts.label ?? {},
        log
      })
    })
}
