import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { Command, InvalidArgumentError } from 'commander'
import type { KubeConfig } from '@kubernetes/client-node'
// @pos-relay/operator (and @kubernetes/client-node) load only when this command runs: a relay process should not carry them
import { createLogger, MAX_TIMER_SECONDS, parseBoolean } from '@pos-relay/shared'
import { checkRedisUrl, configError, intArg, LOG_LEVEL_HELP, logLevelArg, option } from '../options.js'
import { handleShutdown } from '../shutdown.js'

export const DEFAULT_OPERATOR_METRICS_PORT = 9374

interface OperatorCliOptions {
  kubeconfig?: string
  namespace?: string
  metricsPort: number
  metricsHost: string
  leaderElect: boolean
  leaderElectionNamespace?: string
  leaseName: string
  identity?: string
  leaseDuration: number
  renewDeadline: number
  retryPeriod: number
  redis?: string
  registryTtl: number
  relayImage?: string
  relayImagePullPolicy?: string
  relayPodSecurityContext?: Record<string, unknown>
  relayContainerSecurityContext?: Record<string, unknown>
  relayScrapeAnnotations: boolean
  allowedPrivilegedHostPorts: number[]
  workers: number
  resyncPeriod: number
  logLevel: string
}

/** the registry TTL range RelayPool's spec.discovery.ttlSeconds allows */
const MAX_REGISTRY_TTL_SECONDS = 3600

/**
 * seconds, decimals allowed (short lease timings in tests); at most what a
 * timer holds: setTimeout runs a longer one after 1 ms, which would turn a
 * long resync period into a busy loop
 */
function secondsArg (name: string) {
  return (value: string): number => {
    if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0 || Number(value) > MAX_TIMER_SECONDS) {
      throw new InvalidArgumentError(`${name} must be a positive number of seconds, at most ${MAX_TIMER_SECONDS}, got "${value}"`)
    }
    return Number(value)
  }
}

/** a comma-separated list of ports below 1024 ("443" or "80,443"; empty: none) */
function privilegedPortsArg (value: string): number[] {
  const ports = value.split(',').map((p) => p.trim()).filter((p) => p !== '')
  for (const p of ports) {
    if (!/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 1023) throw new InvalidArgumentError(`--allowed-privileged-host-ports takes ports from 1 to 1023 separated by commas, got "${p}" (ports from 1024 up need no permission)`)
  }
  return ports.map(Number)
}

/**
 * a securityContext as JSON (the chart passes its values with toJson): an object, else a clear
 * error; its fields are left to the API server, which validates the pod the operator applies
 */
