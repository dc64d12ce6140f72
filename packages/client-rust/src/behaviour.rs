//! The [`Behaviour`]: discovery polling, tickets, reservations kept alive on
//! the relays ranked for us (failing over as [`crate::failover`] says), dials
//! through the relays ranked for a target.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{Future, FutureExt, StreamExt};
use libp2p::core::transport::{ListenerId, PortUse};
use libp2p::core::Endpoint;
use libp2p::multiaddr::{Multiaddr, Protocol};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, ListenOpts, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::PeerId;
use rand::Rng;
use tokio::time::{Instant, Sleep};

use crate::addresses::AddressPolicy;
use crate::discovery::{fetch_ranked_relays, ranked_count, DiscoveryError, RelayInfo, MAX_RESPONSE_BYTES};
use crate::failover::{relays_to_dial, Failover, ATTEMPT_TIMEOUT};
use crate::tickets::{fetch_ticket, present_ticket, Ticket, TicketFetchError, TicketReply, TICKET_PROTOCOL};

mod config;
mod dials;
mod event;
mod links;
mod polling;
mod reservations;
mod swarm;

pub use config::Config;
pub use event::Event;

/// A relay we talk to directly: its connection and the ticket presented on it.
#[derive(Default)]
struct Link {
    addrs: Vec<Multiaddr>,
    connections: usize,
    dialing: Option<ConnectionId>,
    /// jti of the ticket the relay holds for us on the current connection
    presented: Option<String>,
    presenting: bool,
    /// the last failure on this link, reported to whoever waits on it
    failed: Option<String>,
    /// when a reservation on this relay ended with its connection: until that connection's
    /// `ConnectionClosed` arrives (or `CLOSING_GRACE` passes) it must not be used, or the relay
    /// client dials the relay itself, QUIC included, and a dead relay takes 5 s to fail
    closing_since: Option<Instant>,
}

/// How long a link whose reservation ended with its connection waits for that connection's close.
const CLOSING_GRACE: Duration = Duration::from_secs(1);

/// A relay we hold a reservation on, are reserving on, or keep until its replacement holds.
struct Reservation {
    info: RelayInfo,
    listener: Option<ListenerId>,
    /// our circuit address on the relay: the reservation holds
    addr: Option<Multiaddr>,
    /// the reservation attempt in progress (connect, ticket, RESERVE)
    attempt: Option<Attempt>,
}

struct Attempt {
    started: Instant,
    /// a background retry of an unusable relay (its failure schedules no refresh)
    retry: bool,
}

/// A dial of `target` through its ranked relays.
struct Dial {
    target: PeerId,
    candidates: Vec<RelayInfo>,
    index: usize,
    circuit: Option<ConnectionId>,
    last_error: String,
}

enum Done {
    Relays(Result<Vec<RelayInfo>, DiscoveryError>),
    /// the relays discovery ranked for a dial target (`?for=<target>`)
    DialRelays {
        target: PeerId,
        result: Result<Vec<RelayInfo>, DiscoveryError>,
    },
    Ticket(Result<Ticket, TicketFetchError>),
    Presented {
        relay: PeerId,
        jti: String,
        result: Result<TicketReply, String>,
    },
}

