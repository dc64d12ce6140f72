//! pos-relay relay benchmark: rust-libp2p's Circuit Relay v2 server as a small
//! binary (TCP + Noise + Yamux, identify, ping). Test-only; built by ../build.sh.
//!
//!   rust-relay --listen /ip4/127.0.0.1/tcp/0 [--max-reservations N]
//!
//! Prints one JSON line {"impl":"rust","role":"relay","peer_id":...,"addrs":[...]}
//! once listening, then serves until SIGINT.
//!
//! Limits: rust-libp2p's defaults (128 reservations, 16 circuits, 2 min /
//! 128 KiB per circuit, per-peer and per-IP rate limiters) are raised so a
//! benchmark is comparable with pos-relay: --max-reservations, 1024 circuits,
//! 1 h / 4 GiB per circuit, no rate limiters. Everything else is the default.
//! The listen address is added as external address (rust-libp2p#2621: a relay
//! without one answers reservations with no addresses).

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use libp2p::{
    identify, noise, ping, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux, Multiaddr,
};

#[derive(NetworkBehaviour)]
struct Behaviour {
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut listen = "/ip4/127.0.0.1/tcp/0".to_string();
    let mut max_reservations = 10_000usize;
    let mut i = 0;
    while i < argv.len() {
        match argv[i].as_str() {
            "--listen" => { i += 1; listen = argv[i].clone(); }
            "--max-reservations" => { i += 1; max_reservations = argv[i].parse().expect("--max-reservations N"); }
            other => { eprintln!("unknown argument {other}"); std::process::exit(2); }
        }
        i += 1;
    }
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|key| {
            let config = relay::Config {
                max_reservations,
                max_reservations_per_peer: 4,
                reservation_duration: Duration::from_secs(3600),
                reservation_rate_limiters: vec![],
                max_circuits: 1024,
                max_circuits_per_peer: 16,
                max_circuit_duration: Duration::from_secs(3600),
                max_circuit_bytes: 4 << 30,
                circuit_src_rate_limiters: vec![],
            };
            Behaviour {
                relay: relay::Behaviour::new(key.public().to_peer_id(), config),
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipfs/id/1.0.0".to_string(), key.public())
                        .with_agent_version("pos-relay-interop/rust-relay".to_string()),
                ),
                ping: ping::Behaviour::new(ping::Config::new()),
            }
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let addr: Multiaddr = listen.parse().expect("--listen multiaddr");
    swarm.listen_on(addr).expect("listen");
    let peer_id = *swarm.local_peer_id();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = swarm.select_next_some() => {
                if let SwarmEvent::NewListenAddr { address, .. } = event {
                    swarm.add_external_address(address.clone());
                    println!("{{\"impl\":\"rust\",\"role\":\"relay\",\"peer_id\":\"{peer_id}\",\"addrs\":[\"{address}/p2p/{peer_id}\"],\"pid\":{}}}", std::process::id());
                    let _ = std::io::stdout().flush();
                }
            }
        }
    }
}
