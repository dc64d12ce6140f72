//! # pos-relay-client
//!
//! A rust-libp2p client for [pos-relay](https://github.com/) relays: it finds
//! relays through the discovery API, ranks them for a peer by rendezvous
//! hashing (so peers need not connect to every relay), gets short-lived
//! account tickets with the account's API key and presents them on
//! `/pos-relay/ticket/1.0.0` before reserving or dialing, keeps reservations
//! alive on the relays ranked first for the local peer (re-presenting renewed
//! tickets at 80 % of their lifetime), fails over at once to the next relay of
//! its ranking when one dies, drains or refuses ([`failover`]), and dials peers
//! through the relays ranked for them.
//!
//! The pieces are usable alone ([`discovery`], [`tickets`], [`addresses`]) or
//! together as the [`Behaviour`], a `NetworkBehaviour` that sits next to
//! rust-libp2p's relay client in the app's `#[derive(NetworkBehaviour)]`.
//! The contract all clients share is `docs/protocol.md` and the test vectors
//! in `docs/protocol-vectors/`.
#![deny(missing_docs)]

pub mod addresses;
mod behaviour;
pub mod discovery;
pub mod failover;
pub mod tickets;

pub use addresses::AddressPolicy;
pub use behaviour::{Behaviour, Config, Event};
pub use discovery::{fetch_ranked_relays, fetch_relays, rank_relays, ranked_count, RelayInfo, RANKED_COUNT_MAX};
pub use failover::{relays_to_dial, relays_to_reserve};
pub use tickets::{Ticket, TicketReply, TICKET_PROTOCOL};
