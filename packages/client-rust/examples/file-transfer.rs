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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    identify, identity,
    multiaddr::{Multiaddr, Protocol},
    noise, ping, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux, PeerId, StreamProtocol, Swarm,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PROTOCOL: StreamProtocol = StreamProtocol::new("/pos-relay-example/file/2.0.0");

#[derive(NetworkBehaviour)]
struct AppBehaviour {
    relay_client: relay::client::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    pos_relay: pos_relay_client::Behaviour,
    files: libp2p_stream::Behaviour,
}

struct Args {
    command: String,
    discovery: String,
    api_key: Option<String>,
    out: PathBuf,
    peer: Option<String>,
    file: Option<PathBuf>,
    relay_count: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: file-transfer listen|send --discovery URL [--api-key KEY] [--relay-count N] [--out DIR] [--peer ID --file PATH]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        command: String::new(),
        discovery: std::env::var("DISCOVERY_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        // the account's API key, when the relays require tickets (pos-relay dev prints one)
        api_key: std::env::var("API_KEY").ok(),
        out: PathBuf::from("."),
        peer: None,
        file: None,
        relay_count: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--discovery" => args.discovery = value(),
            "--api-key" => args.api_key = Some(value()),
            "--out" => args.out = PathBuf::from(value()),
            "--peer" => args.peer = Some(value()),
            "--file" => args.file = Some(PathBuf::from(value())),
            "--relay-count" => {
                let v = value();
                args.relay_count = match v.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        eprintln!("--relay-count must be a positive integer, not {v}");
                        std::process::exit(2)
                    }
                }
            }
            "--help" | "-h" => usage(),
            a if !a.starts_with('-') && args.command.is_empty() => args.command = a.to_string(),
            _ => usage(),
        }
    }
    args
}

/// A user's mistake: one line on stderr, exit code 2, never a backtrace.
fn usage_error(message: String) -> ! {
    eprintln!("file-transfer: {message}");
    std::process::exit(2)
}

fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `p` against the working directory, without `.` components (what the user reads in an error).
fn absolute(p: &Path) -> PathBuf {
    let joined = std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf());
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// `--file`, checked before any network work: a readable regular file.
fn readable_file(given: &Path) -> PathBuf {
    let path = absolute(given);
    let checked = std::fs::File::open(&path)
        .and_then(|f| f.metadata())
        .map_err(|e| reason(&e))
        .and_then(|m| {
            if m.is_dir() {
                Err("is a directory".to_string())
            } else {
                Ok(())
            }
        });
    if let Err(r) = checked {
        usage_error(format!(
            "cannot read --file {} ({}): {r}",
            given.display(),
            path.display()
        ));
    }
    path
}

/// `--out`, created if missing: a writable directory.
fn writable_dir(given: &Path) -> PathBuf {
    let path = absolute(given);
    let checked = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(&path).map_err(|e| reason(&e)),
        Err(e) => Err(reason(&e)),
        Ok(m) if !m.is_dir() => Err("not a directory".to_string()),
        Ok(m) if m.permissions().readonly() => Err("permission denied".to_string()),
        Ok(_) => Ok(()),
    };
    if let Err(r) = checked {
        usage_error(format!(
            "cannot write to --out {} ({}): {r}",
            given.display(),
            path.display()
        ));
    }
    path
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

/// One incoming file: header `<sha256> <name>`, then the bytes into a part
/// file renamed to `received-<name>` only when their SHA-256 is the announced
/// one; on any failure the part file goes and `receive_failed` is printed.
/// Answers with the SHA-256 computed here (when all bytes came).
async fn receive(
    mut stream: libp2p::Stream,
    out_dir: &Path,
) -> Result<(String, u64, String), (Option<String>, u64, String)> {
    // header: up to the first newline
    let mut header = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        stream
            .read_exact(&mut byte)
            .await
            .map_err(|e| (None, 0, format!("reading the header: {e}")))?;
        if byte[0] == b'\n' {
            break;
        }
        if header.len() > 4096 {
            return Err((None, 0, "header too long".into()));
        }
        header.push(byte[0]);
    }
    let header = String::from_utf8(header).map_err(|_| (None, 0, "bad header: not UTF-8".to_string()))?;
    let (announced, name) = match header.split_once(' ') {
        Some((sha, name))
            if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
        {
            (sha.to_string(), name)
        }
        _ => return Err((None, 0, "bad header: expected \"<sha256> <name>\"".into())),
    };
    let base = match Path::new(name).file_name() {
        Some(b) => b.to_string_lossy().into_owned(),
        None => return Err((None, 0, "bad header: empty file name".into())),
    };
    let final_path = out_dir.join(format!("received-{base}"));
    let part_path = out_dir.join(format!(".received-{base}.{:08x}.part", rand::random::<u32>()));
    let mut bytes = 0u64;
    let result: Result<String, String> = async {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part_path)
            .await
            .map_err(|e| e.to_string())?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            file.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
            bytes += n as u64;
        }
        file.flush().await.map_err(|e| e.to_string())?;
        file.sync_all().await.map_err(|e| e.to_string())?;
        Ok(hex(&hash.finalize()))
    }
    .await;
    let sha256 = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part_path).await;
            return Err((Some(base), bytes, e));
        }
    };
    let kept = if sha256 == announced {
        tokio::fs::rename(&part_path, &final_path)
            .await
            .map_err(|e| e.to_string())
    } else {
        Err(format!(
            "SHA-256 mismatch after {bytes} bytes: got {sha256}, the sender announced {announced}"
        ))
    };
    if kept.is_err() {
        let _ = tokio::fs::remove_file(&part_path).await;
    }
    // the answer in every case: the sender compares it with what it sent
    let _ = stream.write_all(sha256.as_bytes()).await;
    let _ = stream.close().await;
    kept.map(|_| (base, bytes, sha256.clone()))
        .map_err(|e| (Some(name.to_string()), bytes, e))
}

async fn send_file(
    mut stream: libp2p::Stream,
    path: &Path,
) -> Result<(u64, String, String), Box<dyn std::error::Error + Send + Sync>> {
    let name = path
        .file_name()
        .ok_or("--file has no file name")?
        .to_string_lossy()
        .into_owned();
    let announced = {
        let mut file = tokio::fs::File::open(path).await?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        hex(&hash.finalize())
    };
    // the header carries the SHA-256: the receiver keeps the file only if it matches
    stream.write_all(format!("{announced} {name}\n").as_bytes()).await?;
    let mut file = tokio::fs::File::open(path).await?;
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        stream.write_all(&buf[..n]).await?;
        bytes += n as u64;
    }
    stream.close().await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok((
        bytes,
        hex(&hash.finalize()),
        String::from_utf8_lossy(&answer).into_owned(),
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