/// A [`NetworkBehaviour`] that keeps reservations on the relays ranked for the
/// local peer and dials peers through the relays ranked for them.
///
/// When a relay fails (it cannot be reached, refuses the ticket or the reservation,
/// or its connection closes and the immediate reconnect fails) it is unusable: the
/// next usable relay of our ranking takes its place at once, the failed one is retried
/// in the background and chosen again once a retry holds, and one jittered discovery
/// refresh is scheduled (the rule of `docs/protocol.md` section 4, in [`crate::failover`]).
/// [`Event::ReservationFailed`], [`Event::ReservationLost`] and
/// [`Event::ReservationReleased`] report it.
///
/// It composes with rust-libp2p's relay client (the transport side made by
/// [`SwarmBuilder::with_relay_client`](libp2p::SwarmBuilder)): put both in your
/// `#[derive(NetworkBehaviour)]` struct. Reservations are made by asking the
/// swarm to listen on `<relay>/p2p-circuit`, after the account ticket (when an
/// API key is configured) was presented on `/pos-relay/ticket/1.0.0`. DCUtR, if
/// wanted, is the app's own `dcutr::Behaviour` next to this one.
///
/// ```no_run
/// use libp2p::{identify, noise, relay, swarm::NetworkBehaviour, tcp, yamux};
///
/// #[derive(NetworkBehaviour)]
/// struct AppBehaviour {
///     relay_client: relay::client::Behaviour,
///     identify: identify::Behaviour,
///     pos_relay: pos_relay_client::Behaviour,
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mut swarm = libp2p::SwarmBuilder::with_new_identity()
///     .with_tokio()
///     .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
///     .with_relay_client(noise::Config::new, yamux::Config::default)?
///     .with_behaviour(|key, relay_client| AppBehaviour {
///         relay_client,
///         identify: identify::Behaviour::new(identify::Config::new("/ipfs/id/1.0.0".into(), key.public())),
///         pos_relay: pos_relay_client::Behaviour::new(
///             key.public().to_peer_id(),
///             pos_relay_client::Config::new("https://discovery.example.com").with_api_key("pk_..."),
///         ),
///     })?
///     .build();
/// // reservations come by themselves; to reach another peer:
/// # let other: libp2p::PeerId = libp2p::PeerId::random();
/// swarm.behaviour_mut().pos_relay.dial(other);
/// # Ok(()) }
/// ```
pub struct Behaviour {
    config: Config,
    local_peer: PeerId,
    http: reqwest::Client,
    streams: libp2p_stream::Behaviour,
    control: libp2p_stream::Control,
    known: Vec<RelayInfo>,
    polled_once: bool,
    links: HashMap<PeerId, Link>,
    reservations: Vec<Reservation>,
    failover: Failover,
    dials: Vec<Dial>,
    /// dials asked for before the first relay list arrived
    waiting_dials: Vec<PeerId>,
    /// discovery lookups of dial targets' relays (`?for=<target>`), one per dial
    dial_lookups: u64,
    ticket: Option<Ticket>,
    ticket_in_flight: bool,
    ticket_failures: u32,
    ticket_retry_at: Option<Instant>,
    poll_at: Option<Instant>,
    poll_in_flight: bool,
    discovery_failures: u32,
    tasks: FuturesUnordered<BoxFuture<'static, Done>>,
    pending: VecDeque<ToSwarm<Event, THandlerInEvent<Self>>>,
    timer: Option<Pin<Box<Sleep>>>,
    waker: Option<Waker>,
}

fn with_jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.9..1.1))
}

/// 1 s, 2 s, 4 s ... capped at 30 s, for the discovery API.
fn api_backoff(failures: u32) -> Duration {
    with_jitter(Duration::from_secs(2u64.pow(failures.saturating_sub(1).min(5))).min(Duration::from_secs(30)))
}

/// The addrs we connect to a relay on: its TCP ones when it has any, else all. A relay
/// process that dies resets its TCP connections and refuses new ones at once, so we
/// fail over within milliseconds; over QUIC its death shows only at the idle timeout
/// (10 s), and a dial to its dead port only at the handshake timeout (5 s). Measured
/// with a SIGKILLed relay: 15-20 s to a new reservation over QUIC.
fn connect_addrs(addrs: &[Multiaddr]) -> Vec<Multiaddr> {
    let tcp: Vec<Multiaddr> = addrs
        .iter()
        .filter(|a| a.iter().any(|p| matches!(p, Protocol::Tcp(_))))
        .cloned()
        .collect();
    if tcp.is_empty() {
        addrs.to_vec()
    } else {
        tcp
    }
}

fn circuit_addr(relay_addr: &Multiaddr) -> Multiaddr {
    relay_addr.clone().with(Protocol::P2pCircuit)
}

