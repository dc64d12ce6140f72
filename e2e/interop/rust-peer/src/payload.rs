//! The payload protocol: a deterministic byte stream one way, its length and sha256 back.

use super::*;

/// Deterministic payload: the marker repeated, or a xorshift stream.
pub(crate) struct Payload {
    marker: Vec<u8>,
    state: u64,
    offset: usize,
}

impl Payload {
    pub(crate) fn new(marker: &str) -> Self {
        Payload { marker: marker.as_bytes().to_vec(), state: 0x9e3779b97f4a7c15, offset: 0 }
    }
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
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

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends the payload, half-closes, reads the listener's `{"bytes":N,"sha256":"..."}` reply.
pub(crate) async fn send_payload(mut stream: libp2p::Stream, n: u64, marker: &str) -> Result<(String, u64, String), String> {
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
pub(crate) async fn receive_payload(mut stream: libp2p::Stream) -> Result<(String, u64), String> {
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

pub(crate) fn reply_field(reply: &str, key: &str) -> Option<String> {
    // tiny parser for {"bytes":N,"sha256":"hex"}
    let pat = format!("\"{key}\":");
    let start = reply.find(&pat)? + pat.len();
    let rest = reply[start..].trim_start();
    let end = rest.find(|c| c == ',' || c == '}').unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"').to_string())
}
