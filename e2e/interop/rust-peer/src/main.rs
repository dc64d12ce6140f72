//! pos-relay NAT lab: a small rust-libp2p peer (TCP + Noise + Yamux and QUIC,
//! identify, ping, Circuit Relay v2 client, DCUtR). Test-only; built by ../build.sh.
//!
//! Same command-line contract as ../js-peer/peer.ts and ../go-peer/main.go:
//!
//!   rust-peer --mode listen --relay <relay multiaddr with /p2p/> [--ready-file F]
//!   rust-peer --mode dial   --relay <relay multiaddr> --peer <listener id> --payload-bytes N
//!             [--marker TEXT] [--direct-timeout-ms MS] [--no-dcutr]
//!   rust-peer --mode reserve-many --relay <relay multiaddr> --count N   (benchmark helper)
//!   common: [--discovery URL --api-key KEY]  get an account ticket from the discovery API and
//!           present it to the relay (pos-relay-client's ticket module) before reserving or
//!           dialing, as a relay with --auth requires
//!           [--transport tcp|quic]  (default tcp) which transport reaches the relay and is
//!           listened on (default --listen /ip4/0.0.0.0/tcp/0 or /ip4/0.0.0.0/udp/0/quic-v1);
//!           --relay must be an address of that transport. Both transports are in the swarm,
//!           so a direct (DCUtR) connection uses whatever the other peer advertised.
//!
//! listen/dial print exactly one JSON result line on stdout (and to --out-file):
//!   {"impl":"rust","role":"dialer","ok":true,"connection":"relayed"|"direct",
//!    "remote_addr":"...","sha256":"...","bytes":N, ...}
//! Progress goes to stderr as JSON lines.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    core::ConnectedPoint,
    dcutr, identify, identity,
    multiaddr::{Multiaddr, Protocol},
    noise, ping, relay,
    swarm::{behaviour::toggle::Toggle, ConnectionId, NetworkBehaviour, SwarmEvent},
    tcp, yamux, PeerId, StreamProtocol, Swarm,
};
use pos_relay_client::tickets::{self, TicketReply};
use sha2::{Digest, Sha256};

mod args;
mod connections;
mod output;
mod payload;

use args::*;
use connections::*;
use output::*;
use payload::*;

const PAYLOAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/pos-relay-interop/payload/1.0.0");
const IDENTIFY_PROTOCOL: &str = "/ipfs/id/1.0.0";

#[derive(NetworkBehaviour)]
struct Behaviour {
    relay_client: relay::client::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    dcutr: Toggle<dcutr::Behaviour>,
    stream: libp2p_stream::Behaviour,
}

fn build_swarm(no_dcutr: bool, idle: Duration) -> Swarm<Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        // QUIC dials leave from the listening UDP socket (rust-libp2p shares
        // one endpoint per listen address), which UDP hole punching needs
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .expect("relay client")
        .with_behaviour(|key: &identity::Keypair, relay_client| Behaviour {
            relay_client,
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                    .with_agent_version("pos-relay-interop/rust-peer".to_string()),
            ),
            ping: ping::Behaviour::new(ping::Config::new()),
            dcutr: Toggle::from((!no_dcutr).then(|| dcutr::Behaviour::new(key.public().to_peer_id()))),
            stream: libp2p_stream::Behaviour::new(),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build()
}

enum Done {
    Listener(Result<(String, u64), String>, PeerId),
    Dialer(Result<(String, u64, String), String>, u128),
}

