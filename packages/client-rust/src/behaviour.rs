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

/// How the [`Behaviour`] finds relays and what it keeps.
#[derive(Clone)]
pub struct Config {
    discovery_url: String,
    api_key: Option<String>,
    relay_count: usize,
    reserve: bool,
    poll_interval: Duration,
    address_policy: AddressPolicy,
    max_body_bytes: usize,
    request_timeout: Duration,
}

impl std::fmt::Debug for Config {
    // the API key is a secret: never in logs
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("discovery_url", &self.discovery_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("relay_count", &self.relay_count)
            .field("poll_interval", &self.poll_interval)
            .field("address_policy", &self.address_policy)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Relays from the discovery API at `discovery_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(discovery_url: impl Into<String>) -> Self {
        Config {
            discovery_url: discovery_url.into(),
            api_key: None,
            relay_count: 2,
            reserve: true,
            poll_interval: Duration::from_secs(60),
            address_policy: AddressPolicy::Default,
            max_body_bytes: MAX_RESPONSE_BYTES,
            request_timeout: Duration::from_secs(10),
        }
    }

    /// The account's API key: with it, tickets are fetched and presented before reserving and dialing.
    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// How many relays to hold a reservation on (default 2): the first `relay_count`
    /// usable relays of our ranking. A dialer tries the first `relay_count + 2` relays
    /// of the target's ranking, so give dialers the listeners' value.
    pub fn with_relay_count(mut self, n: usize) -> Self {
        self.relay_count = n.max(1);
        self
    }

    /// Whether to hold reservations at all (default true); a peer that only dials turns this off.
    pub fn with_reservations(mut self, reserve: bool) -> Self {
        self.reserve = reserve;
        self
    }

    /// How often the relay list is refreshed (default 60 s, ±10 % jitter).
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Which relay addrs may be dialed (default: loopback and private allowed).
    pub fn with_address_policy(mut self, policy: AddressPolicy) -> Self {
        self.address_policy = policy;
        self
    }

    /// Largest relay list body read (default 1 MiB).
    pub fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }
}

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

    /// Asks discovery for the relays ranked for `target` (`?for=<target>`); the dial starts
    /// when the answer (or the failure, then with the last polled list) comes.
    fn start_dial(&mut self, target: PeerId) {
        self.dial_lookups += 1;
        let http = self.http.clone();
        let c = self.config.clone();
        self.tasks.push(
            async move {
                let result = fetch_ranked_relays(
                    &http,
                    &c.discovery_url,
                    &target,
                    ranked_count(c.relay_count),
                    c.address_policy,
                    c.max_body_bytes,
                    c.request_timeout,
                )
                .await;
                Done::DialRelays { target, result }
            }
            .boxed(),
        );
    }

    fn on_dial_relays(&mut self, target: PeerId, result: Result<Vec<RelayInfo>, DiscoveryError>) {
        // ranked here too: an older discovery answers the full list
        let candidates = match result {
            Ok(relays) if !relays.is_empty() => relays_to_dial(&relays, &target.to_base58(), self.config.relay_count),
            Ok(_) => self.relays_for(&target),
            Err(e) => {
                self.emit(Event::DiscoveryFailed { error: e.to_string() });
                self.relays_for(&target)
            }
        };
        if candidates.is_empty() {
            self.pending.push_back(ToSwarm::GenerateEvent(Event::DialFailed {
                peer: target,
                error: "no relays known: is the discovery API reachable?".into(),
            }));
            return;
        }
        self.dials.push(Dial {
            target,
            candidates,
            index: 0,
            circuit: None,
            last_error: String::new(),
        });
    }

    fn link(&mut self, info: &RelayInfo) -> &mut Link {
        let link = self.links.entry(info.peer_id).or_default();
        link.addrs.clone_from(&info.addrs);
        link
    }

    fn current_jti(&self) -> Option<&str> {
        self.ticket.as_ref().map(|t| t.jti.as_str())
    }

    /// Moves `relay`'s link towards "connected and holding our current ticket".
    /// Ok(true) when there, Ok(false) while on the way, Err when this attempt failed.
    fn ensure_link(&mut self, info: &RelayInfo) -> Result<bool, String> {
        let tickets = self.config.api_key.is_some();
        let ticket = self.ticket.clone();
        let link = self.link(info);
        if let Some(e) = link.failed.take() {
            return Err(e);
        }
        if link.connections > 0 && link.closing_since.is_some_and(|t| t.elapsed() < CLOSING_GRACE) {
            return Ok(false);
        }
        if link.connections == 0 {
            if link.dialing.is_none() {
                let opts = DialOpts::peer_id(info.peer_id)
                    .addresses(connect_addrs(&info.addrs))
                    .condition(PeerCondition::Always)
                    .build();
                link.dialing = Some(opts.connection_id());
                self.pending.push_back(ToSwarm::Dial { opts });
            }
            return Ok(false);
        }
        if !tickets {
            return Ok(true);
        }
        let Some(ticket) = ticket else {
            return Ok(false); // the ticket fetch is driven separately
        };
        if link.presented.as_deref() == Some(ticket.jti.as_str()) {
            return Ok(true);
        }
        if !link.presenting {
            link.presenting = true;
            self.spawn_presentation(info.peer_id, ticket);
        }
        Ok(false)
    }

    fn spawn_presentation(&mut self, relay: PeerId, ticket: Ticket) {
        let mut control = self.control.clone();
        self.tasks.push(
            async move {
                let exchange = async {
                    let mut stream = control
                        .open_stream(relay, TICKET_PROTOCOL)
                        .await
                        .map_err(|e| e.to_string())?;
                    present_ticket(&mut stream, &ticket.token)
                        .await
                        .map_err(|e| e.to_string())
                };
                let result = tokio::time::timeout(Duration::from_secs(10), exchange)
                    .await
                    .unwrap_or_else(|_| Err("ticket exchange timed out".into()));
                Done::Presented {
                    relay,
                    jti: ticket.jti,
                    result,
                }
            }
            .boxed(),
        );
    }

    fn start_poll(&mut self) {
        self.poll_in_flight = true;
        self.poll_at = None;
        let http = self.http.clone();
        let c = self.config.clone();
        let local = self.local_peer;
        self.tasks.push(
            async move {
                // only the relays ranked for us: relay_count + 2 covers skipping failed ones (section 4)
                Done::Relays(
                    fetch_ranked_relays(
                        &http,
                        &c.discovery_url,
                        &local,
                        ranked_count(c.relay_count),
                        c.address_policy,
                        c.max_body_bytes,
                        c.request_timeout,
                    )
                    .await,
                )
            }
            .boxed(),
        );
    }

    fn start_ticket_fetch(&mut self) {
        let Some(api_key) = self.config.api_key.clone() else {
            return;
        };
        self.ticket_in_flight = true;
        self.ticket_retry_at = None;
        let http = self.http.clone();
        let url = self.config.discovery_url.clone();
        let peer = self.local_peer;
        self.tasks
            .push(async move { Done::Ticket(fetch_ticket(&http, &url, &api_key, &peer).await) }.boxed());
    }

    fn on_relays(&mut self, result: Result<Vec<RelayInfo>, DiscoveryError>, now: Instant) {
        self.poll_in_flight = false;
        self.polled_once = true;
        let relays = match result {
            Ok(r) => r,
            Err(e) => {
                self.discovery_failures += 1;
                self.poll_at = Some(now + api_backoff(self.discovery_failures));
                self.emit(Event::DiscoveryFailed { error: e.to_string() });
                self.flush_waiting_dials();
                return;
            }
        };
        // an empty list backs off like a failure, so clients do not hammer discovery
        if relays.is_empty() {
            self.discovery_failures += 1;
            self.poll_at = Some(now + api_backoff(self.discovery_failures));
        } else {
            self.discovery_failures = 0;
            self.poll_at = Some(now + with_jitter(self.config.poll_interval));
        }
        self.known = relays;
        // relays missing from a fresh list are forgotten; the others keep their state
        self.failover.forget_missing(&self.known);
        for r in &mut self.reservations {
            if let Some(info) = self.known.iter().find(|k| k.peer_id == r.info.peer_id) {
                r.info = info.clone();
            }
        }
        let chosen = self.chosen_relays();
        self.emit(Event::RelaysUpdated {
            known: self.known.len(),
            chosen,
        });
        self.flush_waiting_dials();
    }

    fn flush_waiting_dials(&mut self) {
        for peer in std::mem::take(&mut self.waiting_dials) {
            self.start_dial(peer);
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

    /// Brings the reservations in line with the failover rule (`docs/protocol.md` section 4):
    /// reserve on the chosen relays at once, retry unusable ones when due, and release relays
    /// no longer chosen once every chosen one holds (make-before-break).
    fn drive_reservations(&mut self, now: Instant) {
        let chosen = self.chosen();
        let retries = match self.config.reserve {
            true => self
                .failover
                .retries_due(&self.known, &self.local_peer.to_base58(), self.config.relay_count, now),
            false => Vec::new(),
        };
        let starts = chosen
            .iter()
            .map(|r| (r, false))
            .chain(retries.iter().map(|r| (r, true)));
        for (info, retry) in starts {
            let i = match self.reservations.iter().position(|r| r.info.peer_id == info.peer_id) {
                Some(i) => i,
                None => {
                    self.reservations.push(Reservation {
                        info: info.clone(),
                        listener: None,
                        addr: None,
                        attempt: None,
                    });
                    self.reservations.len() - 1
                }
            };
            let r = &mut self.reservations[i];
            if r.addr.is_none() && r.attempt.is_none() {
                r.attempt = Some(Attempt { started: now, retry });
            }
        }
        for i in 0..self.reservations.len() {
            let info = self.reservations[i].info.clone();
            if self.reservations[i].addr.is_some() {
                // keep the current ticket presented, or the relay ends the reservation when the old one expires
                if let Err(e) = self.ensure_link(&info) {
                    tracing::debug!(relay = %info.peer_id, error = %e, "ticket renewal on a reserved relay failed");
                }
                continue;
            }
            let Some(started) = self.reservations[i].attempt.as_ref().map(|a| a.started) else {
                continue;
            };
            if now >= started + ATTEMPT_TIMEOUT {
                let error = format!("no reservation within {} s", ATTEMPT_TIMEOUT.as_secs());
                self.attempt_failed(i, error, now);
                continue;
            }
            if self.reservations[i].listener.is_some() {
                continue; // RESERVE sent: the relay client reports the outcome
            }
            match self.ensure_link(&info) {
                Ok(true) => {
                    let Some(addr) = connect_addrs(&info.addrs).into_iter().next() else {
                        self.attempt_failed(i, "no addr".into(), now);
                        continue;
                    };
                    let opts = ListenOpts::new(circuit_addr(&addr));
                    self.reservations[i].listener = Some(opts.listener_id());
                    self.pending.push_back(ToSwarm::ListenOn { opts });
                }
                Ok(false) => {}
                Err(error) => self.attempt_failed(i, error, now),
            }
        }
        self.release_unchosen();
    }

    /// Drops reservations on relays no longer chosen, but only once every chosen relay holds one
    /// (and some relay is chosen: an empty relay list, say from a discovery restarting with an
    /// empty store, is no reason to drop reservations that work); entries that neither hold nor
    /// try go at once.
    fn release_unchosen(&mut self) {
        let chosen = self.chosen();
        let all_hold = !chosen.is_empty()
            && chosen.iter().all(|c| {
                self.reservations
                    .iter()
                    .any(|r| r.info.peer_id == c.peer_id && r.addr.is_some())
            });
        let mut released = Vec::new();
        let mut removed = Vec::new();
        self.reservations.retain(|r| {
            let keep = chosen.iter().any(|c| c.peer_id == r.info.peer_id)
                || r.attempt.is_some()
                || (r.addr.is_some() && !all_hold);
            if !keep {
                removed.extend(r.listener);
                if r.addr.is_some() {
                    released.push(r.info.peer_id);
                }
            }
            keep
        });
        for id in removed {
            self.pending.push_back(ToSwarm::RemoveListener { id });
        }
        for relay in released {
            self.emit(Event::ReservationReleased { relay });
        }
    }

    /// The attempt on reservation `i` failed: the relay is unusable until a retry holds,
    /// and the next drive reserves on the next usable relay of our ranking.
    fn attempt_failed(&mut self, i: usize, error: String, now: Instant) {
        let r = &mut self.reservations[i];
        let retry = r.attempt.take().is_some_and(|a| a.retry);
        if let Some(id) = r.listener.take() {
            self.pending.push_back(ToSwarm::RemoveListener { id });
        }
        let relay = r.info.peer_id;
        self.failover.failed(relay, retry, now);
        self.emit(Event::ReservationFailed { relay, error, retry });
    }

    fn drive_dials(&mut self) {
        let mut i = 0;
        while i < self.dials.len() {
            if self.dials[i].circuit.is_some() {
                i += 1;
                continue;
            }
            let Some(relay) = self.dials[i].candidates.get(self.dials[i].index).cloned() else {
                let d = self.dials.remove(i);
                self.emit(Event::DialFailed {
                    peer: d.target,
                    error: d.last_error,
                });
                continue;
            };
            match self.ensure_link(&relay) {
                Ok(true) => {
                    let target = self.dials[i].target;
                    let addrs = connect_addrs(&relay.addrs)
                        .iter()
                        .map(|a| circuit_addr(a).with(Protocol::P2p(target)))
                        .collect();
                    let opts = DialOpts::peer_id(target)
                        .addresses(addrs)
                        .condition(PeerCondition::Always)
                        .build();
                    self.dials[i].circuit = Some(opts.connection_id());
                    self.pending.push_back(ToSwarm::Dial { opts });
                }
                Ok(false) => {}
                Err(e) => {
                    self.dials[i].last_error = format!("relay {}: {e}", relay.peer_id);
                    self.dials[i].index += 1;
                    continue; // try the next relay in this pass
                }
            }
            i += 1;
        }
    }

    fn on_done(&mut self, done: Done, now: Instant) {
        match done {
            Done::Relays(result) => self.on_relays(result, now),
            Done::DialRelays { target, result } => self.on_dial_relays(target, result),
            Done::Ticket(result) => {
                self.ticket_in_flight = false;
                match result {
                    Ok(ticket) => {
                        self.ticket_failures = 0;
                        self.emit(Event::TicketIssued {
                            lifetime: ticket.lifetime,
                        });
                        // a ticket that is already past 80 % (clock skew, tiny lifetime): not before 1 s again
                        self.ticket_retry_at = Some(now + Duration::from_secs(1));
                        self.ticket = Some(ticket);
                    }
                    Err(e) => {
                        self.ticket_failures += 1;
                        self.ticket_retry_at = Some(now + api_backoff(self.ticket_failures));
                        self.emit(Event::TicketFailed { error: e.to_string() });
                        if self
                            .ticket
                            .as_ref()
                            .is_none_or(|t| t.issued_at + t.lifetime <= now.into_std())
                        {
                            // nothing valid to present: whoever waits for a ticket fails this attempt
                            self.ticket = None;
                            for link in self
                                .links
                                .values_mut()
                                .filter(|l| l.connections > 0 && l.presented.is_none())
                            {
                                link.failed = Some(format!("no ticket: {e}"));
                            }
                        }
                    }
                }
            }
            Done::Presented { relay, jti, result } => {
                let Some(link) = self.links.get_mut(&relay) else { return };
                link.presenting = false;
                match result {
                    Ok(TicketReply::Accepted) => link.presented = Some(jti),
                    Ok(TicketReply::Rejected(reason)) => {
                        link.failed = Some(format!("ticket rejected: {reason}"));
                        // expired, revoked or bound to another peer: fetch a fresh one before the next attempt
                        if self.current_jti() == Some(jti.as_str()) {
                            self.ticket = None;
                        }
                        self.emit(Event::TicketRejected { relay, reason });
                    }
                    Err(e) => link.failed = Some(e),
                }
            }
        }
    }

    fn next_deadline(&self, now: Instant) -> Instant {
        let mut candidates: Vec<Instant> = Vec::new();
        candidates.extend(self.poll_at);
        if self.config.api_key.is_some() && !self.ticket_in_flight {
            candidates.extend(self.ticket_retry_at);
            if let Some(t) = &self.ticket {
                candidates.push(Instant::from_std(t.renew_at()));
            }
        }
        candidates.extend(self.failover.next_deadline());
        candidates.extend(
            self.links
                .values()
                .filter_map(|l| l.closing_since.map(|t| t + CLOSING_GRACE)),
        );
        candidates.extend(
            self.reservations
                .iter()
                .filter_map(|r| r.attempt.as_ref().map(|a| a.started + ATTEMPT_TIMEOUT)),
        );
        candidates
            .into_iter()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(now + Duration::from_secs(3600))
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = <libp2p_stream::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.streams
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.streams
            .handle_established_outbound_connection(connection_id, peer, addr, role_override, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.streams.on_swarm_event(event);
        let now = Instant::now();
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if let Some(link) = self.links.get_mut(&e.peer_id) {
                    link.connections += 1;
                    if link.dialing == Some(e.connection_id) {
                        link.dialing = None;
                    }
                }
                if let Some(i) = self.dials.iter().position(|d| d.circuit == Some(e.connection_id)) {
                    let d = self.dials.remove(i);
                    let relay = d.candidates[d.index].peer_id;
                    self.emit(Event::Connected {
                        peer: d.target,
                        relay,
                        connection_id: e.connection_id,
                    });
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(link) = self.links.get_mut(&e.peer_id) {
                    link.closing_since = None;
                    link.connections = link.connections.saturating_sub(1);
                    // the relay forgets our ticket when we disconnect
                    if e.remaining_established == 0 {
                        link.connections = 0;
                        link.presented = None;
                    }
                }
            }
            FromSwarm::DialFailure(e) => {
                if let Some(link) = self.links.values_mut().find(|l| l.dialing == Some(e.connection_id)) {
                    link.dialing = None;
                    link.failed = Some(format!("dial failed: {}", e.error));
                }
                if let Some(d) = self.dials.iter_mut().find(|d| d.circuit == Some(e.connection_id)) {
                    // the relay refused the circuit (no reservation, no ticket, limits) or it broke: next relay
                    d.last_error = format!("through {}: {}", d.candidates[d.index].peer_id, e.error);
                    d.circuit = None;
                    d.index += 1;
                }
            }
            FromSwarm::NewListenAddr(e) => {
                if let Some(r) = self.reservations.iter_mut().find(|r| r.listener == Some(e.listener_id)) {
                    if r.addr.is_none() {
                        r.attempt = None;
                        r.addr = Some(e.addr.clone());
                        let relay = r.info.peer_id;
                        self.failover.recovered(&relay);
                        self.emit(Event::ReservationAccepted {
                            relay,
                            addr: e.addr.clone(),
                        });
                    }
                }
            }
            FromSwarm::ListenerClosed(e) => {
                if let Some(i) = self.reservations.iter().position(|r| r.listener == Some(e.listener_id)) {
                    let refused = e.reason.as_ref().err().map(|err| err.to_string());
                    let r = &mut self.reservations[i];
                    r.listener = None;
                    if r.addr.take().is_some() {
                        let relay = r.info.peer_id;
                        if refused.is_none() {
                            // closed with its connection, whose ConnectionClosed may still be on its way
                            if let Some(link) = self.links.get_mut(&relay).filter(|l| l.connections > 0) {
                                link.closing_since = Some(now);
                            }
                        }
                        self.emit(Event::ReservationLost {
                            relay,
                            error: refused.clone(),
                        });
                        // a refused renewal makes the relay unusable at once; a closed connection
                        // first gets an immediate reconnect (the next drive), unusable if that fails
                        if let Some(error) = refused {
                            self.reservations[i].attempt = Some(Attempt {
                                started: now,
                                retry: false,
                            });
                            self.attempt_failed(i, error, now);
                        }
                    } else if self.reservations[i].attempt.is_some() {
                        let error = refused.unwrap_or_else(|| "relay connection closed while reserving".into());
                        self.attempt_failed(i, error, now);
                    }
                }
            }
            _ => {}
        }
        self.wake();
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.streams.on_connection_handler_event(peer_id, connection_id, event)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.waker = Some(cx.waker().clone());
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Poll::Ready(event);
            }
            if let Poll::Ready(event) = self.streams.poll(cx) {
                if let ToSwarm::GenerateEvent(()) = event {
                    continue;
                }
                return Poll::Ready(event.map_out(|()| unreachable!("handled above")));
            }
            let now = Instant::now();
            if let Poll::Ready(Some(done)) = self.tasks.poll_next_unpin(cx) {
                self.on_done(done, now);
                continue;
            }
            self.drive(now);
            if !self.pending.is_empty() || !self.tasks.is_empty() && self.tasks_ready(cx) {
                continue;
            }
            let deadline = self.next_deadline(now);
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_ready() {
                continue;
            }
            return Poll::Pending;
        }
    }
}

impl Behaviour {
    /// Tasks pushed during `drive` have not been polled yet: poll them once so their wakers are registered.
    fn tasks_ready(&mut self, cx: &mut Context<'_>) -> bool {
        match self.tasks.poll_next_unpin(cx) {
            Poll::Ready(Some(done)) => {
                self.on_done(done, Instant::now());
                true
            }
            _ => false,
        }
    }
}
