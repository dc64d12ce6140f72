//! Keeping reservations on the chosen relays, failing over and releasing the unchosen ones.

use super::*;

impl Behaviour {
    /// Brings the reservations in line with the failover rule (`docs/protocol.md` section 4):
    /// reserve on the chosen relays at once, retry unusable ones when due, and release relays
    /// no longer chosen once every chosen one holds (make-before-break).
    pub(super) fn drive_reservations(&mut self, now: Instant) {
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
    pub(super) fn attempt_failed(&mut self, i: usize, error: String, now: Instant) {
        let r = &mut self.reservations[i];
        let retry = r.attempt.take().is_some_and(|a| a.retry);
        if let Some(id) = r.listener.take() {
            self.pending.push_back(ToSwarm::RemoveListener { id });
        }
        let relay = r.info.peer_id;
        self.failover.failed(relay, retry, now);
        self.emit(Event::ReservationFailed { relay, error, retry });
    }
}
