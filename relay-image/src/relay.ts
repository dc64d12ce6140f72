import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { MultiaddrConnection } from '@libp2p/interface'
import { HttpServer, keyObjectSigning, send, type Logger } from '@pos-relay/shared'
import { quietComponentLogger } from './libp2p-logger.js'
import { isIP } from 'node:net'
import { decodeKeypair, effectiveAnnounce, isQuicAddr, type RelayConfig, type RelayLimits, type RelayRateLimits } from './config.js'
import { applyLiveLimits, connectionCap, LimitsFileWatcher, type ReloadResult } from './live-limits.js'
import { quicTransport } from './quic.js'
import { installHopHooks, type HopHooks, type RemoteHop } from './hop-hooks.js'
import { CIRCUIT_WINDOW_BYTES } from './splice.js'
import { RelayMetrics } from './metrics.js'
import { RelayRateLimiter, SampledLog } from './rate-limits.js'
import { TicketGate, type TicketVerifierLike } from './auth.js'
import { createAccountPolicy } from './account-policy.js'
import { accountServicesFromConfig, type RelayAccountServices } from './account-services.js'
import { DiscoveryRegistration } from './registration.js'
import { linearGetConnections } from '@pos-relay/upstream-patches/libp2p-get-connections'
import { relayDataPath, type RelayDataPath } from './data-path.js'

export interface RelayServerOptions {
  config: RelayConfig
  logger: Logger
  metrics?: RelayMetrics
  /**
   * Account services to use instead of building them from `config.auth`
   * (the one-process dev mode shares in-memory ones with its discovery API).
   */
  accounts?: RelayAccountServices
  /** with `--workers N`: this process is one worker (workers/worker-link.ts) */
  remote?: RemoteHop
  /** data-path levers over the relay's defaults (tickWrites on: data-path.ts) and the yamux frame size (65519 B); benchmarks' A/B */
  dataPath?: RelayDataPath
}

/** `/ip4/a/tcp/p` (or `/ip4/a/udp/p/quic-v1`) of an address, without any `/p2p/...` suffix: one key per connection. */
function transportKey (ma: Multiaddr): string {
  return ma.toString().split('/p2p/')[0]!
}

/** Appends `/p2p/<peer>` unless the address already names a peer. */
export function withPeerId (ma: Multiaddr, peerId: string): string {
  return ma.toString().includes('/p2p/') ? ma.toString() : `${ma.toString()}/p2p/${peerId}`
}

/** The relay's listen addresses: TCP, and QUIC on the same UDP port number when on. */
export function listenAddresses (config: Pick<RelayConfig, 'host' | 'port' | 'quic'>): string[] {
  const ip = isIP(config.host) === 6 ? 'ip6' : 'ip4'
  return [
    `/${ip}/${config.host}/tcp/${config.port}`,
    ...(config.quic ? [`/${ip}/${config.host}/udp/${config.port}/quic-v1`] : [])
  ]
}

/** TCP addresses first: a client that takes a relay's first address (as many do, and TCP-only clients such as our SDK must) gets one it can dial. */
function tcpFirst (addrs: string[]): string[] {
  return [...addrs.filter((a) => !isQuicAddr(a)), ...addrs.filter(isQuicAddr)]
}

/**
 * One relay: a js-libp2p node serving Circuit Relay v2 (hop), identify and
 * ping over TCP + Noise + Yamux and over QUIC (UDP, same port), an HTTP port
 * for /metrics, /healthz and /readyz, and its registration with the
 * discovery API.
 */
export class RelayServer {
  readonly config: RelayConfig
  /** the limits in effect: config.limits, changed in place by the limits file (live-limits.ts) */
  readonly limits: RelayLimits
  /** the rate limits in effect: config.rate_limits, changed in place by the limits file */
  readonly rateLimits: RelayRateLimits
  readonly metrics: RelayMetrics
  private readonly logger: Logger
  private readonly http = new HttpServer()
  private node?: Libp2p
  private hooks?: HopHooks
  private registration?: DiscoveryRegistration
  private draining = false
  private rateLimiter?: RelayRateLimiter
  private readonly accountServices?: RelayAccountServices
  private readonly remote?: RemoteHop
  private readonly dataPath: RelayDataPath
  private gate?: TicketGate
  private meteringTimer?: NodeJS.Timeout
  private builtServices?: RelayAccountServices
  /** connections per source IP on this relay, pending ones included */
  private readonly connectionsPerIp = new Map<string, number>()
  /** inbound connections still in their handshake, by remote address, oldest first */
  private readonly pending = new Map<string, { conn: MultiaddrConnection, ip: string }>()
  private started = false
  private verifier?: TicketVerifierLike
  private keysTimer?: NodeJS.Timeout
  private limitsWatcher?: LimitsFileWatcher
  metricsAddress?: { host: string, port: number }

