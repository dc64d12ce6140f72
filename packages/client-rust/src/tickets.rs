//! Account tickets: getting them from the discovery API with the account's
//! API key (`POST /api/p2p/tickets`) and presenting them to a relay over
//! `/pos-relay/ticket/1.0.0` (see `relay-image/src/auth.ts`).
//!
//! Wire format: the client writes one message, the relay answers one message;
//! each is an unsigned-varint length followed by that many bytes. The request
//! is the ticket (a compact JWS) in UTF-8; the reply is a JSON object
//! `{"status":"OK"|"REJECTED","reason"?:string,...}`, at most 4096 bytes.

use std::time::{Duration, Instant, SystemTime};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};

use crate::discovery::{api_url, read_body, send, DiscoveryError};

/// The relay's protocol for presenting an account ticket.
pub const TICKET_PROTOCOL: StreamProtocol = StreamProtocol::new("/pos-relay/ticket/1.0.0");
/// Largest message either side sends on the ticket protocol.
pub const MAX_TICKET_MESSAGE_BYTES: usize = 4096;
/// Share of a ticket's lifetime after which it is replaced.
pub const RENEW_AT: f64 = 0.8;

/// A relay ticket as issued by the discovery API.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// the compact JWS presented to relays
    pub token: String,
    /// the ticket's id (changes with every ticket)
    pub jti: String,
    /// when we received it (local clock)
    pub issued_at: Instant,
    /// how long it was valid for when we received it
    pub lifetime: Duration,
}

impl std::fmt::Debug for Ticket {
    // the token is a bearer credential: never in logs
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("jti", &self.jti)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// When this ticket should be replaced: after 80 % of its lifetime.
    pub fn renew_at(&self) -> Instant {
        self.issued_at + self.lifetime.mul_f64(RENEW_AT)
    }
}

/// Why no ticket could be had from the discovery API.
#[derive(Debug, thiserror::Error)]
pub enum TicketFetchError {
    /// the request failed or the answer was too large
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// the API refused (a wrong or disabled API key answers 401)
    #[error("ticket request failed: {status} {body}")]
    Refused {
        /// the HTTP status
        status: u16,
        /// the start of the answer
        body: String,
    },
    /// the answer was not `{ticket, jti, expires_at}`
    #[error("ticket answer malformed: {0}")]
    Malformed(String),
}

#[derive(serde::Deserialize)]
struct TicketAnswer {
    ticket: String,
    jti: String,
    expires_at: String,
}

/// Asks the discovery API for a ticket bound to `peer`.
pub async fn fetch_ticket(
    http: &reqwest::Client,
    discovery_url: &str,
    api_key: &str,
    peer: &PeerId,
) -> Result<Ticket, TicketFetchError> {
    let url = api_url(discovery_url, "api/p2p/tickets")?;
    let shown = url.to_string();
    let req = http
        .post(url)
        .bearer_auth(api_key)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "peer_id": peer.to_base58() }).to_string());
    let res = send(req, &shown, Duration::from_secs(10)).await?;
    let status = res.status();
    // a ticket answer is a few hundred bytes; whoever answers must not make us buffer more than 1 MiB
    let body = read_body(res, shown, crate::discovery::MAX_RESPONSE_BYTES).await?;
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        return Err(TicketFetchError::Refused {
            status: status.as_u16(),
            body: text,
        });
    }
    let answer: TicketAnswer = serde_json::from_slice(&body).map_err(|e| TicketFetchError::Malformed(e.to_string()))?;
    let expires = time::OffsetDateTime::parse(&answer.expires_at, &time::format_description::well_known::Rfc3339)
        .map_err(|e| TicketFetchError::Malformed(format!("expires_at: {e}")))?;
    let expires = SystemTime::from(expires);
    let lifetime = expires.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    Ok(Ticket {
        token: answer.ticket,
        jti: answer.jti,
        issued_at: Instant::now(),
        lifetime,
    })
}

/// What the relay answered to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketReply {
    /// the relay holds the ticket for this connection's peer until it expires
    Accepted,
    /// refused, with the relay's reason (`expired`, `wrong_peer`, `revoked`, `rate_limited`, ...;
    /// `unknown` when the relay gave none)
    Rejected(String),
}

