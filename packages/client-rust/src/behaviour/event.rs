//! [`Event`]: what the [`Behaviour`](super::Behaviour) reports.

use super::*;

/// What the [`Behaviour`] reports to the app.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// a relay list arrived; `chosen` are the relays we reserve on, in rank order
    RelaysUpdated {
        /// how many usable relays the list had
        known: usize,
        /// our relays
        chosen: Vec<PeerId>,
    },
    /// the relay list could not be had (retried with backoff)
    DiscoveryFailed {
        /// why
        error: String,
    },
    /// a new ticket arrived from the discovery API
    TicketIssued {
        /// how long it is valid
        lifetime: Duration,
    },
    /// no ticket could be had (retried with backoff)
    TicketFailed {
        /// why
        error: String,
    },
    /// a relay refused our ticket
    TicketRejected {
        /// the relay
        relay: PeerId,
        /// its reason
        reason: String,
    },
    /// a reservation is in place: other peers reach us at `addr`
    ReservationAccepted {
        /// the relay
        relay: PeerId,
        /// our circuit address on it
        addr: Multiaddr,
    },
    /// a reservation we held ended (the relay connection closed or the relay refused
    /// the renewal); we reconnect at once, and if that fails the relay is unusable
    ReservationLost {
        /// the relay
        relay: PeerId,
        /// why, when known
        error: Option<String>,
    },
    /// an attempt to reserve on a relay failed (connect, ticket, RESERVE or timeout): the
    /// relay is unusable, the next relay of our ranking takes its place at once, and it is
    /// retried in the background (0.5 s doubling to 10 s, jittered)
    ReservationFailed {
        /// the relay
        relay: PeerId,
        /// why
        error: String,
        /// whether this was a background retry of an unusable relay
        retry: bool,
    },
    /// a reservation given up on purpose: the relay is no longer among our chosen ones
    /// and they all hold reservations (make-before-break)
    ReservationReleased {
        /// the relay
        relay: PeerId,
    },
    /// a dial through a relay reached the target
    Connected {
        /// the target
        peer: PeerId,
        /// the relay the circuit goes through
        relay: PeerId,
        /// the relayed connection
        connection_id: ConnectionId,
    },
    /// every relay tried for the target refused or failed
    DialFailed {
        /// the target
        peer: PeerId,
        /// the last error
        error: String,
    },
}
