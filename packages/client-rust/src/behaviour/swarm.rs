//! The [`NetworkBehaviour`] side: finished tasks, swarm events, timers.

use super::*;

impl Behaviour {
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
