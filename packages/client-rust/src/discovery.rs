//! The discovery API's relay list (`GET /api/p2p/relays`) and rendezvous
//! ranking of relays for a peer.

use std::time::Duration;

use libp2p::multiaddr::{Multiaddr, Protocol};
use libp2p::PeerId;
use sha2::{Digest, Sha256};

use crate::addresses::{dialable_relay_addrs, AddressPolicy};

/// Largest response body read from the discovery API by default (far above any legitimate answer).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// One usable entry of the relay list: addrs already filtered by the address policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayInfo {
    /// the relay's registration id
    pub id: String,
    /// the relay's peer id
    pub peer_id: PeerId,
    /// dialable addrs, each ending in `/p2p/<peer_id>`
    pub addrs: Vec<Multiaddr>,
}

/// Why a relay list could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// the HTTP request failed (connection, timeout)
    #[error("cannot reach discovery API {url}: {source}")]
    Unreachable {
        /// the URL asked
        url: String,
        /// what went wrong
        source: reqwest::Error,
    },
    /// the API answered with a non-2xx status
    #[error("discovery API {url} answered {status}")]
    Status {
        /// the URL asked
        url: String,
        /// the HTTP status
        status: u16,
    },
    /// the body was larger than the cap
    #[error("response from {url} exceeds {max_bytes} bytes; refusing to read more")]
    TooLarge {
        /// the URL asked
        url: String,
        /// the cap
        max_bytes: usize,
    },
    /// the body was not a JSON array
    #[error("discovery API answered something that is not a JSON array of relays")]
    InvalidDocument,
    /// the discovery URL does not parse
    #[error("bad discovery URL: {0}")]
    BadUrl(String),
}

/// Parses a relay list body. A body that is not a JSON array is an error.
/// Malformed entries (not an object; id not a non-empty string; peer_id not a
/// base58btc peer id; addrs not an array) are skipped, not an error: one broken
/// relay must not cut a client off from the others. Addrs must end in the
/// entry's own `/p2p/<peer id>` (no circuit, no other peer) and pass `policy`;
/// an entry left with no addr is skipped; an entry whose id or peer id was
/// already taken by an earlier kept entry is skipped.
pub fn parse_relay_list(body: &[u8], policy: AddressPolicy) -> Result<Vec<RelayInfo>, DiscoveryError> {
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| DiscoveryError::InvalidDocument)?;
    let entries = doc.as_array().ok_or(DiscoveryError::InvalidDocument)?;
    let mut out: Vec<RelayInfo> = Vec::new();
    for entry in entries {
        let Some(info) = parse_entry(entry, policy) else {
            continue;
        };
        if out.iter().any(|r| r.id == info.id || r.peer_id == info.peer_id) {
            continue;
        }
        out.push(info);
    }
    Ok(out)
}

/// Whether `addr` has the shape discovery writes for the relay `peer`: ends in
/// the text `/p2p/<peer>`, names no other peer, is no circuit address, and has a
/// host and a transport (or is `/dnsaddr`).
fn belongs_to(addr: &str, peer: &PeerId, peer_str: &str) -> Option<Multiaddr> {
    // as text: no /ipfs/ or CID spelling of the peer, which multiaddr libraries read differently
    if !addr.ends_with(&format!("/p2p/{peer_str}")) {
        return None;
    }
    let ma: Multiaddr = addr.parse().ok()?;
    let components: Vec<Protocol<'_>> = ma.iter().collect();
    let (last, transport) = components.split_last()?;
    if *last != Protocol::P2p(*peer) {
        return None;
    }
    if transport
        .iter()
        .any(|p| matches!(p, Protocol::P2p(_) | Protocol::P2pCircuit))
    {
        return None;
    }
    let shaped = transport.len() >= 2 || matches!(transport, [Protocol::Dnsaddr(_)]);
    shaped.then_some(ma)
}

fn parse_entry(entry: &serde_json::Value, policy: AddressPolicy) -> Option<RelayInfo> {
    let id = entry.get("id")?.as_str().filter(|s| !s.is_empty())?;
    let peer_str = entry.get("peer_id")?.as_str()?;
    let addrs = entry.get("addrs")?.as_array()?;
    let peer_id: PeerId = peer_str.parse().ok()?;
    // the one spelling discovery writes; any other would rank differently
    if peer_id.to_base58() != peer_str {
        return None;
    }
    let own = addrs.iter().filter_map(|a| belongs_to(a.as_str()?, &peer_id, peer_str));
    let addrs = dialable_relay_addrs(own, policy);
    (!addrs.is_empty()).then(|| RelayInfo {
        id: id.to_string(),
        peer_id,
        addrs,
    })
}

/// Sends `req` to the discovery API at `shown` (its URL, for errors) with
/// `timeout`; not reaching it is [`DiscoveryError::Unreachable`].
pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    shown: &str,
    timeout: Duration,
) -> Result<reqwest::Response, DiscoveryError> {
    req.timeout(timeout)
        .send()
        .await
        .map_err(|source| DiscoveryError::Unreachable {
            url: shown.to_string(),
            source,
        })
}

