//! The command line (see main.rs for the contract).

use super::*;

#[derive(Default, Clone)]
pub(crate) struct Args {
    pub(crate) mode: String,
    pub(crate) relay: String,
    pub(crate) peer: String,
    pub(crate) payload_bytes: u64,
    pub(crate) marker: String,
    pub(crate) out_file: String,
    pub(crate) ready_file: String,
    pub(crate) timeout_ms: u64,
    pub(crate) direct_timeout_ms: u64,
    pub(crate) no_dcutr: bool,
    pub(crate) count: usize,
    pub(crate) listen: String,
    pub(crate) transport: String,
    pub(crate) discovery: String,
    pub(crate) api_key: String,
}

pub(crate) fn parse_args() -> Args {
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
