/**
 * Node eligibility (node selector, required node affinity, taints vs
 * tolerations) and public addresses: the parts of scheduling the operator
 * evaluates itself, because it pins each relay to a node it has chosen.
 */
import { isIP } from 'node:net'
import type { V1NodeSelectorRequirement, V1NodeSelectorTerm, V1Taint, V1Toleration } from '@kubernetes/client-node'
import { relayAddressProblem } from '@pos-relay/shared'
import type { Node, NodeAddressType, RelayPoolSpec } from './api.js'

export function matchesNodeSelector (node: Node, selector: Record<string, string> | undefined): boolean {
  const labels = node.metadata.labels ?? {}
  for (const [k, v] of Object.entries(selector ?? {})) if (labels[k] !== v) return false
  return true
}

function matchRequirement (req: V1NodeSelectorRequirement, value: string | undefined): boolean {
  const values = req.values ?? []
  switch (req.operator) {
    case 'In': return value != null && values.includes(value)
    case 'NotIn': return value == null || !values.includes(value)
    case 'Exists': return value != null
    case 'DoesNotExist': return value == null
    case 'Gt': return value != null && /^-?\d+$/.test(value) && values.length === 1 && Number(value) > Number(values[0])
    case 'Lt': return value != null && /^-?\d+$/.test(value) && values.length === 1 && Number(value) < Number(values[0])
    default: return false
  }
}

export function matchesTerm (node: Node, term: V1NodeSelectorTerm): boolean {
  const exprs = term.matchExpressions ?? []
  const fields = term.matchFields ?? []
  if (exprs.length === 0 && fields.length === 0) return false // an empty term matches nothing
  const labels = node.metadata.labels ?? {}
  for (const r of exprs) if (!matchRequirement(r, labels[r.key])) return false
  for (const r of fields) {
    const value = r.key === 'metadata.name' ? node.metadata.name : undefined
    if (!matchRequirement(r, value)) return false
  }
  return true
}

/** requiredDuringSchedulingIgnoredDuringExecution node affinity (terms are ORed) */
export function matchesRequiredAffinity (node: Node, spec: RelayPoolSpec): boolean {
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms
  if (terms == null || terms.length === 0) return true
  return terms.some((t) => matchesTerm(node, t))
}

export function tolerates (toleration: V1Toleration, taint: V1Taint): boolean {
  if (toleration.effect != null && toleration.effect !== '' && toleration.effect !== taint.effect) return false
  if (toleration.key != null && toleration.key !== '' && toleration.key !== taint.key) return false
  if ((toleration.key == null || toleration.key === '') && toleration.operator !== 'Exists') return false
  if (toleration.operator === 'Exists') return true
  return (toleration.value ?? '') === (taint.value ?? '')
}

/** taints with `effects` that no toleration tolerates */
export function untoleratedTaints (node: Node, tolerations: V1Toleration[] | undefined, effects: string[]): V1Taint[] {
  return (node.spec?.taints ?? []).filter((t) => effects.includes(t.effect) && !(tolerations ?? []).some((tol) => tolerates(tol, t)))
}

export interface NodeEligibility {
  /** an existing relay may stay on it (labels/affinity still match, no untolerated NoExecute taint) */
  keep: boolean
  /** a new relay may be placed on it (keep, not cordoned, no untolerated NoSchedule taint, has an address) */
  place: boolean
  /** why not, for messages */
  reason?: string
  address?: string
}

/**
 * Every pod tolerates these NoExecute taints for 300 s (DefaultTolerationSeconds
 * admission): a node that is briefly unreachable keeps its relay (its Ready
 * condition goes False, so it leaves the registry) instead of the slot moving
 * to another node and address; Kubernetes evicts it if the node stays away.
 */
const TRANSIENT_NO_EXECUTE: V1Toleration[] = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' }
]