/// The body of `res` from `shown`, [`DiscoveryError::TooLarge`] (without
/// buffering it) when larger than `max_bytes`.
pub(crate) async fn read_body(
    res: reqwest::Response,
    shown: String,
    max_bytes: usize,
) -> Result<Vec<u8>, DiscoveryError> {
    read_capped(res, max_bytes)
        .await
        .map_err(|max_bytes| DiscoveryError::TooLarge { url: shown, max_bytes })
}

/// Reads a response body, refusing (without buffering it) one larger than `max_bytes`.
async fn read_capped(mut res: reqwest::Response, max_bytes: usize) -> Result<Vec<u8>, usize> {
    if res.content_length().is_some_and(|n| n > max_bytes as u64) {
        return Err(max_bytes);
    }
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        if body.len() + chunk.len() > max_bytes {
            return Err(max_bytes);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `base` joined with `path`, whether or not `base` ends in a slash.
pub(crate) fn api_url(base: &str, path: &str) -> Result<url::Url, DiscoveryError> {
    let base = if base.ends_with('/') {
        base.to_string()
    } else {
        format!("{base}/")
    };
    url::Url::parse(&base)
        .and_then(|b| b.join(path))
        .map_err(|e| DiscoveryError::BadUrl(e.to_string()))
}

/// The most relays `?for=` answers (the discovery API's limit).
pub const RANKED_COUNT_MAX: usize = 16;

/// The `count` a client asks `?for=` for: `relay_count + 2`, at most 16. A listener
/// reserves on the first `relay_count` usable relays of its ranking, skipping failed
/// ones, and a dialer tries `relay_count + 2` of the target's (`docs/protocol.md` sections 1, 4, 5).
pub fn ranked_count(relay_count: usize) -> usize {
    (relay_count + crate::failover::EXTRA_DIAL_RELAYS).clamp(1, RANKED_COUNT_MAX)
}

/// Fetches the live relays from a discovery API (bounded body, address policy applied).
pub async fn fetch_relays(
    http: &reqwest::Client,
    discovery_url: &str,
    policy: AddressPolicy,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Vec<RelayInfo>, DiscoveryError> {
    fetch_list(
        http,
        api_url(discovery_url, "api/p2p/relays")?,
        policy,
        max_bytes,
        timeout,
    )
    .await
}

/// Fetches the `count` relays ranked for `peer` (`GET /api/p2p/relays?for=<peer>&count=<count>`,
/// count clamped to 1-16). An older discovery ignores the parameters and answers the full
/// list: rank the answer either way ([`crate::rank_relays`], [`crate::relays_to_dial`]); the
/// ranking of any subset keeps the global order, so the same code is right for both.
pub async fn fetch_ranked_relays(
    http: &reqwest::Client,
    discovery_url: &str,
    peer: &PeerId,
    count: usize,
    policy: AddressPolicy,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Vec<RelayInfo>, DiscoveryError> {
    let mut url = api_url(discovery_url, "api/p2p/relays")?;
    url.query_pairs_mut()
        .append_pair("for", &peer.to_base58())
        .append_pair("count", &count.clamp(1, RANKED_COUNT_MAX).to_string());
    fetch_list(http, url, policy, max_bytes, timeout).await
}

async fn fetch_list(
    http: &reqwest::Client,
    url: url::Url,
    policy: AddressPolicy,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Vec<RelayInfo>, DiscoveryError> {
    let shown = url.to_string();
    let res = send(http.get(url).header("accept", "application/json"), &shown, timeout).await?;
    if !res.status().is_success() {
        return Err(DiscoveryError::Status {
            url: shown,
            status: res.status().as_u16(),
        });
    }
    let body = read_body(res, shown, max_bytes).await?;
    parse_relay_list(&body, policy)
}

/// The rendezvous score of a relay for `key`: the first 8 bytes, big-endian,
/// of sha256(utf8(relay peer id) || 0x00 || utf8(key)).
pub fn score(relay_peer_id: &str, key: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(relay_peer_id)
        .chain_update([0u8])
        .chain_update(key)
        .finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("sha256 is 32 bytes"))
}

/// Orders `items` by rendezvous score for `key`, highest first; equal scores
/// by the relay peer id strings' bytes, ascending (never locale-aware).
pub fn rank_by<T: Clone>(items: &[T], key: &str, peer_id_of: impl Fn(&T) -> String) -> Vec<T> {
    let mut scored: Vec<(u64, String, &T)> = items
        .iter()
        .map(|item| {
            let pid = peer_id_of(item);
            (score(&pid, key), pid, item)
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.as_bytes().cmp(b.1.as_bytes())));
    scored.into_iter().map(|(_, _, item)| item.clone()).collect()
}

/// Rendezvous (highest-random-weight) ranking of relays for the peer `key`.
///
/// A peer reserves on the first N relays ranked for its own peer id; a dialer
/// ranks the same list for the peer it wants and so knows which relays to try,
/// without a lookup and without connecting to every relay. When a relay joins
/// or leaves, only the peers whose top N included it move.
pub fn rank_relays(relays: &[RelayInfo], key: &str) -> Vec<RelayInfo> {
    rank_by(relays, key, |r| r.peer_id.to_base58())
}
