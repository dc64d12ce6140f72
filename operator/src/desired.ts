/**
 * computeDesired: what a RelayPool should look like, as a pure function of
 * what the operator observed (pool, its pods and identity Secrets, the nodes,
 * other pools' relay pods, the registry's state and the time). No I/O, no
 * clock, no randomness: the reconciler applies the difference it returns.
 *
 * Slots. A pool has integer slots; slot i is pod `<pool>-i` with identity
 * Secret `<pool>-i-identity` (its libp2p key, so a restarted pod keeps its
 * peer id). Each slot is pinned to one node, chosen here; the Secret remembers
 * the node, so a replaced pod goes back to the same node when it can and its
 * address (node IP + hostPort + peer id) stays what clients cached.
 * - replicas mode: slots 0..replicas-1; a slot keeps the node of its live pod
 *   while that node stays eligible; otherwise it takes its remembered node,
 *   else the free placeable node that ranks highest for it by rendezvous hash
 *   (spreads pools over nodes deterministically). "Free": no relay of this
 *   pool, and no relay of another pool on the same hostPort.
 * - perNode mode: one slot per eligible node; a node keeps the slot of its
 *   pod, else the slot whose Secret remembers it, else the lowest free slot
 *   (so identities of departed nodes are reused and Secrets stay bounded).
 */
import type { V1ConfigMap, V1Pod, V1PodSecurityContext, V1Secret, V1SecurityContext } from '@kubernetes/client-node'
import {
  ANNOTATIONS, COMPONENT_RELAY, DEFAULT_HOST_PORT, FIELD_MANAGER, FINALIZER, LABELS,
  type Node, type Pod, type RelayPool, type RelayPoolStatus, type RelayStatus, type Secret
} from './api.js'
import { setConditions } from './conditions.js'
import { poolConditions } from './desired-conditions.js'
import { buildLimitsConfigMap, buildPod, buildSecretMeta, podName, registryId, secretName } from './manifests.js'
import { nodeEligibility, quicAddr, transportAddr, type NodeEligibility } from './nodes.js'
import { placeSlots } from './placement.js'
import { hostPortOfPod, isPodFinished, isPodReady, isTerminating, nodeOfPod, podPhase, slotOf } from './pod-state.js'

export interface RegistryObservation {
  /** a Redis URL could be resolved for the pool */
  configured: boolean
  /** the last registry operation for the pool failed (Redis unreachable, ...) */
  error?: string
  /** registry ids currently registered for this pool, with the content last desired */
  registered: ReadonlySet<string>
}

export interface Observed {
  pool: RelayPool
  /** pods labelled with this pool's name in its namespace */
  pods: Pod[]
  /** identity Secrets labelled with this pool's name in its namespace */
  secrets: Secret[]
  nodes: Node[]
  /** relay pods of every other pool (any namespace): their hostPorts occupy nodes */
  otherRelayPods: Pod[]
  registry: RegistryObservation
  /**
   * the operator's settings: relay image and pull policy for pools without
   * their own, and the hostPorts below 1024 pools may use (none by default)
   */
  defaults: { image?: string, imagePullPolicy?: string, allowedPrivilegedHostPorts?: number[], podSecurityContext?: V1PodSecurityContext, containerSecurityContext?: V1SecurityContext, scrapeAnnotations?: boolean }
  /**
   * why the Secrets spec.auth names cannot be used (missing, no such key, a
   * private ticket key), when they cannot: no relay pod is then created or
   * replaced for this spec
   */
  authProblem?: string
  now: number
}

export interface Registration {
  id: string
  peer_id: string
  addrs: string[]
  meta: Record<string, string>
}

export interface SlotPlan {
  slot: number
  node?: string
  publicAddress?: string
  /** live (not terminating) pod of the slot */
  pod?: Pod
}

export interface Desired {
  addFinalizer: boolean
  /** the pool's limits ConfigMap (reloadable limits), applied before any pod is created */
  limitsConfigMap: V1ConfigMap
  /** identity Secrets to create; the applier adds the key (data + peer-id annotation) */
  createSecrets: V1Secret[]
  /** identity Secrets to re-apply (node annotation moved); data is the observed data */
  updateSecrets: V1Secret[]
  deleteSecrets: Array<{ name: string, uid?: string }>
  /** pods to create (server-side apply of a missing pod) */
  createPods: V1Pod[]
  deletePods: Array<{ name: string, uid?: string, reason: string }>
  /** registry entries that should exist for this pool now */
  registrations: Registration[]
  /** the status to write; equal to the observed one when nothing changed */
  status: RelayPoolStatus
  /** status differs from the observed status */
  statusChanged: boolean
  slots: SlotPlan[]
}

