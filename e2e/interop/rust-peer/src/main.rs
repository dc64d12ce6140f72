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

#[derive(Default, Clone)]
struct Args {
    mode: String,
    relay: String,
    peer: String,
    payload_bytes: u64,
    marker: String,
    out_file: String,
    ready_file: String,
    timeout_ms: u64,
    direct_timeout_ms: u64,
    no_dcutr: bool,
    count: usize,
    listen: String,
    transport: String,
    discovery: String,
    api_key: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        payload_bytes: 1 << 20,
        timeout_ms: 60_000,
        direct_timeout_ms: 10_000,
        count: 1,
        transport: "tcp".into(),
        ..Default::default()
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let k = argv[i].as_str();
        let mut val = || {
            i += 1;
            argv.get(i).cloned().unwrap_or_else(|| die(&format!("{k} needs a value")))
        };
        match k {
            "--mode" => a.mode = val(),
            "--relay" => a.relay = val(),
            "--peer" => a.peer = val(),
            "--payload-bytes" => a.payload_bytes = val().parse().unwrap_or_else(|_| die("bad --payload-bytes")),
            "--marker" => a.marker = val(),
            "--out-file" => a.out_file = val(),
            "--ready-file" => a.ready_file = val(),
            "--timeout-ms" => a.timeout_ms = val().parse().unwrap_or_else(|_| die("bad --timeout-ms")),
            "--direct-timeout-ms" => a.direct_timeout_ms = val().parse().unwrap_or_else(|_| die("bad --direct-timeout-ms")),
            "--count" => a.count = val().parse().unwrap_or_else(|_| die("bad --count")),
            "--listen" => a.listen = val(),
            "--transport" => a.transport = val(),
            "--discovery" => a.discovery = val(),
            "--api-key" => a.api_key = val(),
            "--no-dcutr" => a.no_dcutr = true,
            "--help" | "-h" => {
                println!("see the header of e2e/interop/rust-peer/src/main.rs");
                std::process::exit(0);
            }
            _ => die(&format!("unknown argument {k}")),
        }
        i += 1;
    }
    if a.relay.is_empty() {
        die("--relay is required");
    }
    // the relay address decides which transport carries the reservation or
    // circuit, and the listen address which socket hole punching uses: both
    // must be of the transport asked for, or the cell would test the other one
    let relay_is_quic = a.relay.contains("/quic-v1");
    match a.transport.as_str() {
        "tcp" if relay_is_quic => die("--transport tcp but --relay is a QUIC address"),
        "quic" if !relay_is_quic => die("--transport quic but --relay is not a /udp/<port>/quic-v1 address"),
        "tcp" | "quic" => {}
        other => die(&format!("--transport must be tcp or quic, got {other}")),
    }
    if !a.api_key.is_empty() && a.discovery.is_empty() {
        die("--api-key needs --discovery (tickets come from the discovery API)");
    }
    if a.listen.is_empty() {
        a.listen = if a.transport == "quic" { "/ip4/0.0.0.0/udp/0/quic-v1".into() } else { "/ip4/0.0.0.0/tcp/0".into() };
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("{{\"event\":\"usage_error\",\"error\":{}}}", json_str(msg));
    std::process::exit(2)
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn log(event: &str, fields: &[(&str, String)]) {
    let mut line = format!("{{\"event\":{}", json_str(event));
    for (k, v) in fields {
        line.push_str(&format!(",{}:{}", json_str(k), json_str(v)));
    }
    line.push('}');
    eprintln!("{line}");
}

/// The result line; `fields` are already-encoded JSON values.
fn emit_result(args: &Args, fields: Vec<(&str, String)>) {
    let mut line = String::from("{\"impl\":\"rust\"");
    for (k, v) in fields {
        line.push_str(&format!(",{}:{}", json_str(k), v));
    }
    line.push('}');
    println!("{line}");
    let _ = std::io::stdout().flush();
    if !args.out_file.is_empty() {
        let _ = std::fs::write(&args.out_file, format!("{line}\n"));
    }
}

fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
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

/// Deterministic payload: the marker repeated, or a xorshift stream.
struct Payload {
    marker: Vec<u8>,
    state: u64,
    offset: usize,
}

impl Payload {
    fn new(marker: &str) -> Self {
        Payload { marker: marker.as_bytes().to_vec(), state: 0x9e3779b97f4a7c15, offset: 0 }
    }
    fn fill(&mut self, buf: &mut [u8]) {
        if !self.marker.is_empty() {
            for b in buf.iter_mut() {
                *b = self.marker[self.offset % self.marker.len()];
                self.offset += 1;
            }
            return;
        }
        for chunk in buf.chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            let bytes = self.state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends the payload, half-closes, reads the listener's `{"bytes":N,"sha256":"..."}` reply.
async fn send_payload(mut stream: libp2p::Stream, n: u64, marker: &str) -> Result<(String, u64, String), String> {
    let mut payload = Payload::new(marker);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < n {
        let len = std::cmp::min(buf.len() as u64, n - sent) as usize;
        payload.fill(&mut buf[..len]);
        hash.update(&buf[..len]);
        stream.write_all(&buf[..len]).await.map_err(|e| format!("write: {e}"))?;
        sent += len as u64;
    }
    stream.close().await.map_err(|e| format!("close: {e}"))?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.map_err(|e| format!("read reply: {e}"))?;
    Ok((hex(&hash.finalize()), sent, String::from_utf8_lossy(&reply).trim().to_string()))
}

/// Reads the payload to EOF, replies with its length and sha256.
async fn receive_payload(mut stream: libp2p::Stream) -> Result<(String, u64), String> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
    let digest = hex(&hash.finalize());
    let reply = format!("{{\"bytes\":{total},\"sha256\":\"{digest}\"}}\n");
    stream.write_all(reply.as_bytes()).await.map_err(|e| format!("write reply: {e}"))?;
    stream.close().await.map_err(|e| format!("close: {e}"))?;
    Ok((digest, total))
}

fn reply_field(reply: &str, key: &str) -> Option<String> {
    // tiny parser for {"bytes":N,"sha256":"hex"}
    let pat = format!("\"{key}\":");
    let start = reply.find(&pat)? + pat.len();
    let rest = reply[start..].trim_start();
    let end = rest.find(|c| c == ',' || c == '}').unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"').to_string())
}

struct Conns {
    /// connection id -> (peer, remote address)
    by_id: HashMap<ConnectionId, (PeerId, Multiaddr)>,
}

impl Conns {
    fn direct_to(&self, peer: &PeerId) -> Option<(ConnectionId, Multiaddr)> {
        self.by_id.iter().find(|(_, (p, a))| p == peer && !is_relayed(a)).map(|(c, (_, a))| (*c, a.clone()))
    }
    fn relayed_to(&self, peer: &PeerId) -> Vec<(ConnectionId, Multiaddr)> {
        self.by_id.iter().filter(|(_, (p, a))| p == peer && is_relayed(a)).map(|(c, (_, a))| (*c, a.clone())).collect()
    }
}

fn remote_of(endpoint: &ConnectedPoint) -> Multiaddr {
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
async fn connect_relay(swarm: &mut Swarm<Behaviour>, args: &Args, conns: &mut Conns) -> Result<(Multiaddr, PeerId), String> {
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
async fn present_ticket(mut control: libp2p_stream::Control, discovery: String, api_key: String, local: PeerId, relay: PeerId) -> Result<String, String> {
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
async fn with_swarm<T>(swarm: &mut Swarm<Behaviour>, conns: &mut Conns, fut: impl std::future::Future<Output = T>) -> T {
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
