//! [`Config`]: how the [`Behaviour`](super::Behaviour) finds relays and what it keeps.

use super::*;

/// How the [`Behaviour`] finds relays and what it keeps.
#[derive(Clone)]
pub struct Config {
    pub(super) discovery_url: String,
    pub(super) api_key: Option<String>,
    pub(super) relay_count: usize,
    pub(super) reserve: bool,
    pub(super) poll_interval: Duration,
    pub(super) address_policy: AddressPolicy,
    pub(super) max_body_bytes: usize,
    pub(super) request_timeout: Duration,
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
