//! The failover rule (`docs/protocol.md` section 4, "When a relay fails"): which
//! relays a listener reserves on when some have failed, which relays a dialer
//! tries, and the state that decides when a failed relay is retried and when
//! the relay list is refreshed because of a failure.
//!
//! Pure: no I/O, the clock and the randomness are given by the caller, so the
//! [`Behaviour`](crate::Behaviour) drives it and tests check it alone.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

use crate::discovery::{rank_relays, RelayInfo};

/// First delay before an unusable relay is retried; doubles per failure.
pub const RETRY_INITIAL: Duration = Duration::from_millis(500);
/// Longest delay between retries of an unusable relay.
pub const RETRY_MAX: Duration = Duration::from_secs(10);
/// The refresh a failure schedules runs after a uniform delay in `0..REFRESH_SPREAD`,
/// so the peers of a dead relay do not all hit discovery in the same instant.
pub const REFRESH_SPREAD: Duration = Duration::from_secs(2);
/// At most one failure-triggered refresh per this long.
pub const REFRESH_MIN_GAP: Duration = Duration::from_secs(10);
/// A reservation attempt (connect, ticket, RESERVE) that has not held by then failed.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The relays a listener holds reservations on: the first `relay_count` relays of its
/// own ranking (key = its peer id, `local`) that are not unusable, in rank order.
///
/// A failed relay's place goes at once to the next usable relay, so a dialer, which
/// tries the first `relay_count + 2` relays of the same ranking ([`relays_to_dial`]),
/// still finds the listener with up to two failed relays ahead of its fallback.
pub fn relays_to_reserve(
    relays: &[RelayInfo],
    local: &str,
    relay_count: usize,
    is_unusable: impl Fn(&PeerId) -> bool,
) -> Vec<RelayInfo> {
    rank_relays(relays, local)
        .into_iter()
        .filter(|r| !is_unusable(&r.peer_id))
        .take(relay_count)
        .collect()
}

/// Relays a dialer tries beyond the target's first `relay_count`.
pub const EXTRA_DIAL_RELAYS: usize = 2;

/// The relays a dialer tries to reach `target`, in order: the first `relay_count + 2`
/// of the target's ranking, whatever failed (the dialer cannot know).
pub fn relays_to_dial(relays: &[RelayInfo], target: &str, relay_count: usize) -> Vec<RelayInfo> {
    let mut ranked = rank_relays(relays, target);
    ranked.truncate(relay_count + EXTRA_DIAL_RELAYS);
    ranked
}

/// The delay before the `failures`-th retry of an unusable relay: 0.5 s doubling up to
/// 10 s, spread ±20 % by `random` (uniform in `[0, 1)`), as the JS SDK's backoff.
pub fn retry_delay(failures: u32, random: f64) -> Duration {
    let base = RETRY_INITIAL
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(RETRY_MAX);
    base.mul_f64(0.8 + 0.4 * random.clamp(0.0, 1.0))
}

/// A relay that failed and has not been retried successfully since.
#[derive(Debug, Clone, Copy)]
struct Unusable {
    failures: u32,
    next_retry: Instant,
}

/// The failover state of one listener: unusable relays with their retry times, and
/// the discovery refresh failures schedule.
pub(crate) struct Failover {
    unusable: HashMap<PeerId, Unusable>,
    refresh_at: Option<Instant>,
    last_refresh: Option<Instant>,
    /// uniform in `[0, 1)`; injected so tests are deterministic
    random: Box<dyn FnMut() -> f64 + Send>,
}

impl Failover {
    pub(crate) fn new(random: Box<dyn FnMut() -> f64 + Send>) -> Self {
        Failover {
            unusable: HashMap::new(),
            refresh_at: None,
            last_refresh: None,
            random,
        }
    }

    pub(crate) fn is_unusable(&self, relay: &PeerId) -> bool {
        self.unusable.contains_key(relay)
    }

