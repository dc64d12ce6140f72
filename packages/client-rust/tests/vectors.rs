//! The shared protocol vectors (`docs/protocol-vectors/*.json` at the repo
//! root, loaded by every client's tests) and this crate's own cases in the same
//! format (`tests/fixtures/`).

use std::path::{Path, PathBuf};

use pos_relay_client::discovery::{parse_relay_list, rank_by, DiscoveryError};
use pos_relay_client::tickets::{decode_ticket_reply, encode_ticket_request, TicketReply};
use pos_relay_client::{relays_to_dial, relays_to_reserve, AddressPolicy, RelayInfo};
use serde_json::Value;

fn repo_vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol-vectors")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The cases of `name` in the shared folder (None when it is absent) and in the crate's fixtures.
fn suites(name: &str) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for dir in [repo_vectors(), fixtures()] {
        let path = dir.join(name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            // CI sets POS_RELAY_REQUIRE_VECTORS=1: there a missing shared folder is a failure, not a skip
            assert!(
                std::env::var_os("POS_RELAY_REQUIRE_VECTORS").is_none(),
                "{} not found (POS_RELAY_REQUIRE_VECTORS is set)",
                path.display()
            );
            eprintln!("note: {} not found, skipped", path.display());
            continue;
        };
        let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cases = doc["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no cases", path.display()))
            .clone();
        assert!(!cases.is_empty(), "{}: empty", path.display());
        out.push((path.display().to_string(), cases));
    }
    assert!(!out.is_empty(), "no {name} anywhere");
    out
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn ranking() {
    for (file, cases) in suites("ranking.json") {
        for case in cases {
            let name = case["name"].as_str().unwrap_or("?");
            let key = case["key"].as_str().expect("key");
            let relays: Vec<(String, String)> = case["relays"]
                .as_array()
                .expect("relays")
                .iter()
                .map(|r| {
                    (
                        r["id"].as_str().expect("id").into(),
                        r["peer_id"].as_str().expect("peer_id").into(),
                    )
                })
                .collect();
            let got: Vec<String> = rank_by(&relays, key, |r| r.1.clone())
                .into_iter()
                .map(|r| r.0)
                .collect();
            assert_eq!(got, strings(&case["expected"]), "{file}: {name}");
        }
    }
}

#[test]
fn relay_lists() {
    for (file, cases) in suites("relay-lists.json") {
        for case in cases {
            let name = case["name"].as_str().unwrap_or("?");
            let policy = match case["policy"].as_str() {
                Some("public-only") => AddressPolicy::PublicOnly,
                Some("default") | None => AddressPolicy::Default,
                Some(other) => panic!("{file}: {name}: unknown policy {other}"),
            };
            let document = case["document"].as_str().expect("document is a string");
            let result = parse_relay_list(document.as_bytes(), policy);
            if let Some(error) = case.get("error").and_then(Value::as_str) {
                assert_eq!(error, "invalid_document", "{file}: {name}: unknown error kind");
                assert!(
                    matches!(result, Err(DiscoveryError::InvalidDocument)),
                    "{file}: {name}: expected invalid_document, got {result:?}"
                );
                continue;
            }
            let got: Vec<Value> = result
                .unwrap_or_else(|e| panic!("{file}: {name}: {e}"))
                .into_iter()
                .map(|r| {
                    serde_json::json!({
                        "id": r.id,
                        "peer_id": r.peer_id.to_base58(),
                        "addrs": r.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            assert_eq!(Value::Array(got), case["expected"], "{file}: {name}");
        }
    }
}

#[test]
fn tickets() {
    for (file, cases) in suites("tickets.json") {
        for case in cases {
            let name = case["name"].as_str().unwrap_or("?");
            if let Some(request) = case.get("request_hex").and_then(Value::as_str) {
                // the client's bytes for the ticket inside the request are exactly the request
                let bytes = hex(request);
                let (len, token) = unsigned_varint::decode::usize(&bytes).expect("request length prefix");
                assert_eq!(len, token.len(), "{file}: {name}: request framing");
                let token = std::str::from_utf8(token).expect("request is UTF-8");
                assert_eq!(encode_ticket_request(token), bytes, "{file}: {name}: request bytes");
            }
            let reply = decode_ticket_reply(&hex(case["reply_hex"].as_str().expect("reply_hex")));
            match case["outcome"].as_str().expect("outcome") {
                "accepted" => assert_eq!(reply.ok(), Some(TicketReply::Accepted), "{file}: {name}"),
                "rejected" => {
                    let reason = case["reason"].as_str().expect("a rejection has a reason").to_string();
                    assert_eq!(reply.ok(), Some(TicketReply::Rejected(reason)), "{file}: {name}");
                }
                "malformed" => assert!(
                    reply.is_err(),
                    "{file}: {name}: expected a protocol error, got {reply:?}"
                ),
                other => panic!("{file}: {name}: unknown outcome {other}"),
            }
        }
    }
}

#[test]
fn failover() {
    for (file, cases) in suites("failover.json") {
        for case in cases {
            let name = case["name"].as_str().unwrap_or("?");
            let listener = case["listener"].as_str().expect("listener");
            let relay_count = case["relay_count"].as_u64().expect("relay_count") as usize;
            let relays: Vec<RelayInfo> = case["relays"]
                .as_array()
                .expect("relays")
                .iter()
                .map(|r| RelayInfo {
                    id: r["id"].as_str().expect("id").into(),
                    peer_id: r["peer_id"].as_str().expect("peer_id").parse().expect("peer id"),
                    addrs: Vec::new(),
                })
                .collect();
            // unusable names relays by id; the client tracks them by peer id (an unknown id names no relay)
            let unusable: Vec<_> = strings(&case["unusable"])
                .iter()
                .filter_map(|id| relays.iter().find(|r| r.id == *id).map(|r| r.peer_id))
                .collect();
            let ids = |rs: Vec<RelayInfo>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
            let reserve = relays_to_reserve(&relays, listener, relay_count, |p| unusable.contains(p));
            assert_eq!(ids(reserve), strings(&case["reserve"]), "{file}: {name}: reserve");
            let dial = relays_to_dial(&relays, listener, relay_count);
            assert_eq!(ids(dial), strings(&case["dial"]), "{file}: {name}: dial");
        }
    }
}
