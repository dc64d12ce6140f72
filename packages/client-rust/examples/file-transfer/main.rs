//! Example: two peers exchange a file through a pos-relay relay (the Rust twin
//! of `examples/file-transfer` in JavaScript: same flags, same JSON lines, same
//! protocol, so any listener works with any sender).
//!
//! ```text
//! file-transfer listen --discovery http://127.0.0.1:8080 --api-key KEY [--out DIR] [--relay-count N]
//! file-transfer send   --discovery http://127.0.0.1:8080 --api-key KEY --peer <peer id> --file PATH [--relay-count N]
//! ```
//!
//! Both peers find relays through the discovery API and present account
//! tickets. The listener reserves on the relays ranked for it and prints its
//! peer id; the sender dials it through the relays ranked for that peer id.
//! The file goes as `name\n` followed by the bytes; the receiver answers with
//! the SHA-256 it computed, which the sender checks. The listener keeps running
//! and takes any number of files; it prints `reserved` / `reservation_lost`
//! lines as its reservations come and go (failover, `docs/protocol.md` section
//! 4). `--relay-count` is the listener's relay count (default 2); a sender given
//! the same number tries relay count + 2 relays of the listener's ranking.
//! Progress goes to stderr.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::{
    identify, identity,
    multiaddr::{Multiaddr, Protocol},
    noise, ping, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux, PeerId, StreamProtocol, Swarm,
};

mod args;
mod transfer;

use args::{parse_args, readable_file, usage, usage_error, writable_dir, Args};
use transfer::{receive, send_file};

const PROTOCOL: StreamProtocol = StreamProtocol::new("/pos-relay-example/file/2.0.0");

#[derive(NetworkBehaviour)]
struct AppBehaviour {
    relay_client: relay::client::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    pos_relay: pos_relay_client::Behaviour,
    files: libp2p_stream::Behaviour,
}

fn print(value: serde_json::Value) {
    println!("{value}");
}

fn progress(value: serde_json::Value) {
    eprintln!("{value}");
}

fn build_swarm(config: pos_relay_client::Config) -> Result<Swarm<AppBehaviour>, Box<dyn std::error::Error>> {
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key: &identity::Keypair, relay_client| AppBehaviour {
            relay_client,
            identify: identify::Behaviour::new(
                identify::Config::new("/ipfs/id/1.0.0".into(), key.public())
                    .with_agent_version("pos-relay-example/file-transfer-rust".into()),
            ),
            ping: ping::Behaviour::new(ping::Config::new()),
            pos_relay: pos_relay_client::Behaviour::new(key.public().to_peer_id(), config),
            files: libp2p_stream::Behaviour::new(),
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

fn config(args: &Args) -> pos_relay_client::Config {
    let c = pos_relay_client::Config::new(&args.discovery).with_relay_count(args.relay_count);
    match &args.api_key {
        Some(key) => c.with_api_key(key),
        None => c,
    }
}

fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Peer -> (relayed connections, direct connections), to say how a stream came.
type Links = Arc<Mutex<HashMap<PeerId, (usize, usize)>>>;

fn track(links: &Links, peer: PeerId, relayed: bool, delta: isize) {
    let mut map = links.lock().expect("not poisoned");
    let entry = map.entry(peer).or_default();
    let slot = if relayed { &mut entry.0 } else { &mut entry.1 };
    *slot = slot.saturating_add_signed(delta);
}

fn only_relayed(links: &Links, peer: &PeerId) -> bool {
    links
        .lock()
        .expect("not poisoned")
        .get(peer)
        .is_some_and(|(r, d)| *r > 0 && *d == 0)
}

fn log_event(event: &pos_relay_client::Event) {
    use pos_relay_client::Event::*;
    let line = match event {
        RelaysUpdated { known, chosen } => {
            serde_json::json!({ "event": "relays", "known": known, "chosen": chosen.iter().map(|p| p.to_string()).collect::<Vec<_>>() })
        }
        DiscoveryFailed { error } => serde_json::json!({ "event": "discovery_failed", "error": error }),
        TicketIssued { lifetime } => serde_json::json!({ "event": "ticket", "lifetime_s": lifetime.as_secs() }),
        TicketFailed { error } => serde_json::json!({ "event": "ticket_failed", "error": error }),
        TicketRejected { relay, reason } => {
            serde_json::json!({ "event": "ticket_rejected", "relay": relay.to_string(), "reason": reason })
        }
        // the contract's lines, on stdout
        ReservationAccepted { relay, .. } => {
            return print(serde_json::json!({ "event": "reserved", "relay": relay.to_string() }));
        }
        ReservationLost { relay, error } => {
            progress(
                serde_json::json!({ "event": "reservation_lost_reason", "relay": relay.to_string(), "error": error }),
            );
            return print(serde_json::json!({ "event": "reservation_lost", "relay": relay.to_string() }));
        }
        ReservationFailed { relay, error, retry } => {
            serde_json::json!({ "event": "reserve_failed", "relay": relay.to_string(), "error": error, "retry": retry })
        }
        ReservationReleased { relay } => serde_json::json!({ "event": "released", "relay": relay.to_string() }),
        Connected { peer, relay, .. } => {
            serde_json::json!({ "event": "connected", "peer": peer.to_string(), "relay": relay.to_string() })
        }
        DialFailed { peer, error } => {
            serde_json::json!({ "event": "dial_failed", "peer": peer.to_string(), "error": error })
        }
        _ => serde_json::json!({ "event": format!("{event:?}") }),
    };
    progress(line);
}

async fn listen(mut args: Args) -> Result<(), Box<dyn std::error::Error>> {
    args.out = writable_dir(&args.out);
    let mut swarm = build_swarm(config(&args))?;
    let local = *swarm.local_peer_id();
    let links: Links = Arc::default();
    let mut incoming = swarm.behaviour().files.new_control().accept(PROTOCOL)?;
    let out_dir = args.out.clone();
    let tracked = links.clone();
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let out_dir = out_dir.clone();
            let links = tracked.clone();
            tokio::spawn(async move {
                match receive(stream, &out_dir).await {
                    Ok((file, bytes, sha256)) => print(serde_json::json!({
                        "event": "received", "file": file, "bytes": bytes, "sha256": sha256, "relayed": only_relayed(&links, &peer)
                    })),
                    Err((file, bytes, error)) => print(
                        serde_json::json!({ "event": "receive_failed", "file": file, "bytes": bytes, "error": error, "peer": peer.to_string() }),
                    ),
                }
            });
        }
    });
    let mut announced = false;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let event = tokio::select! {
            e = swarm.select_next_some() => e,
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
        };
        match event {
            SwarmEvent::Behaviour(AppBehaviourEvent::PosRelay(e)) => {
                log_event(&e);
                if matches!(e, pos_relay_client::Event::ReservationAccepted { .. }) && !announced {
                    announced = true;
                    let addrs: Vec<String> = swarm
                        .behaviour()
                        .pos_relay
                        .circuit_addresses()
                        .into_iter()
                        .map(|a| a.with(Protocol::P2p(local)).to_string())
                        .collect();
                    print(serde_json::json!({ "event": "listening", "peer_id": local.to_string(), "addrs": addrs }));
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => track(
                &links,
                peer_id,
                is_relayed(endpoint.get_remote_address()) || is_relayed_listener(&endpoint),
                1,
            ),
            SwarmEvent::ConnectionClosed { peer_id, endpoint, .. } => track(
                &links,
                peer_id,
                is_relayed(endpoint.get_remote_address()) || is_relayed_listener(&endpoint),
                -1,
            ),
            _ => {}
        }
    }
}