  constructor (opts: RelayServerOptions) {
    this.config = opts.config
    this.limits = { ...opts.config.limits }
    this.rateLimits = { ...opts.config.rate_limits }
    this.logger = opts.logger
    this.metrics = opts.metrics ?? new RelayMetrics()
    this.accountServices = opts.accounts
    this.remote = opts.remote
    this.dataPath = relayDataPath(opts.dataPath)
  }

  get libp2p (): Libp2p {
    if (this.node == null) throw new Error('relay not started')
    return this.node
  }

  get peerId (): string {
    return this.libp2p.peerId.toString()
  }

  /**
   * Addresses clients should dial: the announced ones (with the QUIC twins
   * of TCP ones, see effectiveAnnounce), else what we listen on, which with
   * port 0 means the TCP and UDP ports actually bound (they differ).
   */
  get addresses (): string[] {
    const node = this.libp2p
    const announce = effectiveAnnounce(this.config)
    const addrs = announce.length > 0
      ? announce.map((a) => multiaddr(a))
      : node.getMultiaddrs().filter((ma) => !ma.toString().includes('/p2p-circuit'))
    return tcpFirst([...new Set(addrs.map((ma) => withPeerId(ma, this.peerId)))])
  }

  get isDraining (): boolean {
    return this.draining
  }

  get activeCircuits (): number {
    return this.hooks?.activeCircuits ?? 0
  }

  get hopHooks (): HopHooks {
    if (this.hooks == null) throw new Error('relay not started')
    return this.hooks
  }

