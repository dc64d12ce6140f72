//! Discovery API requests: the relay list (`?for=<own peer id>`) and tickets.

use super::*;

impl Behaviour {
    pub(super) fn start_poll(&mut self) {
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

    pub(super) fn start_ticket_fetch(&mut self) {
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

    pub(super) fn on_relays(&mut self, result: Result<Vec<RelayInfo>, DiscoveryError>, now: Instant) {
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
}