// ---------------------------------------------------------------- compute

export function computeDesired (o: Observed): Desired {
  const { pool, now } = o
  const spec = pool.spec ?? {}
  const ns = pool.metadata.namespace ?? 'default'
  const poolName = pool.metadata.name
  const hostPort = spec.hostPort ?? DEFAULT_HOST_PORT
  const perNode = spec.perNode === true
  const image = spec.image ?? o.defaults.image
  const pullPolicy = spec.imagePullPolicy ?? o.defaults.imagePullPolicy ?? 'IfNotPresent'
  const portRefused = hostPortRefusal(hostPort, o.defaults.allowedPrivilegedHostPorts)
  const authRefused = spec.auth?.required === true ? o.authProblem : undefined

  const out: Desired = {
    addFinalizer: !(pool.metadata.finalizers ?? []).includes(FINALIZER),
    limitsConfigMap: buildLimitsConfigMap(pool),
    createSecrets: [],
    updateSecrets: [],
    deleteSecrets: [],
    createPods: [],
    deletePods: [],
    registrations: [],
    status: {},
    statusChanged: false,
    slots: []
  }

  // ---- nodes
  const nodes = [...o.nodes].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))
  const elig = new Map<string, NodeEligibility>(nodes.map((n) => [n.metadata.name, nodeEligibility(n, spec)]))
  const occupiedByOthers = new Set<string>()
  for (const p of o.otherRelayPods) {
    const n = nodeOfPod(p)
    if (n != null && !isPodFinished(p) && hostPortOfPod(p) === hostPort) occupiedByOthers.add(n)
  }

  // ---- this pool's pods, by slot
  const mine = o.pods.filter((p) => {
    const owner = p.metadata.ownerReferences?.find((r) => r.controller === true)
    return owner == null || owner.uid === pool.metadata.uid
  })
  const foreign = o.pods.filter((p) => !mine.includes(p)) // left over from an earlier pool of the same name
  const live = new Map<number, Pod>() // not terminating
  const terminating = new Map<number, Pod>()
  const deletions = new Map<string, { name: string, uid?: string, reason: string }>()
  const del = (p: Pod, reason: string): void => {
    if (!isTerminating(p) && !deletions.has(p.metadata.name)) deletions.set(p.metadata.name, { name: p.metadata.name, uid: p.metadata.uid, reason })
  }
  for (const p of foreign) del(p, 'owned by an earlier pool of the same name')
  for (const p of mine) {
    const slot = slotOf(p)
    if (slot == null || p.metadata.name !== podName(poolName, slot)) { del(p, 'not a slot pod of this pool'); continue }
    if (isTerminating(p)) terminating.set(slot, p)
    else if (isPodFinished(p)) {
      del(p, `pod ${p.status?.phase ?? 'finished'}`)
      terminating.set(slot, p) // its name is taken until it is gone
    } else live.set(slot, p)
  }

  // ---- identity Secrets, by slot
  const secretBySlot = new Map<number, Secret>()
  for (const s of o.secrets) {
    const slot = slotOf(s)
    if (slot != null && s.metadata.name === secretName(poolName, slot)) secretBySlot.set(slot, s)
  }
  const rememberedNode = (slot: number): string | undefined => secretBySlot.get(slot)?.metadata.annotations?.[ANNOTATIONS.node]
  const secretPeer = (slot: number): string | undefined => nonEmpty(secretBySlot.get(slot)?.metadata.annotations?.[ANNOTATIONS.peerId])
  /** the key a pod runs with: recorded on the pod at creation, else its Secret's */
  const podPeer = (p: Pod, slot: number | undefined): string | undefined => nonEmpty(p.metadata.annotations?.[ANNOTATIONS.peerId]) ?? (slot != null ? secretPeer(slot) : undefined)

  // ---- slot → node
  const { assignment, desiredCount, unplaced, eligibleCount } = placeSlots({
    perNode,
    replicas: Math.max(0, spec.replicas ?? 0),
    poolKey: pool.metadata.uid ?? poolName,
    nodes,
    elig,
    occupiedByOthers,
    live,
    terminating,
    secretSlots: [...secretBySlot.keys()],
    rememberedNode,
    del
  })

  // ---- surplus and moved pods
  for (const [slot, p] of live) {
    const node = assignment.get(slot)
    if (node == null) { del(p, perNode ? 'node is no longer eligible' : 'scaled down'); continue }
    if (nodeOfPod(p) !== node) del(p, `moved to node ${node}`)
  }

  // ---- pods to create, outdated pods
  const slots: SlotPlan[] = []
  let unavailable = 0
  const outdatedReady: Pod[] = []
  for (const slot of [...assignment.keys()].sort((a, b) => a - b)) {
    const node = assignment.get(slot)!
    const address = elig.get(node)?.address
    const pod = live.get(slot)
    const plan: SlotPlan = { slot, node, ...(address != null ? { publicAddress: address } : {}), ...(pod != null && !deletions.has(pod.metadata.name) ? { pod } : {}) }
    slots.push(plan)
    if (plan.pod == null || !isPodReady(plan.pod)) unavailable++
    // nothing half-applied: a spec that cannot run creates and replaces no pod (running ones stay as they are)
    if (image == null || address == null || portRefused != null || authRefused != null) continue
    const peer = secretPeer(slot)
    const want = buildPod({
      pool,
      slot,
      node,
      publicAddress: address,
      image,
      imagePullPolicy: pullPolicy,
      ...(o.defaults.podSecurityContext != null ? { podSecurityContext: o.defaults.podSecurityContext } : {}),
      ...(o.defaults.containerSecurityContext != null ? { containerSecurityContext: o.defaults.containerSecurityContext } : {}),
      ...(o.defaults.scrapeAnnotations != null ? { scrapeAnnotations: o.defaults.scrapeAnnotations } : {}),
      ...(peer != null ? { peerId: peer } : {})
    })
    if (plan.pod == null) {
      if (!terminating.has(slot) && !deletions.has(podName(poolName, slot))) out.createPods.push(want)
      continue
    }
    const have = plan.pod.metadata.annotations?.[ANNOTATIONS.templateHash]
    const keyChanged = peer != null && podPeer(plan.pod, slot) !== peer
    if (have !== want.metadata!.annotations![ANNOTATIONS.templateHash] || keyChanged) {
      if (isPodReady(plan.pod)) outdatedReady.push(plan.pod)
      else del(plan.pod, 'outdated')
    }
  }
  // rolling replacement: at most maxUnavailable relays down at a time (those not Ready count)
  const budget = maxUnavailable(spec.updateStrategy?.maxUnavailable, slots.length) - unavailable
  for (const p of outdatedReady.slice(0, Math.max(0, budget))) del(p, 'outdated')
  for (const plan of slots) if (plan.pod != null && deletions.has(plan.pod.metadata.name)) delete plan.pod
  out.slots = slots
  out.deletePods = [...deletions.values()]

  // ---- identity Secrets
  for (const [slot, node] of assignment) {
    const s = secretBySlot.get(slot)
    if (s == null) { out.createSecrets.push(buildSecretMeta(pool, slot, node)); continue }
    if (rememberedNode(slot) !== node) {
      const upd = buildSecretMeta(pool, slot, node)
      upd.metadata!.annotations![ANNOTATIONS.peerId] = s.metadata.annotations?.[ANNOTATIONS.peerId] ?? ''
      upd.data = s.data
      out.updateSecrets.push(upd)
    }
  }
  for (const [slot, s] of secretBySlot) {
    const inUse = assignment.has(slot) || live.has(slot) || terminating.has(slot)
    if (!inUse && slot >= desiredCount) out.deleteSecrets.push({ name: s.metadata.name, uid: s.metadata.uid })
  }

  // ---- registrations: Ready relays that stay
  const relays: RelayStatus[] = []
  const registered = new Set<string>()
  const podsForStatus = [...mine].sort((a, b) => (slotOf(a) ?? 1e9) - (slotOf(b) ?? 1e9) || (a.metadata.name < b.metadata.name ? -1 : 1))
  for (const p of podsForStatus) {
    const slot = slotOf(p)
    const peerId = podPeer(p, slot)
    const address = p.metadata.annotations?.[ANNOTATIONS.publicAddress]
    const ready = isPodReady(p)
    const r: RelayStatus = { pod: p.metadata.name, phase: podPhase(p), ready, registered: false }
    if (slot != null) r.slot = slot
    if (p.spec?.nodeName != null) r.node = p.spec.nodeName
    if (address != null) r.publicAddress = address
    if (peerId != null && peerId !== '') r.peerId = peerId
    const ma = address != null && peerId != null && peerId !== '' ? `${transportAddr(address, hostPort)}/p2p/${peerId}` : undefined
    if (ma != null) r.multiaddr = ma
    const stays = !deletions.has(p.metadata.name) && slot != null && assignment.get(slot) === nodeOfPod(p)
    if (ready && stays && ma != null && p.spec?.nodeName != null) {
      const id = registryId(ns, poolName, slot)
      out.registrations.push({
        id,
        peer_id: peerId!,
        // TCP first (clients that take the first address speak TCP), then the QUIC twin the pod serves on UDP
        addrs: [ma, `${quicAddr(address!, hostPort)}/p2p/${peerId!}`],
        meta: { managed_by: 'pos-relay-operator', namespace: ns, pool: poolName, slot: String(slot), pod: p.metadata.name, node: p.spec.nodeName }
      })
      if (o.registry.registered.has(id)) { r.registered = true; registered.add(id) }
    }
    relays.push(r)
  }

  // ---- conditions
  const readyCount = slots.filter((s) => s.pod != null && isPodReady(s.pod)).length
  const registeredCount = registered.size
  const conds = poolConditions({
    perNode,
    hostPort,
    portRefused,
    authRefused,
    imageSet: image != null,
    registry: o.registry,
    nodes,
    elig,
    occupiedByOthers,
    pods: mine,
    slots,
    counts: { desired: desiredCount, ready: readyCount, registered: registeredCount, unplaced, eligible: eligibleCount },
    changes: {
      createPods: out.createPods.length,
      createSecrets: out.createSecrets.length,
      deletePods: out.deletePods.length,
      outdated: outdatedReady.length + out.deletePods.filter((d) => d.reason === 'outdated').length,
      draining: terminating.size
    }
  })

  const prev = pool.status ?? {}
  const status: RelayPoolStatus = {
    observedGeneration: pool.metadata.generation,
    // the scale subresource's view: pods that exist and are not leaving, and how to select them
    replicas: mine.filter((p) => !isTerminating(p)).length,
    selector: poolSelector(poolName),
    desiredRelays: desiredCount,
    readyRelays: readyCount,
    registeredRelays: registeredCount,
    conditions: setConditions(prev.conditions, conds, pool.metadata.generation, now),
    relays
  }
  out.status = status
  out.statusChanged = !statusEqual(prev, status)
  return out
}