export function nodeEligibility (node: Node, spec: RelayPoolSpec): NodeEligibility {
  const address = publicAddressOf(node, spec)
  if (!matchesNodeSelector(node, spec.nodeSelector)) return { keep: false, place: false, reason: 'nodeSelector does not match', address }
  if (!matchesRequiredAffinity(node, spec)) return { keep: false, place: false, reason: 'required node affinity does not match', address }
  const noExec = untoleratedTaints(node, [...(spec.tolerations ?? []), ...TRANSIENT_NO_EXECUTE], ['NoExecute'])
  if (noExec.length > 0) return { keep: false, place: false, reason: `untolerated taint ${noExec[0]?.key}:NoExecute`, address }
  if (node.spec?.unschedulable === true) return { keep: true, place: false, reason: 'node is cordoned', address }
  const noSched = untoleratedTaints(node, spec.tolerations, ['NoSchedule'])
  if (noSched.length > 0) return { keep: true, place: false, reason: `untolerated taint ${noSched[0]?.key}:NoSchedule`, address }
  if (address == null) {
    const bad = annotationProblem(node, spec)
    return { keep: true, place: false, reason: bad ?? 'node has no usable address' }
  }
  return { keep: true, place: true, address }
}

const DEFAULT_ADDRESS_TYPES: NodeAddressType[] = ['ExternalIP', 'InternalIP']

/**
 * The address peers dial: `publicAddress.static`, else the node annotation
 * named by `publicAddress.nodeAnnotation`, else the first node status address
 * of the preferred types (default ExternalIP, then InternalIP).
 */
export function publicAddressOf (node: Node, spec: RelayPoolSpec): string | undefined {
  const pa = spec.publicAddress
  if (pa?.static != null && pa.static !== '') return pa.static
  if (pa?.nodeAnnotation != null) {
    const v = node.metadata.annotations?.[pa.nodeAnnotation]?.trim()
    // a set but unusable annotation means no address: falling back to the
    // node's own (often private) addresses would publish one nobody chose
    if (v != null && v !== '') return publicAddressProblem(v) == null ? v : undefined
  }
  const addrs = node.status?.addresses ?? []
  for (const type of pa?.nodeAddressTypes ?? DEFAULT_ADDRESS_TYPES) {
    const a = addrs.find((x) => x.type === type && x.address !== '')
    if (a != null) return a.address
  }
  return undefined
}

const DNS_NAME = /^(?=.{1,253}\.?$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i

/**
 * Why a node annotation cannot be the address relays announce: it must be a
 * bare IPv4/IPv6 address or DNS name (no port: the pool's hostPort is added)
 * that discovery would list (not unspecified, link-local, multicast or broadcast).
 */
export function publicAddressProblem (value: string): string | undefined {
  if (isIP(value) === 0 && !DNS_NAME.test(value)) return `${JSON.stringify(value)} is not an IP address or DNS name${/:\d+$/.test(value) ? ' (no port: the pool\'s hostPort is used)' : ''}`
  const problem = relayAddressProblem(transportAddr(value, 7373))
  return problem != null ? `${JSON.stringify(value)} ${problem}` : undefined
}

function annotationProblem (node: Node, spec: RelayPoolSpec): string | undefined {
  const name = spec.publicAddress?.nodeAnnotation
  const v = name != null ? node.metadata.annotations?.[name]?.trim() : undefined
  if (v == null || v === '') return undefined
  const p = publicAddressProblem(v)
  return p != null ? `annotation ${name}: ${p}` : undefined
}

function ipProto (address: string): string {
  const v = isIP(address)
  return v === 4 ? 'ip4' : v === 6 ? 'ip6' : 'dns'
}

/** `/ip4/…`, `/ip6/…` or `/dns/…` followed by `/tcp/<port>` */
export function transportAddr (address: string, port: number): string {
  return `/${ipProto(address)}/${address}/tcp/${port}`
}

/** the relay's QUIC twin of transportAddr: same host and port number, over UDP */
export function quicAddr (address: string, port: number): string {
  return `/${ipProto(address)}/${address}/udp/${port}/quic-v1`
}