function securityContextArg (name: string) {
  return (value: string): Record<string, unknown> => {
    let parsed: unknown
    try { parsed = JSON.parse(value) } catch { throw new InvalidArgumentError(`${name} takes a JSON object (a securityContext), got text that is not JSON`) }
    if (parsed == null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError(`${name} takes a JSON object (a securityContext), got ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)}`)
    return parsed as Record<string, unknown>
  }
}

/** the one strict boolean parser (shared with the env vars of the other commands) */
function boolArg (name: string) {
  return (value: string): boolean => {
    let parsed: boolean | undefined
    try {
      parsed = parseBoolean(name, value)
    } catch (err: any) {
      throw new InvalidArgumentError(err.message)
    }
    if (parsed == null) throw new InvalidArgumentError(`${name} must be true or false, got an empty value`)
    return parsed
  }
}

/**
 * The cluster to talk to: --kubeconfig, else KUBECONFIG loaded by client-node's loadFromDefault (which
 * splits a list on ":" and merges the files, first one winning, as kubectl does), else undefined for
 * the operator's own choice (in-cluster, then ~/.kube/config). Passing KUBECONFIG on as one file path
 * made `KUBECONFIG=a:b` fail with ENOENT.
 */
export async function kubeConfigFrom (flag: string | undefined): Promise<string | KubeConfig | undefined> {
  if (flag != null && flag !== '') return flag
  const list = process.env.KUBECONFIG
  if (list == null || list === '') return undefined
  const { KubeConfig } = await import('@kubernetes/client-node')
  const kc = new KubeConfig()
  kc.loadFromDefault()
  if (kc.getCurrentCluster() == null) throw configError(`KUBECONFIG (${list}) names no current context with a cluster`)
  return kc
}

/** namespace of the operator's own pod: POD_NAMESPACE, else the service account's, else "default" */
function ownNamespace (): string {
  if (process.env.POD_NAMESPACE != null && process.env.POD_NAMESPACE !== '') return process.env.POD_NAMESPACE
  try { return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() } catch { return 'default' }
}

export function operatorCommand (): Command {
  return new Command('operator')
    .description('Run the Kubernetes operator: reconciles RelayPools into relay pods on hostPort 7373 and keeps the discovery registry (Redis) in step with the Ready relays')
    // not bound to KUBECONFIG: that variable holds a list (a:b), which kubeConfigFrom() reads as kubectl does
    .addOption(option('--kubeconfig <file>', 'kubeconfig file; without it KUBECONFIG (a list of files separated by ":", merged as kubectl does), else the in-cluster service account, else ~/.kube/config'))
    .addOption(option('-n, --namespace <ns>', 'namespace whose RelayPools to reconcile; empty = all namespaces', 'POS_RELAY_OPERATOR_NAMESPACE', 'WATCH_NAMESPACE'))
    .addOption(option('--metrics-port <port>', 'HTTP port for /metrics, /healthz, /readyz (0 = any free port)', 'POS_RELAY_OPERATOR_METRICS_PORT', 'METRICS_PORT').argParser(intArg('--metrics-port')).default(DEFAULT_OPERATOR_METRICS_PORT))
    .addOption(option('--metrics-host <ip>', 'address the metrics port binds to', 'POS_RELAY_OPERATOR_METRICS_HOST', 'METRICS_HOST').default('0.0.0.0'))
    .addOption(option('--leader-elect <bool>', 'elect a leader on a coordination.k8s.io Lease; only the leader reconciles (true/false)', 'POS_RELAY_OPERATOR_LEADER_ELECT', 'LEADER_ELECT').argParser(boolArg('--leader-elect')).default(true))
    .addOption(option('--leader-election-namespace <ns>', 'namespace of the Lease (default: POD_NAMESPACE, else the service account\'s namespace, else "default")', 'POS_RELAY_OPERATOR_LEASE_NAMESPACE', 'LEADER_ELECTION_NAMESPACE'))
    .addOption(option('--lease-name <name>', 'name of the Lease', 'POS_RELAY_OPERATOR_LEASE_NAME', 'LEADER_ELECTION_ID').default('pos-relay-operator'))
    .addOption(option('--identity <id>', 'holder identity in the Lease (default: POD_NAME or the hostname, then "-<pid>")', 'POS_RELAY_OPERATOR_IDENTITY', 'LEADER_ELECTION_IDENTITY'))
    .addOption(option('--lease-duration <s>', 'seconds a candidate waits before taking a Lease that is not renewed', 'POS_RELAY_OPERATOR_LEASE_DURATION_SECONDS', 'LEASE_DURATION_SECONDS').argParser(secondsArg('--lease-duration')).default(15))
    .addOption(option('--renew-deadline <s>', 'seconds the leader keeps trying to renew before it gives up leading', 'POS_RELAY_OPERATOR_RENEW_DEADLINE_SECONDS', 'RENEW_DEADLINE_SECONDS').argParser(secondsArg('--renew-deadline')).default(10))
    .addOption(option('--retry-period <s>', 'seconds between Lease acquire/renew attempts', 'POS_RELAY_OPERATOR_RETRY_PERIOD_SECONDS', 'RETRY_PERIOD_SECONDS').argParser(secondsArg('--retry-period')).default(2))
    .addOption(option('--redis <url>', 'Redis URL of the discovery registry for pools that name no Secret (spec.discovery.redisUrlSecretRef wins)', 'POS_RELAY_DISCOVERY_REDIS_URL', 'REDIS_URL'))
    .addOption(option('--registry-ttl <s>', 'registry TTL in seconds for pools without spec.discovery.ttlSeconds; heartbeats every TTL/3', 'POS_RELAY_OPERATOR_REGISTRY_TTL_SECONDS', 'REGISTRY_TTL_SECONDS').argParser(intArg('--registry-ttl')).default(30))
    .addOption(option('--relay-image <image>', 'relay image for pools without spec.image', 'POS_RELAY_OPERATOR_RELAY_IMAGE', 'RELAY_IMAGE'))
    .addOption(option('--relay-image-pull-policy <policy>', 'pull policy for pools without spec.imagePullPolicy (Always, IfNotPresent, Never)', 'POS_RELAY_OPERATOR_RELAY_IMAGE_PULL_POLICY', 'RELAY_IMAGE_PULL_POLICY'))
    .addOption(option('--relay-pod-security-context <json>', 'securityContext of relay pods, replacing the default (non-root uid 10001, RuntimeDefault seccomp); e.g. without runAsUser/runAsGroup/fsGroup for OpenShift\'s restricted SCC, which assigns the uid', 'POS_RELAY_OPERATOR_RELAY_POD_SECURITY_CONTEXT').argParser(securityContextArg('--relay-pod-security-context')))
    .addOption(option('--relay-container-security-context <json>', 'securityContext of the relay container, replacing the default (no privilege escalation, read-only root filesystem, non-root, every capability dropped)', 'POS_RELAY_OPERATOR_RELAY_CONTAINER_SECURITY_CONTEXT').argParser(securityContextArg('--relay-container-security-context')))
    .addOption(option('--relay-scrape-annotations <bool>', 'put prometheus.io/scrape, /port and /path annotations on relay pods (true/false); false when a PodMonitor scrapes them, so no relay is scraped twice', 'POS_RELAY_OPERATOR_RELAY_SCRAPE_ANNOTATIONS').argParser(boolArg('--relay-scrape-annotations')).default(true))
    .addOption(option('--allowed-privileged-host-ports <ports>', 'hostPorts below 1024 RelayPools may use, comma-separated (e.g. 443 on dedicated relay nodes); default none: a pool on such a port gets Degraded=True HostPortNotAllowed and no relays', 'POS_RELAY_OPERATOR_ALLOWED_PRIVILEGED_HOST_PORTS', 'ALLOWED_PRIVILEGED_HOST_PORTS').argParser(privilegedPortsArg).default([]))
    .addOption(option('--workers <n>', 'RelayPools reconciled concurrently', 'POS_RELAY_OPERATOR_WORKERS', 'WORKERS').argParser(intArg('--workers')).default(4))
    .addOption(option('--resync-period <s>', 'every pool is reconciled at least this often (seconds)', 'POS_RELAY_OPERATOR_RESYNC_PERIOD_SECONDS', 'RESYNC_PERIOD_SECONDS').argParser(secondsArg('--resync-period')).default(300))
    .addOption(option('--log-level <level>', LOG_LEVEL_HELP, 'POS_RELAY_LOG_LEVEL', 'LOG_LEVEL').argParser(logLevelArg).default('info'))
    .addHelpText('after', '\nEnvironment:\n  KUBECONFIG      kubeconfig files, separated by ":" (merged as kubectl does); --kubeconfig wins\n  POD_NAMESPACE   default Lease namespace (set by the chart through the downward API)\n  POD_NAME        default holder identity prefix\n  The names before POS_RELAY_… (REDIS_URL, WATCH_NAMESPACE, …) are still read, with a deprecation warning.\n')
    .action(async (opts: OperatorCliOptions) => {
      checkRedisUrl('--redis', 'POS_RELAY_DISCOVERY_REDIS_URL', opts.redis)
      if (opts.registryTtl < 3 || opts.registryTtl > MAX_REGISTRY_TTL_SECONDS) throw new Error(`--registry-ttl must be between 3 and ${MAX_REGISTRY_TTL_SECONDS} seconds (as spec.discovery.ttlSeconds)`)
      if (!(opts.leaseDuration > opts.renewDeadline && opts.renewDeadline > opts.retryPeriod)) {
        throw new Error('--lease-duration must be greater than --renew-deadline, which must be greater than --retry-period')
      }
      const logger = createLogger({ name: 'operator', level: opts.logLevel })
      const { Operator } = await import('@pos-relay/operator')
      const op = new Operator({
        kubeconfig: await kubeConfigFrom(opts.kubeconfig),
        namespace: opts.namespace,
        metricsPort: opts.metricsPort,
        metricsHost: opts.metricsHost,
        leaderElect: opts.leaderElect,
        leaseNamespace: opts.leaderElectionNamespace ?? ownNamespace(),
        leaseName: opts.leaseName,
        identity: opts.identity ?? `${process.env.POD_NAME != null && process.env.POD_NAME !== '' ? process.env.POD_NAME : hostname()}-${process.pid}`,
        leaseDurationMs: opts.leaseDuration * 1000,
        renewDeadlineMs: opts.renewDeadline * 1000,
        retryPeriodMs: opts.retryPeriod * 1000,
        redisUrl: opts.redis,
        registryTtlSeconds: opts.registryTtl,
        relayImage: opts.relayImage,
        relayImagePullPolicy: opts.relayImagePullPolicy,
        ...(opts.relayPodSecurityContext != null ? { relayPodSecurityContext: opts.relayPodSecurityContext } : {}),
        ...(opts.relayContainerSecurityContext != null ? { relayContainerSecurityContext: opts.relayContainerSecurityContext } : {}),
        relayScrapeAnnotations: opts.relayScrapeAnnotations,
        allowedPrivilegedHostPorts: opts.allowedPrivilegedHostPorts,
        workers: opts.workers,
        resyncMs: opts.resyncPeriod * 1000,
        logger
      })
      await op.start()
      // one line on stdout for scripts and tests
      process.stdout.write(JSON.stringify({ event: 'operator_started', identity: op.identity, metrics_port: op.metricsAddress?.port, namespace: opts.namespace ?? '' }) + '\n')
      handleShutdown(logger, async () => { await op.stop() }, async () => { await op.stop() })
    })
}
