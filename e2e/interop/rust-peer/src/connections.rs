//! Connections: to the relay (with the observed address hole punching needs), the ones the
//! swarm reports while a future runs, and the ticket presented to the relay.

use super::*;

pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

pub(crate) struct Conns {
    /// connection id -> (peer, remote address)
    pub(crate) by_id: HashMap<ConnectionId, (PeerId, Multiaddr)>,
}

impl Conns {
    pub(crate) fn direct_to(&self, peer: &PeerId) -> Option<(ConnectionId, Multiaddr)> {
        self.by_id.iter().find(|(_, (p, a))| p == peer && !is_relayed(a)).map(|(c, (_, a))| (*c, a.clone()))
    }
    pub(crate) fn relayed_to(&self, peer: &PeerId) -> Vec<(ConnectionId, Multiaddr)> {
        self.by_id.iter().filter(|(_, (p, a))| p == peer && is_relayed(a)).map(|(c, (_, a))| (*c, a.clone())).collect()
    }
}

pub(crate) fn remote_of(endpoint: &ConnectedPoint) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address.clone(),
        // an inbound relayed connection has local_addr <relay>/p2p-circuit and send_back_addr /p2p/<dialer>
        ConnectedPoint::Listener { local_addr, send_back_addr } if is_relayed(local_addr) => {
            let mut a = local_addr.clone();
            for p in send_back_addr.iter() {
                a.push(p);
            }
            a
        }
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
    }
}

/// Listens (TCP or QUIC), connects to the relay and learns the observed address
/// (the address the NAT gave us) from identify, as hole punching needs it.
pub(crate) async fn connect_relay(swarm: &mut Swarm<Behaviour>, args: &Args, conns: &mut Conns) -> Result<(Multiaddr, PeerId), String> {
    let relay_addr: Multiaddr = args.relay.parse().map_err(|e| format!("bad --relay: {e}"))?;
    let relay_peer = relay_addr
        .iter()
        .find_map(|p| if let Protocol::P2p(id) = p { Some(id) } else { None })
        .ok_or("--relay must end in /p2p/<relay peer id>")?;
    swarm.listen_on(args.listen.parse().map_err(|e| format!("bad --listen: {e}"))?).map_err(|e| e.to_string())?;
    // wait for the listener so that dials can reuse its port (TCP) or socket (QUIC)
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            log("listening", &[("addr", address.to_string())]);
            break;
        }
    }
    swarm.dial(relay_addr.clone()).map_err(|e| e.to_string())?;
    // Confirm the observed address only after identify's candidate for it went
    // through the swarm: the swarm drops a candidate equal to a confirmed
    // address, and DCUtR learns its addresses from candidates alone. Over TCP
    // the candidate is the observed address translated to the listening port,
    // so it differs; over QUIC the observed port is the listening port and the
    // candidate is the observed address itself: confirmed first, DCUtR got no
    // address and sent an empty CONNECT (the other side: "Protocol error").
    let mut observed: Option<Multiaddr> = None;
    let mut confirm_by: Option<tokio::time::Instant> = None;
    loop {
        let wait = async {
            match confirm_by {
                Some(d) => tokio::time::sleep_until(d).await,
                None => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            // identify queues the candidate right behind `Received`: this is only a bound
            _ = wait => break,
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                    conns.by_id.insert(connection_id, (peer_id, remote_of(&endpoint)));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) if peer_id == relay_peer && observed.is_none() => {
                    log("observed_addr", &[("addr", info.observed_addr.to_string())]);
                    observed = Some(info.observed_addr.clone());
                    confirm_by = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                }
                SwarmEvent::NewExternalAddrCandidate { address } if observed.is_some() => {
                    log("address_candidate", &[("addr", address.to_string())]);
                    break;
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => return Err(format!("dial relay: {error}")),
                _ => {}
            }
        }
    }
    swarm.add_external_address(observed.expect("observed address"));
    Ok((relay_addr, relay_peer))
}

/// Gets a ticket bound to `local` from the discovery API with the account's
/// API key and presents it to `relay` on `/pos-relay/ticket/1.0.0`, with our
/// client crate's ticket module. Returns the ticket's id.
pub(crate) async fn present_ticket(mut control: libp2p_stream::Control, discovery: String, api_key: String, local: PeerId, relay: PeerId) -> Result<String, String> {
    let http = reqwest::Client::new();
    let ticket = tickets::fetch_ticket(&http, &discovery, &api_key, &local).await.map_err(|e| format!("get ticket: {e}"))?;
    let mut stream = control.open_stream(relay, tickets::TICKET_PROTOCOL).await.map_err(|e| format!("open ticket stream: {e}"))?;
    match tickets::present_ticket(&mut stream, &ticket.token).await.map_err(|e| format!("present ticket: {e}"))? {
        TicketReply::Accepted => Ok(ticket.jti),
        TicketReply::Rejected(reason) => Err(format!("relay rejected the ticket: {reason}")),
    }
}

/// Awaits `fut` while polling the swarm (a stream opens only while the swarm
/// runs), keeping track of the connections it reports.
pub(crate) async fn with_swarm<T>(swarm: &mut Swarm<Behaviour>, conns: &mut Conns, fut: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                    conns.by_id.insert(connection_id, (peer_id, remote_of(&endpoint)));
                }
                SwarmEvent::ConnectionClosed { connection_id, .. } => {
                    conns.by_id.remove(&connection_id);
                }
                _ => {}
            }
        }
    }
}
