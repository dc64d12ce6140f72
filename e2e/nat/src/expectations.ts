import { transportOf, type Impl } from './lab.ts'
import type { NatBehaviour } from './topology.ts'

export interface Expectation {
  /** how the payload must travel; `refused`: not at all, the relay refuses the circuit */
  connection: 'direct' | 'relayed' | 'refused'
  /** why, when it is not the hoped-for direct connection */
  reason?: string
  /** short key for footnotes */
  note?: 'js-tcp' | 'symmetric' | 'mixed-transport'
}

export const REASONS = {
  'js-tcp': 'js-libp2p on Node cannot bind an outgoing TCP socket to its listening port (Node has no SO_REUSEPORT for outgoing sockets, js-libp2p#2620). ' +
    'Its connection to the relay leaves from an ephemeral port, so the address the relay observes is a NAT mapping that only ever talks to the relay, ' +
    'its listening port is not mapped at all, and its own hole-punch SYN leaves from yet another port: the other peer\'s router drops it. ' +
    'TCP hole punching with a js peer behind a NAT cannot work, whatever the other implementation (libp2p/test-plans#864 marks js "known-failing" for the same reason).',
  symmetric: 'Symmetric NAT (MASQUERADE --random-fully): every new connection (TCP) or UDP flow (QUIC) gets a new random external port, so the address the relay observed, which DCUtR exchanges, ' +
    'is not where the hole-punch packets come from and not where the other side\'s packets are let in. DCUtR fails by design and the connection stays relayed.',
  'mixed-transport': 'The two peers listen on different transports: the rust QUIC peer reached the relay and listens over UDP, the other peer over TCP, so the observed addresses DCUtR exchanges are a UDP one and a TCP one. ' +
    'Each side can only hole-punch towards the other\'s address with a transport it does not listen on: its packets leave from a fresh port that the other side never heard of, and the other side\'s router drops them. ' +
    'The relay bridges the two transports (the circuit arrives over TCP and leaves over QUIC, or the reverse) and the connection stays relayed.'
} as const

/** What each cell of the matrix must show. Asserted exactly: an unexpected direct connection fails the test too. */
export function expectation (nat: NatBehaviour, dialer: Impl, listener: Impl): Expectation {
  if (nat === 'symmetric') return { connection: 'relayed', reason: REASONS.symmetric, note: 'symmetric' }
  if (dialer === 'js' || listener === 'js') return { connection: 'relayed', reason: REASONS['js-tcp'], note: 'js-tcp' }
  if (transportOf(dialer) !== transportOf(listener)) return { connection: 'relayed', reason: REASONS['mixed-transport'], note: 'mixed-transport' }
  return { connection: 'direct' }
}

/**
 * The cells with accounts on (relay with --auth), all behind the eim NAT,
 * where hole punching works: each implementation dials and listens once with
 * a ticket, plus one dialer without a ticket, which the relay must refuse.
 */
export interface AuthCellSpec {
  dialer: Impl
  listener: Impl
  /** false: the dialer presents no ticket and its circuit must be refused (PERMISSION_DENIED) */
  dialerTicket: boolean
}

export const AUTH_CELLS: AuthCellSpec[] = [
  { dialer: 'rust', listener: 'go', dialerTicket: true },
  { dialer: 'go', listener: 'js', dialerTicket: true },
  { dialer: 'js', listener: 'rust', dialerTicket: true },
  { dialer: 'go', listener: 'rust', dialerTicket: false }
]

/** What a cell with accounts on must show: as without accounts, or refused when the dialer has no ticket. */
export function authExpectation (spec: AuthCellSpec): Expectation {
  if (!spec.dialerTicket) return { connection: 'refused', reason: 'the dialer presents no ticket, so the relay refuses its circuit with PERMISSION_DENIED (the listener holds a reservation with its own ticket)' }
  return expectation('eim', spec.dialer, spec.listener)
}