    /// The relays to hold reservations on now ([`relays_to_reserve`] with our unusable set).
    pub(crate) fn chosen(&self, known: &[RelayInfo], local: &str, relay_count: usize) -> Vec<RelayInfo> {
        relays_to_reserve(known, local, relay_count, |p| self.is_unusable(p))
    }

    /// Unusable relays whose retry is due and that would be chosen if it held; others
    /// wait (a relay ranked below our chosen ones has nothing to win back).
    pub(crate) fn retries_due(
        &self,
        known: &[RelayInfo],
        local: &str,
        relay_count: usize,
        now: Instant,
    ) -> Vec<RelayInfo> {
        let mut due: Vec<RelayInfo> = Vec::new();
        for (relay, u) in &self.unusable {
            if u.next_retry > now {
                continue;
            }
            let if_held = relays_to_reserve(known, local, relay_count, |p| p != relay && self.is_unusable(p));
            due.extend(if_held.into_iter().filter(|r| r.peer_id == *relay));
        }
        due
    }

    /// `relay` failed (connect, ticket, RESERVE, or the reconnect after its connection
    /// closed); `retry` says whether it was a background retry of an unusable relay.
    /// Its first failure schedules one discovery refresh.
    pub(crate) fn failed(&mut self, relay: PeerId, retry: bool, now: Instant) {
        let jitter = (self.random)();
        let u = self.unusable.entry(relay).or_insert(Unusable {
            failures: 0,
            next_retry: now,
        });
        u.failures += 1;
        u.next_retry = now + retry_delay(u.failures, jitter);
        if !retry && u.failures == 1 {
            self.schedule_refresh(now);
        }
    }

    /// A reservation on `relay` holds: usable again.
    pub(crate) fn recovered(&mut self, relay: &PeerId) {
        self.unusable.remove(relay);
    }

    /// A fresh relay list arrived: relays missing from it are forgotten (no longer retried).
    pub(crate) fn forget_missing(&mut self, known: &[RelayInfo]) {
        self.unusable.retain(|p, _| known.iter().any(|r| r.peer_id == *p));
    }

    /// One refresh after a uniform 0–2 s delay, not sooner than 10 s after the last one:
    /// a refresh wanted within that gap is deferred to its end, not dropped.
    fn schedule_refresh(&mut self, now: Instant) {
        if self.refresh_at.is_some() {
            return;
        }
        let earliest = self.last_refresh.map_or(now, |t| (t + REFRESH_MIN_GAP).max(now));
        self.refresh_at = Some(earliest + REFRESH_SPREAD.mul_f64((self.random)().clamp(0.0, 1.0)));
    }