async fn run_peer(args: Args) -> i32 {
    let mut swarm = build_swarm(args.no_dcutr, Duration::from_secs(120));
    let local = *swarm.local_peer_id();
    log("start", &[("peer_id", local.to_string()), ("mode", args.mode.clone())]);
    let role = if args.mode == "listen" { "listener" } else { "dialer" };
    let mut conns = Conns { by_id: HashMap::new() };
    let fail = |args: &Args, err: String| {
        emit_result(args, vec![
            ("role", json_str(role)),
            ("ok", "false".into()),
            ("peer_id", json_str(&local.to_string())),
            ("error", json_str(&err)),
        ]);
        1
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(args.timeout_ms);
    let (relay_addr, relay_peer) = match tokio::time::timeout_at(deadline, connect_relay(&mut swarm, &args, &mut conns)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return fail(&args, e),
        Err(_) => return fail(&args, "timed out connecting to the relay".into()),
    };
    let mut control = swarm.behaviour().stream.new_control();
    if !args.api_key.is_empty() {
        let presenting = present_ticket(control.clone(), args.discovery.clone(), args.api_key.clone(), local, relay_peer);
        match tokio::time::timeout_at(deadline, with_swarm(&mut swarm, &mut conns, presenting)).await {
            Ok(Ok(jti)) => log("ticket_accepted", &[("jti", jti)]),
            Ok(Err(e)) => return fail(&args, e),
            Err(_) => return fail(&args, "timed out presenting the ticket".into()),
        }
    }
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Done>(4);
    let started = Instant::now();
    let mut target: Option<PeerId> = None;
    let mut upgraded_after: Option<u128> = None;
    let mut dcutr_error: Option<String> = None;
    // dialer: when to stop waiting for a direct connection
    let mut direct_deadline: Option<tokio::time::Instant> = None;
    let mut sending = false;
    // relayed connections being closed before the payload goes over the direct one
    let mut awaiting_close: Vec<ConnectionId> = Vec::new();
    let mut send_when_closed = false;

    if args.mode == "listen" {
        let mut incoming = control.accept(PAYLOAD_PROTOCOL).expect("accept");
        let tx = done_tx.clone();
        tokio::spawn(async move {
            if let Some((peer, stream)) = incoming.next().await {
                let r = receive_payload(stream).await;
                let _ = tx.send(Done::Listener(r, peer)).await;
            }
        });
        swarm.listen_on(relay_addr.clone().with(Protocol::P2pCircuit)).map_err(|e| e.to_string()).ok();
    } else if args.mode == "dial" {
        let peer: PeerId = match args.peer.parse() {
            Ok(p) => p,
            Err(_) => return fail(&args, "--peer must be a peer id".into()),
        };
        target = Some(peer);
        if let Err(e) = swarm.dial(relay_addr.clone().with(Protocol::P2pCircuit).with(Protocol::P2p(peer))) {
            return fail(&args, format!("dial: {e}"));
        }
    } else {
        return fail(&args, format!("unknown --mode {}", args.mode));
    }

    loop {
        let direct_wait = async {
            match direct_deadline {
                Some(d) if !sending => tokio::time::sleep_until(d).await,
                _ => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return fail(&args, format!("timed out after {} ms (dcutr: {})", args.timeout_ms, dcutr_error.clone().unwrap_or_default()));
            }
            _ = direct_wait => {
                // no direct connection in time: send over the relayed one
                direct_deadline = None;
                sending = true;
                start_send(&mut control, target.unwrap(), &args, done_tx.clone());
            }
            done = done_rx.recv() => {
                let Some(done) = done else { continue };
                match done {
                    Done::Listener(r, peer) => {
                        let (connection, remote) = match conns.direct_to(&peer) {
                            Some((_, a)) => ("direct", a),
                            None => ("relayed", conns.relayed_to(&peer).first().map(|(_, a)| a.clone()).unwrap_or(Multiaddr::empty())),
                        };
                        match r {
                            Ok((sha, bytes)) => emit_result(&args, vec![
                                ("role", json_str("listener")), ("ok", "true".into()),
                                ("connection", json_str(connection)), ("remote_addr", json_str(&remote.to_string())),
                                ("sha256", json_str(&sha)), ("bytes", bytes.to_string()),
                                ("peer_id", json_str(&local.to_string())), ("remote_peer", json_str(&peer.to_string())),
                                ("upgraded_after_ms", upgraded_after.map(|v| v.to_string()).unwrap_or("null".into())),
                            ]),
                            Err(e) => { return fail(&args, e) }
                        }
                        // let the reply reach the dialer before the connection goes
                        let linger = tokio::time::sleep(Duration::from_millis(1000));
                        tokio::pin!(linger);
                        loop {
                            tokio::select! {
                                _ = &mut linger => break,
                                _ = swarm.select_next_some() => {}
                            }
                        }
                        return 0;
                    }
                    Done::Dialer(r, transfer_ms) => {
                        let peer = target.unwrap();
                        let (connection, remote) = match conns.direct_to(&peer) {
                            Some((_, a)) => ("direct", a),
                            None => ("relayed", conns.relayed_to(&peer).first().map(|(_, a)| a.clone()).unwrap_or(Multiaddr::empty())),
                        };
                        match r {
                            Ok((sha, bytes, reply)) => {
                                let got_sha = reply_field(&reply, "sha256").unwrap_or_default();
                                let got_bytes = reply_field(&reply, "bytes").unwrap_or_default();
                                let ok = got_sha == sha && got_bytes == bytes.to_string();
                                let mut fields = vec![
                                    ("role", json_str("dialer")), ("ok", ok.to_string()),
                                    ("connection", json_str(connection)), ("remote_addr", json_str(&remote.to_string())),
                                    ("sha256", json_str(&sha)), ("bytes", bytes.to_string()),
                                    ("peer_id", json_str(&local.to_string())), ("remote_peer", json_str(&peer.to_string())),
                                    ("upgraded_after_ms", upgraded_after.map(|v| v.to_string()).unwrap_or("null".into())),
                                    ("elapsed_ms", started.elapsed().as_millis().to_string()),
                                    ("transfer_ms", transfer_ms.to_string()),
                                ];
                                if let Some(e) = &dcutr_error { fields.push(("dcutr_error", json_str(e))); }
                                if !ok { fields.push(("error", json_str(&format!("listener reported {reply}")))); }
                                emit_result(&args, fields);
                                return if ok { 0 } else { 1 };
                            }
                            Err(e) => return fail(&args, e),
                        }
                    }
                }
            }
            event = swarm.select_next_some() => {
                match event {
                    SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                        let addr = remote_of(&endpoint);
                        log("connection", &[("peer", peer_id.to_string()), ("addr", addr.to_string()), ("relayed", is_relayed(&addr).to_string())]);
                        conns.by_id.insert(connection_id, (peer_id, addr.clone()));
                        if Some(peer_id) == target && !sending {
                            if !is_relayed(&addr) {
                                if upgraded_after.is_none() { upgraded_after = Some(started.elapsed().as_millis()); }
                                // direct: drop the relayed connection so the payload cannot take it
                                // (libp2p-stream picks a random connection), and send once it is gone
                                sending = true;
                                for (id, _) in conns.relayed_to(&peer_id) {
                                    if swarm.close_connection(id) { awaiting_close.push(id); }
                                }
                                if awaiting_close.is_empty() {
                                    start_send(&mut control, peer_id, &args, done_tx.clone());
                                } else {
                                    send_when_closed = true;
                                }
                            } else if direct_deadline.is_none() {
                                direct_deadline = Some(tokio::time::Instant::now() + Duration::from_millis(if args.no_dcutr { 0 } else { args.direct_timeout_ms }));
                            }
                        } else if args.mode == "listen" && !is_relayed(&addr) && upgraded_after.is_none() && conns.relayed_to(&peer_id).len() > 0 {
                            upgraded_after = Some(started.elapsed().as_millis());
                        }
                    }
                    SwarmEvent::ConnectionClosed { connection_id, .. } => {
                        conns.by_id.remove(&connection_id);
                        awaiting_close.retain(|c| *c != connection_id);
                        if send_when_closed && awaiting_close.is_empty() {
                            send_when_closed = false;
                            start_send(&mut control, target.unwrap(), &args, done_tx.clone());
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted { renewal, .. })) => {
                        if !renewal {
                            let circuit = relay_addr.clone().with(Protocol::P2pCircuit).with(Protocol::P2p(local));
                            log("reserved", &[("addr", circuit.to_string())]);
                            if !args.ready_file.is_empty() {
                                let tmp = format!("{}.tmp", args.ready_file);
                                let _ = std::fs::write(&tmp, format!("{{\"peer_id\":\"{local}\",\"addr\":\"{circuit}\"}}\n"));
                                let _ = std::fs::rename(&tmp, &args.ready_file);
                            }
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event { remote_peer_id, result })) => {
                        match result {
                            Ok(_) => log("dcutr_ok", &[("peer", remote_peer_id.to_string())]),
                            Err(e) => {
                                log("dcutr_failed", &[("peer", remote_peer_id.to_string()), ("error", e.to_string())]);
                                dcutr_error = Some(e.to_string());
                                // the hole punch gave up: no need to wait any longer
                                if Some(remote_peer_id) == target && !sending && direct_deadline.is_some() {
                                    direct_deadline = Some(tokio::time::Instant::now());
                                }
                            }
                        }
                    }
                    SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                        log("dial_error", &[("peer", peer_id.map(|p| p.to_string()).unwrap_or_default()), ("error", error.to_string())]);
                        if args.mode == "dial" && peer_id == target && conns.relayed_to(&target.unwrap()).is_empty() && conns.direct_to(&target.unwrap()).is_none() && !sending {
                            return fail(&args, format!("dial {}: {error}", args.peer));
                        }
                    }
                    SwarmEvent::ListenerClosed { reason, .. } if args.mode == "listen" => {
                        if let Err(e) = reason { log("listener_closed", &[("error", e.to_string())]); }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn start_send(control: &mut libp2p_stream::Control, peer: PeerId, args: &Args, tx: tokio::sync::mpsc::Sender<Done>) {
    let mut control = control.clone();
    let n = args.payload_bytes;
    let marker = args.marker.clone();
    log("sending", &[("bytes", n.to_string())]);
    tokio::spawn(async move {
        // transfer_ms: stream open to the listener's reply (for benchmarks)
        let t0 = Instant::now();
        let mut attempt = 0;
        let r = loop {
            attempt += 1;
            match control.open_stream(peer, PAYLOAD_PROTOCOL).await {
                Ok(stream) => break send_payload(stream, n, &marker).await,
                // a connection that closed under us: try another one
                Err(libp2p_stream::OpenStreamError::Io(e)) if attempt < 5 => {
                    log("open_stream_retry", &[("error", e.to_string())]);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => break Err(format!("open stream: {e}")),
            }
        };
        let _ = tx.send(Done::Dialer(r, t0.elapsed().as_millis())).await;
    });
}

/// Benchmark helper: N separate identities, each holding one reservation on the relay, idle.
async fn reserve_many(args: Args) -> i32 {
    let relay_addr: Multiaddr = match args.relay.parse() {
        Ok(a) => a,
        Err(e) => die(&format!("bad --relay: {e}")),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(), String>>(1024);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    for _ in 0..args.count {
        let tx = tx.clone();
        let addr = relay_addr.clone();
        let sem = sem.clone();
        tokio::spawn(async move {
            let permit = sem.acquire_owned().await.ok();
            let mut swarm = build_swarm(true, Duration::from_secs(3600));
            if let Err(e) = swarm.listen_on(addr.with(Protocol::P2pCircuit)) {
                let _ = tx.send(Err(e.to_string())).await;
                return;
            }
            let mut permit = permit;
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted { renewal: false, .. })) => {
                        permit.take();
                        let _ = tx.send(Ok(())).await;
                    }
                    SwarmEvent::ListenerClosed { reason: Err(e), .. } => {
                        permit.take();
                        let _ = tx.send(Err(e.to_string())).await;
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        permit.take();
                        let _ = tx.send(Err(error.to_string())).await;
                    }
                    _ => {}
                }
            }
        });
    }
    drop(tx);
    let (mut ok, mut failed, mut last_err) = (0usize, 0usize, String::new());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(args.timeout_ms);
    while ok + failed < args.count {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(()))) => ok += 1,
            Ok(Some(Err(e))) => { failed += 1; last_err = e; }
            _ => break,
        }
    }
    println!("{{\"impl\":\"rust\",\"role\":\"reserver\",\"ok\":{},\"reserved\":{ok},\"failed\":{failed},\"error\":{}}}", ok == args.count, json_str(&last_err));
    let _ = std::io::stdout().flush();
    // hold the reservations until told to stop
    let _ = tokio::signal::ctrl_c().await;
    0
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let code = if args.mode == "reserve-many" { reserve_many(args).await } else { run_peer(args).await };
    std::process::exit(code);
}
