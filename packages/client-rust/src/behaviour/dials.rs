//! Dialing a peer through its ranked relays: the `?for=<target>` lookup, then one relay after another.

use super::*;

impl Behaviour {
    /// Asks discovery for the relays ranked for `target` (`?for=<target>`); the dial starts
    /// when the answer (or the failure, then with the last polled list) comes.
    pub(super) fn start_dial(&mut self, target: PeerId) {
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

    pub(super) fn on_dial_relays(&mut self, target: PeerId, result: Result<Vec<RelayInfo>, DiscoveryError>) {
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

    pub(super) fn flush_waiting_dials(&mut self) {
        for peer in std::mem::take(&mut self.waiting_dials) {
            self.start_dial(peer);
        }
    }

    pub(super) fn drive_dials(&mut self) {
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
}