    /// Whether the failure-triggered refresh is due; if so it counts as done now.
    pub(crate) fn take_refresh(&mut self, now: Instant) -> bool {
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            self.last_refresh = Some(now);
            return true;
        }
        false
    }

    /// When something here next needs attention: the refresh or the earliest retry.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.unusable
            .values()
            .map(|u| u.next_retry)
            .chain(self.refresh_at)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn relays(n: usize) -> Vec<RelayInfo> {
        (0..n)
            .map(|i| RelayInfo {
                id: format!("relay-{i}"),
                peer_id: Keypair::generate_ed25519().public().to_peer_id(),
                addrs: Vec::new(),
            })
            .collect()
    }

    fn ids(r: &[RelayInfo]) -> Vec<PeerId> {
        r.iter().map(|r| r.peer_id).collect()
    }

    fn fixed(x: f64) -> Box<dyn FnMut() -> f64 + Send> {
        Box::new(move || x)
    }

    #[test]
    fn retry_delay_doubles_from_half_a_second_to_ten_with_twenty_percent_jitter() {
        let mid: Vec<u128> = (1..=7).map(|f| retry_delay(f, 0.5).as_millis()).collect();
        assert_eq!(mid, [500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(retry_delay(1, 0.0).as_millis(), 400);
        assert_eq!(retry_delay(40, 1.0).as_millis(), 12000);
    }

    #[test]
    fn a_failed_relay_gives_its_place_to_the_next_at_once_and_comes_back_after_a_retry() {
        let known = relays(5);
        let local = "12D3KooWEUpEb2yujBfcgwcts4v9EBRCJvtGVjCVn1NMBJTHTLhb";
        let ranked = rank_relays(&known, local);
        let mut f = Failover::new(fixed(0.5));
        let now = Instant::now();
        assert_eq!(ids(&f.chosen(&known, local, 2)), ids(&ranked[..2]));
        f.failed(ranked[0].peer_id, false, now);
        assert_eq!(ids(&f.chosen(&known, local, 2)), ids(&ranked[1..3]));
        // retried after 0.5 s, not before
        assert!(f.retries_due(&known, local, 2, now).is_empty());
        let later = now + Duration::from_millis(500);
        assert_eq!(ids(&f.retries_due(&known, local, 2, later)), [ranked[0].peer_id]);
        f.failed(ranked[0].peer_id, true, later);
        assert!(f
            .retries_due(&known, local, 2, later + Duration::from_millis(999))
            .is_empty());
        f.recovered(&ranked[0].peer_id);
        assert_eq!(ids(&f.chosen(&known, local, 2)), ids(&ranked[..2]));
    }

    #[test]
    fn a_relay_ranked_below_the_chosen_ones_is_not_retried_until_it_could_be_chosen() {
        let known = relays(4);
        let local = "k";
        let ranked = rank_relays(&known, local);
        let mut f = Failover::new(fixed(0.5));
        let now = Instant::now();
        // the 4th failed (say it refused a dialer): with the first two usable it would not be chosen
        f.failed(ranked[3].peer_id, false, now);
        let later = now + Duration::from_secs(1);
        assert!(f.retries_due(&known, local, 2, later).is_empty());
        f.failed(ranked[0].peer_id, false, now);
        f.failed(ranked[1].peer_id, false, now);
        f.failed(ranked[2].peer_id, false, now);
        // every relay failed: each is retried, since each would be chosen if its retry held
        assert_eq!(f.retries_due(&known, local, 2, later).len(), 4);
    }

    #[test]
    fn one_jittered_refresh_per_ten_seconds_and_only_on_first_failures() {
        let known = relays(3);
        let mut f = Failover::new(fixed(0.25));
        let t0 = Instant::now();
        f.failed(known[0].peer_id, false, t0);
        f.failed(known[1].peer_id, false, t0);
        // the first retry (0.5 s x 0.9) comes before the refresh (2 s x 0.25)
        assert_eq!(f.next_deadline(), Some(t0 + Duration::from_millis(450)));
        assert!(!f.take_refresh(t0 + Duration::from_millis(499)));
        assert!(f.take_refresh(t0 + Duration::from_millis(500)));
        assert!(
            !f.take_refresh(t0 + Duration::from_millis(501)),
            "one refresh for both failures"
        );
        // failed retries schedule none
        f.failed(known[0].peer_id, true, t0 + Duration::from_secs(1));
        assert!(!f.take_refresh(t0 + Duration::from_secs(30)));
        // a new failure within 10 s of the refresh waits for the gap's end (+ jitter)
        f.failed(known[2].peer_id, false, t0 + Duration::from_secs(2));
        assert!(!f.take_refresh(t0 + Duration::from_millis(10_999)));
        assert!(f.take_refresh(t0 + Duration::from_millis(11_000)));
    }

    #[test]
    fn relays_missing_from_a_fresh_list_are_forgotten() {
        let known = relays(3);
        let mut f = Failover::new(fixed(0.5));
        let now = Instant::now();
        f.failed(known[0].peer_id, false, now);
        f.failed(known[2].peer_id, false, now);
        f.forget_missing(&known[1..]);
        assert!(!f.is_unusable(&known[0].peer_id));
        assert!(f.is_unusable(&known[2].peer_id));
    }
}
