import { Command } from 'commander'
import { ensureAccountSecrets } from '../ensure-secrets.js'
import { intArg, option } from '../options.js'

function label (value: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = value.indexOf('=')
  if (at < 1) throw new Error(`--label must be key=value, got "${value}"`)
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) }
}

interface EnsureFlags { namespace: string, ticketKeysSecret?: string, adminSecret?: string, generation: number, retireAfter: number, rolloutDeployment?: string, label?: Record<string, string>, kubeconfig?: string }

export function ensureSecretsCommand (): Command {
  return new Command('ensure-secrets')
    .description('Create the accounts Secrets (ticket signing keys, admin secret) in Kubernetes when absent, and rotate the ticket keys when --generation rises. The Helm chart runs this as a pre-install/pre-upgrade hook so that Helm never renders key material')
    .addOption(option('-n, --namespace <ns>', 'namespace of the Secrets').makeOptionMandatory())
    .addOption(option('--ticket-keys-secret <name>', 'Secret holding the ticket keys (key ticket-keys.json: JSON array of Ed25519 JWKs, first signs)'))
    .addOption(option('--admin-secret <name>', 'Secret holding the admin secret (key admin-secret)'))
    .addOption(option('--generation <n>', 'raise by one to rotate: a new signing key is put in front, the old ones stay published until retired').argParser(intArg('--generation')).default(1))
    .addOption(option('--retire-after <seconds>', 'a superseded key is dropped at the first run this long after it stopped signing (longer than any ticket lives)').argParser(intArg('--retire-after')).default(7200))
    .addOption(option('--rollout-deployment <name>', 'Deployment (discovery) whose pod template gets annotation pos-relay.io/ticket-kids when the key set changes, so it restarts with the new keys'))
    .addOption(option('--label <key=value>', 'label for created Secrets (repeatable)').argParser(label))
    .addOption(option('--kubeconfig <file>', 'kubeconfig (default: in-cluster, then KUBECONFIG/~/.kube/config)'))
    .action(async (opts: EnsureFlags) => {
      if (opts.ticketKeysSecret == null && opts.adminSecret == null) throw new Error('nothing to do: give --ticket-keys-secret and/or --admin-secret')
      if (opts.retireAfter < 3600) throw new Error('--retire-after must be at least 3600 seconds (the longest ticket lifetime)')
      // the Kubernetes client loads only when this command runs
      const { kubeSecretsApi } = await import('../kube-secrets-api.js')
      await ensureAccountSecrets(kubeSecretsApi(opts.kubeconfig, opts.namespace), {
        ...(opts.ticketKeysSecret != null ? { ticketKeysSecret: opts.ticketKeysSecret } : {}),
        ...(opts.adminSecret != null ? { adminSecret: opts.adminSecret } : {}),
        ...(opts.rolloutDeployment != null ? { rolloutDeployment: opts.rolloutDeployment } : {}),
        generation: opts.generation,
        retireAfterSeconds: opts.retireAfter,
        labels: opts.label ?? {},
        log: (e) => process.stdout.write(JSON.stringify({ ...e, namespace: opts.namespace }) + '\n')
      })
    })
}
