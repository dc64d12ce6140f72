import { randomBytes, randomUUID } from 'node:crypto'
import { isIP } from 'node:net'
import { lstat, open, readFile, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { MAX_TIMER_SECONDS } from '@pos-relay/shared'
import { tiersSchema } from '@pos-relay/accounts/tiers'
import type { PrivateKey } from '@libp2p/interface'

export const DEFAULT_PORT = 7373
export const DEFAULT_METRICS_PORT = 9373

/**
 * Production defaults for the relay's limits (see README "Relay limits").
 * Upstream js-libp2p's defaults (15 reservations, 128 KiB / 2 min per circuit)
 * only suffice to coordinate a hole punch; a relay that is the fallback path
 * for file transfer needs circuits that carry real data.
 */
export const DEFAULT_LIMITS = {
  /** reservations held at once; a reservation costs one idle connection (~tens of KiB). */
  max_reservations: 4096,
  /** seconds; clients refresh well before (js-libp2p: 5 min before expiry). go/rust use 1 h too. */
  reservation_ttl_seconds: 3600,
  /** circuits relayed at once; each holds two yamux streams and their buffers. */
  max_circuits: 1024,
  /** bytes per circuit, both directions together (js-libp2p semantics); 0 = unlimited. */
  circuit_data_limit_bytes: 4 * 1024 ** 3,
  /** seconds per circuit; 0 = unlimited. A client opens a new circuit after this. */
  circuit_duration_seconds: 3600,
  /** connections at once; 0 = max_reservations + 2 × max_circuits + 256 */
  max_connections: 0,
  /** connections still in their handshake at once (js-libp2p default: 10, which 10 idle sockets exhaust) */
  max_pending_connections: 256,
  /** seconds a new connection has to finish Noise + Yamux (js-libp2p default: 10) */
  handshake_timeout_seconds: 5,
  /** connections at once from one IP address, on this relay; 0 = unlimited */
  ip_max_connections: 64,
  /**
   * circuits at once from one source peer; 0 = unlimited. A client opens one
   * circuit per remote peer it cannot reach directly, and DCUtR moves most of
   * them off the relay within seconds: 16 covers a busy client, while a peer
   * id (free to make) can no longer hold all max_circuits.
   */
  peer_max_circuits: 16,
  /**
   * circuits at once from one source IP; 0 = unlimited. Several peers share
   * an IP behind a NAT (4 busy clients at peer_max_circuits), and one address
   * holds at most 1/16 of the default max_circuits. Matches ip_max_connections:
   * one connection carries many circuits, so it does not bound them alone.
   */
  ip_max_circuits: 64,
  /**
   * seconds without a byte in either direction after which a circuit is
   * closed; 0 = never. Peers keep live connections busy (js-libp2p pings
   * every 10 s, go-libp2p's yamux every 30 s, rust apps use ping), so 5 min
   * of silence is a dead or stalled circuit holding buffers and a slot.
   */
  circuit_idle_timeout_seconds: 300,
  /**
   * bytes buffered in all circuits together; at it, circuits stop reading and
   * new circuits are refused; 0 = unlimited. Each circuit's yamux windows are
   * its share of it (buffer-budget.ts); without a relay-wide bound, 16 MiB
   * windows let a few hundred stalled circuits pin gigabytes. 256 MiB leaves room
   * for healthy circuits (which hold little: what they read is sent on at
   * once) in a pod of 512 MiB–1 GiB.
   */
  max_buffered_bytes: 256 * 1024 ** 2
} as const

/** seconds: a whole number, 0 (= unlimited) allowed, at most MAX_TIMER_SECONDS */
const unlimitedSeconds = z.number().int().min(0)
  .max(MAX_TIMER_SECONDS, `at most ${MAX_TIMER_SECONDS} seconds (the longest timer Node.js holds, ~24.8 days); 0 = unlimited`)

/**
 * Rate limits, shared by the fleet through Redis when `redis_url` is set
 * (see README "Rate limits"). rust-libp2p's relay allows 30 reservations per
 * 2 min per peer and 60 per minute per IP, locally.
 */
export const DEFAULT_RATE_LIMITS = {
  ip_connections_per_second: 20,
  peer_reservations_per_minute: 30,
  peer_circuits_per_minute: 120,
  account_circuits_per_minute: 0
} as const

export const limitsSchema = z.object({
  max_reservations: z.number().int().min(0).default(DEFAULT_LIMITS.max_reservations),
  reservation_ttl_seconds: z.number().int().min(30).max(86_400).default(DEFAULT_LIMITS.reservation_ttl_seconds),
  max_circuits: z.number().int().min(0).default(DEFAULT_LIMITS.max_circuits),
  circuit_data_limit_bytes: z.number().int().min(0).default(DEFAULT_LIMITS.circuit_data_limit_bytes),
  circuit_duration_seconds: unlimitedSeconds.default(DEFAULT_LIMITS.circuit_duration_seconds),
  max_connections: z.number().int().min(0).default(DEFAULT_LIMITS.max_connections),
  max_pending_connections: z.number().int().min(1).default(DEFAULT_LIMITS.max_pending_connections),
  handshake_timeout_seconds: z.number().int().min(1).max(120).default(DEFAULT_LIMITS.handshake_timeout_seconds),
  ip_max_connections: z.number().int().min(0).default(DEFAULT_LIMITS.ip_max_connections),
  peer_max_circuits: z.number().int().min(0).default(DEFAULT_LIMITS.peer_max_circuits),
  ip_max_circuits: z.number().int().min(0).default(DEFAULT_LIMITS.ip_max_circuits),
  circuit_idle_timeout_seconds: unlimitedSeconds.default(DEFAULT_LIMITS.circuit_idle_timeout_seconds),
  max_buffered_bytes: z.number().int().min(0).default(DEFAULT_LIMITS.max_buffered_bytes)
}).strict()

export const rateLimitsSchema = z.object({
  redis_url: z.url({ protocol: /^rediss?$/ }).optional(),
  ip_connections_per_second: z.number().int().min(0).default(DEFAULT_RATE_LIMITS.ip_connections_per_second),
  peer_reservations_per_minute: z.number().int().min(0).default(DEFAULT_RATE_LIMITS.peer_reservations_per_minute),
  peer_circuits_per_minute: z.number().int().min(0).default(DEFAULT_RATE_LIMITS.peer_circuits_per_minute),
  account_circuits_per_minute: z.number().int().min(0).default(DEFAULT_RATE_LIMITS.account_circuits_per_minute)
}).strict()

const multiaddrString = z.string().refine((s) => {
  try { multiaddr(s); return true } catch { return false }
}, { message: 'not a valid multiaddr' })

/**
 * The relay's config file. The first five fields are the original
 * `pos-p2p-relay` config (`keypair` is the hex of the protobuf-encoded
 * private key, byte-compatible with rust-libp2p's `Keypair::to_protobuf_encoding`).
 */
const authSchema = z.object({
  /** refuse reservations and circuits from peers without a valid account ticket */
  enabled: z.boolean().default(false),
  /** JWKS of the ticket keys; default `<api_url>/api/p2p/ticket-keys` unless ticket_keys is set */
  ticket_keys_url: z.url({ protocol: /^https?$/ }).optional(),
  /**
   * Public ticket keys configured offline (a JWKS, as `pos-relay keys public`
   * prints it). With these and no ticket_keys_url the relay never fetches
   * keys; with both it accepts either.
   */
  ticket_keys: z.object({
    keys: z.array(z.record(z.string(), z.unknown())
      // a relay never needs, and should never hold, the signing key
      .refine((k) => !('d' in k), 'a private key: relays take public keys only (`pos-relay keys public --in <keys file>` prints them)'))
      .min(1, 'ticket_keys.keys must hold at least one public key')
  }, { error: 'a JWKS object {"keys": [...]} of public keys, as `pos-relay keys public` prints it' }).strict().optional(),
  /** Redis for revocations, metering, quotas and per-account reservation counts (shared by the fleet) */
  redis_url: z.url({ protocol: /^rediss?$/ }).optional(),
  /**
   * tiers by name (see @pos-relay/accounts DEFAULT_TIERS when absent), in
   * discovery's tiers file format and checked by the same schema: a tier one
   * accepts and the other refuses would split the fleet's rules
   */
  tiers: tiersSchema.optional(),
  /** usage is flushed to Redis this often; a crash loses at most this much metering */
  metering_interval_seconds: z.number().int().min(1).max(300).default(5)
}).strict()

export const relayConfigSchema = z.object({
  id: z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only'),
  api_url: z.url({ protocol: /^https?$/ }).optional(),
  p2p_secret: z.string().min(1, 'p2p_secret must not be empty'),
  port: z.number().int().min(0).max(65_535).default(DEFAULT_PORT),
  keypair: z.string().regex(/^[0-9a-f]+$/i, 'hex of a protobuf-encoded libp2p private key'),
  /** address the TCP (and QUIC) listeners bind to: an IPv4 or IPv6 literal */
  host: z.string().refine((s) => isIP(s) !== 0, { message: 'must be an IPv4 or IPv6 address (e.g. 0.0.0.0 or ::), not a host name' }).default('0.0.0.0'),
  /**
   * Also serve QUIC (quic-v1) on UDP `port`, as the original relay did on
   * UDP 7373. Off only where the native QUIC module cannot load or UDP is
   * not wanted; see README "QUIC".
   */
  quic: z.boolean().default(true),
  /**
   * public multiaddrs advertised in reservations and registered with
   * discovery; with QUIC on and no quic-v1 address among them, each TCP one
   * is also announced as QUIC on the same host and port (see quicAnnounce)
   */
  announce: z.array(multiaddrString).default([]),
  metrics_host: z.string().default('0.0.0.0'),
  metrics_port: z.number().int().min(0).max(65_535).default(DEFAULT_METRICS_PORT),
  /** seconds open circuits may keep running after SIGTERM */
  drain_seconds: z.number().int().min(0).max(3600).default(30),
  /**
   * Registration only refreshes an entry that exists and never creates one
   * (discovery's refresh_only): for relays of a RelayPool, whose entries the
   * operator creates and removes (docs/registry.md).
   */
  refresh_only: z.boolean().default(false),
  /**
   * A JSON file of the limits that apply without a restart (live-limits.ts,
   * RELOADABLE_LIMITS): read at start and every 10 s; what it sets wins over
   * `limits` / `rate_limits` above, what it leaves out keeps their value.
   */
  limits_file: z.string().min(1).optional(),
  limits: limitsSchema.default(limitsSchema.parse({})),
  rate_limits: rateLimitsSchema.default(rateLimitsSchema.parse({})),
  auth: authSchema.default(authSchema.parse({}))
}).strict()

export type RelayConfig = z.infer<typeof relayConfigSchema>
export type RelayLimits = RelayConfig['limits']
export type RelayRateLimits = RelayConfig['rate_limits']

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Formats zod issues as `field: problem` lines. */
export function formatIssues (err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ')
}

export function parseConfig (value: unknown, source = 'config'): RelayConfig {
  const result = relayConfigSchema.safeParse(value)
  if (!result.success) throw new ConfigError(`${source}: ${formatIssues(result.error)}`)
  // a QUIC address announced by a relay that does not serve QUIC would send
  // every QUIC peer to a port nobody answers
  if (!result.data.quic) {
    const quicAddr = result.data.announce.find(isQuicAddr)
    if (quicAddr != null) throw new ConfigError(`${source}: announce: ${quicAddr} is a QUIC address but quic is off (remove it, or turn QUIC on)`)
  }
  // fail early on a keypair that does not decode, not at libp2p start
  decodeKeypair(result.data.keypair)
  return result.data
}

/** true for a `/…/udp/<port>/quic-v1…` address */
export function isQuicAddr (addr: string): boolean {
  return multiaddr(addr).getComponents().some((c) => c.name === 'quic-v1')
}

/**
 * The QUIC twin of an announced TCP address: the same host and port over
 * UDP (`/ip4/203.0.113.7/tcp/7373` → `/ip4/203.0.113.7/udp/7373/quic-v1`,
 * a `/p2p/…` suffix kept), or undefined for an address that is not
 * `/<ip4|ip6|dns|dns4|dns6>/<host>/tcp/<port>[/p2p/<id>]`. The same port
 * number is the deployment contract: the relay binds UDP and TCP on one port
 * and the operator's pods map both with one hostPort.
 */
export function quicTwin (addr: string): string | undefined {
  const parts = multiaddr(addr).getComponents()
  const [host, tcp, ...rest] = parts
  if (host == null || tcp == null || tcp.name !== 'tcp') return undefined
  if (!['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(host.name)) return undefined
  if (rest.length > 1 || (rest.length === 1 && rest[0]!.name !== 'p2p')) return undefined
  return `/${host.name}/${host.value}/udp/${tcp.value}/quic-v1${rest.length === 1 ? `/p2p/${rest[0]!.value}` : ''}`
}

/**
 * What the relay announces: `announce` as configured, plus, with QUIC on
 * and no QUIC address listed by the operator, the QUIC twin of each TCP
 * address. An operator whose UDP port is mapped differently lists the QUIC
 * address explicitly, and then exactly the configured list is announced.
 */
export function effectiveAnnounce (config: Pick<RelayConfig, 'announce' | 'quic'>): string[] {
  if (!config.quic || config.announce.some(isQuicAddr)) return [...config.announce]
  const twins = config.announce.map(quicTwin).filter((a): a is string => a != null)
  return [...new Set([...config.announce, ...twins])]
}

export async function loadConfig (path: string): Promise<RelayConfig> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    if (err.code === 'ENOENT') throw new ConfigError(`config file ${path} does not exist; create it with \`pos-relay init --config ${path}\``)
    throw new ConfigError(`cannot read config file ${path}: ${err.message}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err: any) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${err.message}`)
  }
  return parseConfig(json, path)
}

/**
 * Writes the config with mode 0600 (it holds the secret and the private key).
 * Refuses to replace an existing file unless `force`.
 */
export async function writeConfig (path: string, config: RelayConfig, force = false): Promise<void> {
  const text = JSON.stringify(config, null, 2) + '\n'
  if (!force) {
    // 'wx' fails if the file exists, atomically (no check-then-write race); O_EXCL also refuses a symlink
    await writeNew(path, text, (err) => err.code === 'EEXIST'
      ? new ConfigError(`config file ${path} already exists; pass --force to overwrite it`)
      : new ConfigError(`cannot write config file ${path}: ${err.message}`))
    return
  }
  // A symlink at the path could point the secret anywhere (another user's file, /etc/...): refuse it.
  const existing = await lstat(path).catch((err: any) => { if (err.code === 'ENOENT') return undefined; throw err })
  if (existing?.isSymbolicLink() === true) throw new ConfigError(`config file ${path} is a symbolic link; refusing to follow it (remove it or pass the real path)`)
  if (existing != null && !existing.isFile()) throw new ConfigError(`config file ${path} is not a regular file`)
  // The secret goes into a new 0600 file that replaces the old one by rename: it is never readable
  // with the old file's mode (overwriting in place kept e.g. 0644 until a chmod afterwards).
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  await writeNew(tmp, text, (err) => new ConfigError(`cannot write config file ${path}: ${err.message}`))
  try {
    await rename(tmp, path)
  } catch (err: any) {
    await rm(tmp, { force: true })
    throw new ConfigError(`cannot write config file ${path}: ${err.message}`)
  }
}

/** Creates `path` (must not exist) with mode 0600 from the start and writes `text`. */
async function writeNew (path: string, text: string, failure: (err: NodeJS.ErrnoException) => Error): Promise<void> {
  let handle
  try {
    handle = await open(path, 'wx', 0o600)
  } catch (err: any) {
    throw failure(err)
  }
  try {
    // the umask can only narrow 0600; this makes it exact
    await handle.chmod(0o600)
    await handle.writeFile(text)
  } finally {
    await handle.close()
  }
}

export async function newKeypairHex (): Promise<string> {
  const key = await generateKeyPair('Ed25519')
  return Buffer.from(privateKeyToProtobuf(key)).toString('hex')
}

export function decodeKeypair (hex: string): PrivateKey {
  try {
    return privateKeyFromProtobuf(Buffer.from(hex, 'hex'))
  } catch (err: any) {
    throw new ConfigError(`keypair: cannot decode private key: ${err.message}`)
  }
}

export function peerIdOfKeypair (hex: string): string {
  return peerIdFromPrivateKey(decodeKeypair(hex)).toString()
}

export interface NewConfigInput {
  p2p_secret: string
  api_url?: string | undefined
  port?: number | undefined
  id?: string | undefined
}

export async function newConfig (input: NewConfigInput): Promise<RelayConfig> {
  return parseConfig({
    id: input.id ?? randomUUID(),
    ...(input.api_url != null ? { api_url: input.api_url } : {}),
    p2p_secret: input.p2p_secret,
    port: input.port ?? DEFAULT_PORT,
    keypair: await newKeypairHex()
  })
}