/** label selector of a pool's relay pods (status.selector, for the scale subresource) */
export function poolSelector (pool: string): string {
  return `${LABELS.managedBy}=${FIELD_MANAGER},${LABELS.component}=${COMPONENT_RELAY},${LABELS.pool}=${pool}`
}

function nonEmpty (s: string | undefined): string | undefined {
  return s != null && s !== '' ? s : undefined
}

/**
 * Why a pool may not use `hostPort`, if it may not. A hostPort captures that
 * port on the node's addresses (portmap DNAT), so a pool on 22, 53, 80 or 443
 * would take the node's SSH, DNS or ingress traffic: ports below 1024 are the
 * node's own services unless the operator allows them by name
 * (--allowed-privileged-host-ports, e.g. 443 on dedicated relay nodes).
 */
export function hostPortRefusal (hostPort: number, allowed: number[] = []): string | undefined {
  if (hostPort >= 1024 || allowed.includes(hostPort)) return undefined
  return `hostPort ${hostPort} is below 1024, where the node's own services listen (SSH, DNS, ingress); the operator allows ${allowed.length > 0 ? `only ${allowed.join(', ')}` : 'none'} (--allowed-privileged-host-ports)`
}

export function statusEqual (a: RelayPoolStatus, b: RelayPoolStatus): boolean {
  return JSON.stringify(normStatus(a)) === JSON.stringify(normStatus(b))
}

function normStatus (s: RelayPoolStatus): unknown {
  const sortKeys = (o: any): any => {
    if (Array.isArray(o)) return o.map(sortKeys)
    if (o != null && typeof o === 'object') return Object.fromEntries(Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => [k, sortKeys(o[k])]))
    return o
  }
  return sortKeys({ ...s, relays: s.relays ?? [], conditions: s.conditions ?? [] })
}

/**
 * spec.updateStrategy.maxUnavailable as a number of relays: an integer, or a percentage of the
 * desired relays rounded down (as a Deployment's); at least 1, since relays on a hostPort cannot
 * surge, so 0 would never replace anything. Default 1.
 */
export function maxUnavailable (value: number | string | undefined, desired: number): number {
  if (value == null) return 1
  if (typeof value === 'number') return Math.max(1, Math.floor(value))
  const pct = /^(\d+)%$/.exec(value)
  // the CRD's CEL rule admits only N% from 1% to 100%; anything else falls back to the default
  if (pct == null) return 1
  return Math.max(1, Math.floor(desired * Number(pct[1]) / 100))
}
