import type { KubeConfig, V1PodSecurityContext, V1SecurityContext } from '@kubernetes/client-node'
import type { RelayStore } from '@pos-relay/discovery'
import type { Logger } from '@pos-relay/shared'

/** Settings of the operator process (`pos-relay operator` maps its flags to these). */
export interface OperatorOptions {
  /** path of a kubeconfig file, a loaded KubeConfig, or undefined for in-cluster / default */
  kubeconfig?: string | KubeConfig
  /** namespace to watch; empty or undefined = all namespaces */
  namespace?: string
  metricsPort?: number
  metricsHost?: string
  leaderElect?: boolean
  leaseNamespace?: string
  leaseName?: string
  identity?: string
  leaseDurationMs?: number
  renewDeadlineMs?: number
  retryPeriodMs?: number
  /** Redis URL used when a pool names no Secret */
  redisUrl?: string
  /** registry TTL used when a pool does not set spec.discovery.ttlSeconds */
  registryTtlSeconds?: number
  relayImage?: string
  relayImagePullPolicy?: string
  /** relay pods' securityContext and their container's, replacing the defaults (RELAY_POD_SECURITY_CONTEXT, RELAY_CONTAINER_SECURITY_CONTEXT) */
  relayPodSecurityContext?: V1PodSecurityContext
  relayContainerSecurityContext?: V1SecurityContext
  /** false: relay pods carry no prometheus.io/* annotations (the chart's PodMonitor scrapes them) */
  relayScrapeAnnotations?: boolean
  /** hostPorts below 1024 pools may use (default none; see hostPortRefusal) */
  allowedPrivilegedHostPorts?: number[]
  workers?: number
  /** every pool is reconciled at least this often; default 5 min */
  resyncMs?: number
  /** informers relist this often; default 10 min */
  relistMs?: number
  /** server-side watch timeout; default 300 s */
  watchTimeoutSeconds?: number
  logger: Logger
  /** for tests: the registry store of a URL */
  storeFor?: (url: string) => RelayStore
}

/**
 * After a leader crash the successor heartbeats only once the Lease expired
 * (leaseDuration + up to 1.2 retry periods). An entry last refreshed TTL/3
 * before the crash must outlive that, or healthy relays drop out of discovery.
 */
export function failoverMs (o: Pick<OperatorOptions, 'leaseDurationMs' | 'retryPeriodMs'>): number {
  return (o.leaseDurationMs ?? 15_000) + 1.2 * (o.retryPeriodMs ?? 2_000) + 1000
}