impl Behaviour {
    /// A behaviour for the local peer `local_peer` (the ranking key for its own reservations).
    pub fn new(local_peer: PeerId, config: Config) -> Self {
        let streams = libp2p_stream::Behaviour::new();
        let control = streams.new_control();
        Behaviour {
            config,
            local_peer,
            http: reqwest::Client::new(),
            streams,
            control,
            known: Vec::new(),
            polled_once: false,
            links: HashMap::new(),
            reservations: Vec::new(),
            failover: Failover::new(Box::new(|| rand::thread_rng().gen::<f64>())),
            dials: Vec::new(),
            waiting_dials: Vec::new(),
            dial_lookups: 0,
            ticket: None,
            ticket_in_flight: false,
            ticket_failures: 0,
            ticket_retry_at: None,
            poll_at: None,
            poll_in_flight: false,
            discovery_failures: 0,
            tasks: FuturesUnordered::new(),
            pending: VecDeque::new(),
            timer: None,
            waker: None,
        }
    }

    /// Dials `peer` through the relays ranked for it: its first `relay_count`,
    /// then the next ones up to `relay_count + 2`, each after the previous one
    /// refused. Reports [`Event::Connected`] or [`Event::DialFailed`].
    pub fn dial(&mut self, peer: PeerId) {
        if self.polled_once {
            self.start_dial(peer);
        } else {
            self.waiting_dials.push(peer);
        }
        self.wake();
    }

    /// Discovery lookups of dial targets' relays made so far (one per [`Behaviour::dial`]).
    pub fn dial_lookups(&self) -> u64 {
        self.dial_lookups
    }

    /// The usable relays from the last relay list.
    pub fn known_relays(&self) -> &[RelayInfo] {
        &self.known
    }

    /// The relays we reserve on now, in rank order: the first `relay_count` of our
    /// ranking that are not unusable (`docs/protocol.md` section 4).
    pub fn chosen_relays(&self) -> Vec<PeerId> {
        self.chosen().iter().map(|r| r.peer_id).collect()
    }

    /// Relays that failed and have not been retried successfully since.
    pub fn unusable_relays(&self) -> Vec<PeerId> {
        self.known
            .iter()
            .map(|r| r.peer_id)
            .filter(|p| self.failover.is_unusable(p))
            .collect()
    }

    /// Our circuit addresses: where other peers reach us through relays.
    pub fn circuit_addresses(&self) -> Vec<Multiaddr> {
        self.reservations.iter().filter_map(|r| r.addr.clone()).collect()
    }

    /// The relays a dialer tries for `peer`, in order (at most `relay_count + 2`).
    pub fn relays_for(&self, peer: &PeerId) -> Vec<RelayInfo> {
        relays_to_dial(&self.known, &peer.to_base58(), self.config.relay_count)
    }

    fn chosen(&self) -> Vec<RelayInfo> {
        let n = if self.config.reserve {
            self.config.relay_count
        } else {
            0
        };
        self.failover.chosen(&self.known, &self.local_peer.to_base58(), n)
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn emit(&mut self, event: Event) {
        self.pending.push_back(ToSwarm::GenerateEvent(event));
    }

    /// One pass over everything with work to do now.
    fn drive(&mut self, now: Instant) {
        if !self.poll_in_flight
            && self.poll_at.is_none_or(|t| t <= now)
            && (self.poll_at.is_some() || !self.polled_once)
        {
            self.start_poll();
        }
        // the refresh a relay failure scheduled; a poll already in flight brings a fresh list anyway
        if self.failover.take_refresh(now) && !self.poll_in_flight {
            self.start_poll();
        }
        if self.config.api_key.is_some() && !self.ticket_in_flight {
            let due = match &self.ticket {
                None => self.ticket_retry_at.is_none_or(|t| t <= now),
                Some(t) => Instant::from_std(t.renew_at()) <= now && self.ticket_retry_at.is_none_or(|t| t <= now),
            };
            if due {
                self.start_ticket_fetch();
            }
        }
        self.drive_reservations(now);
        self.drive_dials();
    }
}