/// An inbound relayed connection has `<relay>/p2p-circuit` as its local address.
fn is_relayed_listener(endpoint: &libp2p::core::ConnectedPoint) -> bool {
    matches!(endpoint, libp2p::core::ConnectedPoint::Listener { local_addr, .. } if is_relayed(local_addr))
}

/// The running transfer: bytes sent, their SHA-256, the receiver's answer.
type Transfer = tokio::task::JoinHandle<Result<(u64, String, String), String>>;

async fn send(args: Args) -> Result<bool, Box<dyn std::error::Error>> {
    let (Some(peer), Some(file)) = (args.peer.clone(), args.file.clone()) else {
        usage_error("send needs --peer <peer id> and --file <path>".into());
    };
    // checked before any network work, so a typo costs nothing and says what is wrong
    let file = readable_file(&file);
    let target: PeerId = peer.parse()?;
    // a sender needs no reservation of its own: it only dials through the target's relays
    let mut swarm = build_swarm(config(&args).with_reservations(false))?;
    let control = swarm.behaviour().files.new_control();
    swarm.behaviour_mut().pos_relay.dial(target);
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    let mut transfer: Option<Transfer> = None;
    let mut relayed = false;
    loop {
        tokio::select! {
            _ = &mut deadline => return Err("timed out".into()),
            result = async { transfer.as_mut().expect("guarded").await }, if transfer.is_some() => {
                let (bytes, sha256, answer) = result?.map_err(|e| e.to_string())?;
                let intact = answer == sha256;
                print(serde_json::json!({ "event": "sent", "bytes": bytes, "sha256": sha256, "intact": intact, "relayed": relayed }));
                return Ok(intact);
            }
            event = swarm.select_next_some() => {
                if let SwarmEvent::Behaviour(AppBehaviourEvent::PosRelay(e)) = event {
                    log_event(&e);
                    match e {
                        pos_relay_client::Event::Connected { peer, .. } if peer == target && transfer.is_none() => {
                            relayed = true;
                            let file = file.clone();
                            let mut control = control.clone();
                            transfer = Some(tokio::spawn(async move {
                                let stream = control.open_stream(target, PROTOCOL).await.map_err(|e| format!("open stream: {e}"))?;
                                send_file(stream, &file).await.map_err(|e| e.to_string())
                            }));
                        }
                        pos_relay_client::Event::DialFailed { peer, error } if peer == target => {
                            return Err(format!("cannot reach {peer}: {error}").into());
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let result = match args.command.as_str() {
        "listen" => listen(args).await.map(|_| true),
        "send" => send(args).await,
        _ => usage(),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            progress(serde_json::json!({ "event": "error", "error": e.to_string() }));
            std::process::exit(1);
        }
    }
}