/// A ticket exchange that broke the protocol or the connection.
#[derive(Debug, thiserror::Error)]
pub enum TicketProtocolError {
    /// the stream failed
    #[error("ticket stream: {0}")]
    Io(#[from] std::io::Error),
    /// the reply's length prefix is not a valid unsigned varint
    #[error("ticket reply: bad length prefix")]
    BadLength,
    /// the reply is longer than [`MAX_TICKET_MESSAGE_BYTES`]
    #[error("ticket reply: {0} bytes, more than allowed")]
    TooLong(u64),
    /// the reply ended before its declared length, or has bytes after it
    #[error("ticket reply: truncated or trailing bytes")]
    Framing,
    /// the reply is not a UTF-8 JSON object whose `status` is `OK` or `REJECTED`
    #[error("ticket reply: not a JSON object with status OK or REJECTED")]
    BadReply,
    /// the ticket itself is larger than the relay reads
    #[error("ticket too large: {0} bytes")]
    TicketTooLarge(usize),
}

/// The bytes a client writes to present `token`: varint length, then the token.
pub fn encode_ticket_request(token: &str) -> Vec<u8> {
    let mut len = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(token.len(), &mut len);
    let mut out = Vec::with_capacity(prefix.len() + token.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(token.as_bytes());
    out
}

/// Interprets the body of the relay's reply (without its length prefix): a
/// UTF-8 JSON object whose `status` is `OK` or `REJECTED`; a rejection without
/// a non-empty string `reason` has reason `unknown`. Anything else is a protocol error.
pub fn parse_ticket_reply_body(body: &[u8]) -> Result<TicketReply, TicketProtocolError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| TicketProtocolError::BadReply)?;
    let reply = value.as_object().ok_or(TicketProtocolError::BadReply)?;
    match reply.get("status").and_then(|s| s.as_str()) {
        Some("OK") => Ok(TicketReply::Accepted),
        Some("REJECTED") => {
            let reason = reply.get("reason").and_then(|r| r.as_str()).filter(|r| !r.is_empty());
            Ok(TicketReply::Rejected(reason.unwrap_or("unknown").to_string()))
        }
        _ => Err(TicketProtocolError::BadReply),
    }
}

/// Decodes a complete reply as it came off the wire (length prefix + body, nothing after).
pub fn decode_ticket_reply(bytes: &[u8]) -> Result<TicketReply, TicketProtocolError> {
    let (len, rest) = unsigned_varint::decode::u64(bytes).map_err(|_| TicketProtocolError::BadLength)?;
    if len > MAX_TICKET_MESSAGE_BYTES as u64 {
        return Err(TicketProtocolError::TooLong(len));
    }
    if rest.len() as u64 != len {
        return Err(TicketProtocolError::Framing);
    }
    parse_ticket_reply_body(rest)
}

/// Reads one length-prefixed message of at most [`MAX_TICKET_MESSAGE_BYTES`].
async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, TicketProtocolError> {
    let mut prefix = Vec::with_capacity(10);
    let len = loop {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        prefix.push(byte[0]);
        if byte[0] & 0x80 == 0 {
            break unsigned_varint::decode::u64(&prefix)
                .map_err(|_| TicketProtocolError::BadLength)?
                .0;
        }
        if prefix.len() >= 10 {
            return Err(TicketProtocolError::BadLength);
        }
    };
    if len > MAX_TICKET_MESSAGE_BYTES as u64 {
        return Err(TicketProtocolError::TooLong(len));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => TicketProtocolError::Framing,
        _ => TicketProtocolError::Io(e),
    })?;
    Ok(body)
}

/// Presents `token` on an open `/pos-relay/ticket/1.0.0` stream and reads the relay's answer.
pub async fn present_ticket<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    token: &str,
) -> Result<TicketReply, TicketProtocolError> {
    if token.len() > MAX_TICKET_MESSAGE_BYTES {
        return Err(TicketProtocolError::TicketTooLarge(token.len()));
    }
    stream.write_all(&encode_ticket_request(token)).await?;
    stream.flush().await?;
    let body = read_message(stream).await?;
    let reply = parse_ticket_reply_body(&body)?;
    let _ = stream.close().await;
    Ok(reply)
}
