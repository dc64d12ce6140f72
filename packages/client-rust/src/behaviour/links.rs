//! Direct links to relays: connecting and presenting the account ticket on them.

use super::*;

impl Behaviour {
    fn link(&mut self, info: &RelayInfo) -> &mut Link {
        let link = self.links.entry(info.peer_id).or_default();
        link.addrs.clone_from(&info.addrs);
        link
    }

    pub(super) fn current_jti(&self) -> Option<&str> {
        self.ticket.as_ref().map(|t| t.jti.as_str())
    }

    /// Moves `relay`'s link towards "connected and holding our current ticket".
    /// Ok(true) when there, Ok(false) while on the way, Err when this attempt failed.
    pub(super) fn ensure_link(&mut self, info: &RelayInfo) -> Result<bool, String> {
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
}