  async start (): Promise<void> {
    const { config, metrics, logger } = this
    const limits = this.limits
    const rateLimiter = this.rateLimiter = new RelayRateLimiter({ settings: config.rate_limits, metrics, logger })
    const denials = new SampledLog(logger)
    const deny = (reason: string, ip: string): boolean => {
      metrics.denialsTotal.inc({ reason })
      denials.note(reason, { ip })
      return true
    }
    const node = await createLibp2p({
      // signs (handshakes, peer records, vouchers) with a KeyObject made once
      privateKey: keyObjectSigning(decodeKeypair(config.keypair)),
      // per-connection loggers only for what DEBUG enables
      logger: quietComponentLogger(),
      addresses: {
        listen: listenAddresses(config),
        announce: effectiveAnnounce(config)
      },
      // QUIC does its own TLS 1.3 handshake and stream multiplexing, natively:
      // Noise and Yamux below are for TCP (and for the peers' end-to-end
      // connection inside a circuit, which the relay never decrypts). A
      // failed UDP bind fails the start like a failed TCP bind (libp2p's
      // default fault tolerance): a relay that silently lost QUIC would still
      // announce it.
      transports: config.quic ? [tcp(), await quicTransport({ handshakeTimeout: limits.handshake_timeout_seconds * 1000 })] : [tcp()],
      connectionEncrypters: [noise()],
      // a spliced circuit pauses its reading side while the other side is
      // backed up; the yamux window (CIRCUIT_WINDOW_BYTES) bounds what it holds
      streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: CIRCUIT_WINDOW_BYTES }, maxMessageSize: this.dataPath.yamuxMaxMessageBytes, dataPath: this.dataPath })],
      connectionManager: {
        // every reservation holds a connection, every circuit up to two more
        maxConnections: connectionCap(limits),
        // the handshake queue is bounded by the gater below (oldest evicted);
        // upstream's cap refuses the newest instead, so a few hundred idle
        // sockets would lock every legitimate peer out for the whole timeout
        maxIncomingPendingConnections: limits.max_pending_connections * 4,
        inboundUpgradeTimeout: limits.handshake_timeout_seconds * 1000,
        // per-IP rates are ours (shared through Redis), see the gater below;
        // upstream's local 5/s per IP would refuse many clients behind one NAT
        inboundConnectionThreshold: config.rate_limits.ip_connections_per_second > 0 ? config.rate_limits.ip_connections_per_second * 10 : Number.MAX_SAFE_INTEGER
      },
      // js-libp2p's monitor pings every connection and drops those whose ping
      // times out; a connection carrying a backed-up circuit answers late and
      // was dropped mid-transfer. Dead peers are found by TCP and yamux instead,
      // as in rust-libp2p's and go-libp2p's relays.
      connectionMonitor: { enabled: false },
      // Refuse by IP before the Noise handshake: the cheapest place to say no.
      // (A QUIC connection reaches the gater after its TLS handshake, which
      // the native transport completes first; the same limits then apply.)
      connectionGater: {
        denyInboundConnection: async (maConn) => {
          const ip = maConn.remoteAddr.getComponents()[0]?.value
          if (ip == null) return false
          if (limits.ip_max_connections > 0 && (this.connectionsPerIp.get(ip) ?? 0) >= limits.ip_max_connections) return deny('ip_concurrency', ip)
          if (!(await rateLimiter.allow('ip_connection', ip))) return deny('ip_rate', ip)
          // refused connections never take (or evict) a handshake slot
          this.admitPending(maConn, ip, limits.max_pending_connections)
          this.connectionsPerIp.set(ip, (this.connectionsPerIp.get(ip) ?? 0) + 1)
          maConn.addEventListener('close', () => {
            const n = (this.connectionsPerIp.get(ip) ?? 1) - 1
            if (n <= 0) this.connectionsPerIp.delete(ip)
            else this.connectionsPerIp.set(ip, n)
          }, { once: true })
          return false
        }
      },
      services: {
        // answers its peers' identify; does not ask each peer in turn (nothing here uses their protocols or
        // addresses): a stream, a signed record to verify and peer-store writes less per accepted peer
        identify: identify({ runOnConnectionOpen: false }),
        ping: ping(),
        // the one seam to change libp2p's connection cap at run time (limits file)
        connections: (components: { connectionManager: { setMaxConnections: (n: number) => void } }) => ({ setMaxConnections: (n: number) => { components.connectionManager.setMaxConnections(n) } }),
        relay: circuitRelayServer({
          reservations: {
            // max_reservations is enforced by our hooks (hop-hooks.ts reserve), so it can change at run time
            maxReservations: Number.MAX_SAFE_INTEGER,
            reservationTtl: limits.reservation_ttl_seconds * 1000,
            // limits are applied by our hooks, see hop-hooks.ts
            applyDefaultLimit: false
          }
        })
      }
    })
    this.node = node
    // upstream's all-peers getConnections() is quadratic (UPSTREAM.md)
    linearGetConnections(node)
    const services = this.accountServices ?? (config.auth.enabled ? (this.builtServices = await accountServicesFromConfig(config, logger)) : undefined)
    if (services != null) {
      this.gate = new TicketGate({
        verifier: services.verifier,
        revocations: services.revocations,
        tiers: services.tiers,
        metrics,
        logger,
        denials,
        onRevoked: (peer, reason) => { this.hooks?.revokePeer(peer, reason) }
      })
      await this.gate.start(node)
      this.verifier = services.verifier
      this.fetchTicketKeysUntilKnown(services.verifier)
      metrics.sources.ticketKeysMissing = () => this.verifier?.hasKeys?.() === false
      metrics.sources.meteringPendingBatches = () => services.meter.pendingBatches?.() ?? 0
    }
    this.hooks = installHopHooks(node.services.relay, {
      limits,
      metrics,
      logger,
      isDraining: () => this.draining,
      rateLimiter,
      denials,
      ...(this.remote != null ? { remote: this.remote } : {}),
      ...(services != null && this.gate != null
        ? { accounts: createAccountPolicy({ gate: this.gate, meter: services.meter, flushedMonthlyBytes: services.flushedMonthlyBytes, reservations: services.reservations }) }
        : {})
    })
    if (config.limits_file != null) {
      const targets = { limits, rateLimits: this.rateLimits, hooks: this.hooks, connections: node.services.connections, rateLimiter }
      this.limitsWatcher = new LimitsFileWatcher({ path: config.limits_file, base: config, apply: (next) => { applyLiveLimits(targets, next) }, logger, metrics })
      await this.limitsWatcher.check()
      this.limitsWatcher.start()
    }
    if (services != null) {
      services.meter.start()
      this.meteringTimer = setInterval(() => {
        void this.hooks?.tick().catch((err: Error) => { logger.warn({ event: 'metering_tick_failed', err: err.message }, 'metering tick failed') })
        void services.reservations.refresh()
      }, config.auth.metering_interval_seconds * 1000)
      this.meteringTimer.unref()
    }

    node.addEventListener('connection:open', (evt) => {
      metrics.connectionsTotal.inc({ direction: evt.detail.direction })
      // handshake done: no longer a candidate for eviction
      this.pending.delete(transportKey(evt.detail.remoteAddr))
    })
    metrics.sources.connections = () => node.getConnections().length
    // Upstream keeps a reservation until its TTL even after the peer left,
    // holding a slot for an hour; a reservation is only usable while the
    // peer is connected, so free it when the peer's last connection closes.
    node.addEventListener('peer:disconnect', (evt) => { this.hooks?.dropReservation(evt.detail) })

    this.http
      .get('/metrics', async (_req, res) => {
        send(res, 200, await metrics.registry.metrics(), metrics.registry.contentType)
      })
      .get('/healthz', (_req, res) => { send(res, 200, { status: 'ok' }) })
      .get('/readyz', (_req, res) => {
        // with auth on and no ticket key known every peer would be refused:
        // not ready, so no operator lists it and no rollout counts it as up
        const keys = this.verifier?.hasKeys?.() !== false
        const ready = this.started && !this.draining && node.getMultiaddrs().length > 0 && keys
        send(res, ready ? 200 : 503, { status: ready ? 'ready' : this.draining ? 'draining' : !keys ? 'no_ticket_keys' : 'starting' })
      })
    const httpAddr = await this.http.listen(config.metrics_port, config.metrics_host)
    this.metricsAddress = { host: httpAddr.address, port: httpAddr.port }

    await node.start()
    this.started = true
    logger.info({
      event: 'relay_started',
      peer_id: this.peerId,
      listen: node.getMultiaddrs().map(String),
      announce: this.addresses,
      metrics: `http://${config.metrics_host}:${httpAddr.port}/metrics`,
      limits,
      rate_limits: { ...this.rateLimits, redis_url: undefined, shared: config.rate_limits.redis_url != null }
    }, 'relay listening')

    if (config.api_url != null) {
      this.registration = new DiscoveryRegistration({
        apiUrl: config.api_url,
        secret: config.p2p_secret,
        // every registration and deletion is signed by the relay's key: the entry is then ours alone
        privateKey: decodeKeypair(config.keypair),
        record: () => ({ id: config.id, peer_id: this.peerId, addrs: this.addresses }),
        refreshOnly: config.refresh_only,
        logger,
        metrics
      })
      this.registration.start()
    } else {
      logger.info({ event: 'registration_disabled' }, 'no api_url configured: not registering with a discovery API')
    }
  }

  /**
   * Bounds the connections still handshaking. When the queue is full the
   * oldest handshake of the address holding the most queued handshakes is
   * evicted (the oldest overall on a tie): a flood then has to outpace
   * legitimate handshakes, which take milliseconds, instead of merely
   * filling the queue and waiting for the timeout, which is what upstream's
   * refuse-the-newest cap lets a few hundred idle sockets do.
   */
  private admitPending (maConn: MultiaddrConnection, ip: string, cap: number): void {
    while (this.pending.size >= cap) {
      const perIp = new Map<string, number>()
      for (const entry of this.pending.values()) perIp.set(entry.ip, (perIp.get(entry.ip) ?? 0) + 1)
      let worst = ''
      let most = 0
      for (const [addr, n] of perIp) if (n > most) { most = n; worst = addr }
      for (const [key, entry] of this.pending) {
        if (most > 1 && entry.ip !== worst) continue
        this.pending.delete(key)
        this.metrics.denialsTotal.inc({ reason: 'handshake_evicted' })
        entry.conn.abort(new Error('evicted: too many connections in handshake'))
        break
      }
    }
    const key = transportKey(maConn.remoteAddr)
    this.pending.set(key, { conn: maConn, ip })
    maConn.addEventListener('close', () => { if (this.pending.get(key)?.conn === maConn) this.pending.delete(key) }, { once: true })
  }

  /**
   * The verifier fetches keys lazily, on a ticket with an unknown kid; a
   * relay that starts without any would stay not ready until a peer happened
   * to present one. Fetch now, then retry (1 s doubling to 30 s) until a key
   * is known; after that the verifier's own refresh keeps them current.
   */
  private fetchTicketKeysUntilKnown (verifier: TicketVerifierLike, delayMs = 1000): void {
    if (verifier.hasKeys == null || verifier.refresh == null || verifier.hasKeys()) return
    void verifier.refresh().catch((err: Error) => {
      this.logger.warn({ event: 'ticket_keys_unavailable', err: err.message, retry_in_ms: delayMs }, 'cannot fetch the ticket keys: not ready until they are known')
    }).finally(() => {
      if (this.verifier !== verifier) return // stopped
      if (verifier.hasKeys?.() === true) { this.logger.info({ event: 'ticket_keys_known' }, 'ticket keys known'); return }
      this.keysTimer = setTimeout(() => { this.fetchTicketKeysUntilKnown(verifier, Math.min(delayMs * 2, 30_000)) }, delayMs)
      this.keysTimer.unref()
    })
  }

  /** reads the limits file now instead of at the next poll (undefined: no limits file) */
  async reloadLimits (): Promise<ReloadResult | undefined> {
    return await this.limitsWatcher?.check()
  }

  /** resolves after the first successful registration (never, without api_url) */
  get registered (): Promise<void> {
    return this.registration?.firstRegistration ?? new Promise(() => {})
  }

  /**
   * Graceful shutdown (SIGTERM): refuse new reservations, leave discovery at
   * once so clients stop picking this relay, close the connections of peers
   * that hold a reservation and relay no circuit (they fail over to their next
   * relay now, not when we exit: docs/protocol.md section 4), let open circuits
   * finish until `drain_seconds`, then stop.
   */
  async drain (): Promise<void> {
    if (this.draining) return
    this.draining = true
    this.metrics.draining.set(1)
    const deadline = this.config.drain_seconds
    this.logger.info({ event: 'drain_started', active_circuits: this.activeCircuits, drain_seconds: deadline }, 'draining')
    await this.registration?.deregister(this.config.id)
    const moved = await this.closeIdleReservationHolders()
    this.logger.info({ event: 'drain_closed_idle', peers: moved }, 'closed the connections of idle reservation holders')
    await this.hooks?.waitForCircuitsToEnd(AbortSignal.timeout(deadline * 1000))
    this.logger.info({ event: 'drain_finished', active_circuits: this.activeCircuits }, 'drain finished')
    await this.stop()
  }

  /** Hangs up on every peer holding a reservation here without an open circuit; returns how many. */
  private async closeIdleReservationHolders (): Promise<number> {
    const node = this.node
    const hooks = this.hooks
    if (node == null || hooks == null) return 0
    const peers = new Map(node.getConnections().map((c) => [c.remotePeer.toString(), c.remotePeer]))
    const idle = [...peers.values()].filter((peer) => hooks.holdsIdleReservation(peer))
    // bounded: a peer that does not answer the close must not hold the drain (hangUp aborts its connections then)
    await Promise.all(idle.map(async (peer) => { await node.hangUp(peer, { signal: AbortSignal.timeout(2_000) }).catch(() => {}) }))
    return idle.length
  }

  async stop (): Promise<void> {
    await this.registration?.stop()
    this.hooks?.abortCircuits(new Error('relay stopping'))
    clearInterval(this.meteringTimer)
    this.limitsWatcher?.stop()
    clearTimeout(this.keysTimer)
    this.verifier = undefined
    await this.hooks?.tick().catch(() => {})
    await this.node?.stop()
    this.gate?.stop()
    const services = this.accountServices ?? this.builtServices
    // the last flush may fail (Redis away): the meter logs what it could not write
    await services?.meter.stop().catch((err: Error) => { this.logger.warn({ event: 'metering_final_flush_failed', err: err.message }, 'final usage flush failed') })
    await services?.reservations.close()
    if (this.accountServices == null) {
      await services?.revocations.close?.()
      await services?.close?.()
    }
    await this.rateLimiter?.close()
    await this.http.close()
    this.started = false
    this.logger.info({ event: 'relay_stopped' }, 'relay stopped')
  }
}
