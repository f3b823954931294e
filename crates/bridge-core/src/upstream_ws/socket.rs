//! One upstream WebSocket: the handshake (ws:// or wss:// with the webpki roots, no permessage-deflate),
//! text frames out, frames in with a deadline, and the ping/pong liveness check of a pooled socket.
//!
//! Invariants: every wait is bounded (connect timeout, idle timeout, pong deadline); the handshake's
//! error never carries header values (tokens) or the URL unredacted; a socket that failed once is never
//! used again (the caller drops it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::either::Either;

use crate::identity::prefix::Digest;
use crate::upstream_ws::delta::Anchor;

type Io = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// Largest frame accepted from the upstream (the HTTP path's largest body).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// An open upstream socket and what the delta rule needs about its last turn.
pub struct Socket {
    ws: WebSocketStream<Io>,
    pub opened: Instant,
    pub last_used: Instant,
    /// Digest of the credential it was opened with (a refreshed token or another account needs a new one).
    pub credential: Digest,
    /// The last completed turn (`None` on a new socket and after a turn that did not complete).
    pub anchor: Option<Anchor>,
    /// The `x-codex-turn-state` of the handshake response, if the upstream sent one.
    pub handshake_turn_state: Option<String>,
}

/// Why a handshake did not give a socket.
#[derive(Debug)]
pub enum HandshakeError {
    /// The upstream answered the upgrade with this HTTP status (426/404/405: no WebSocket there).
    Status(u16),
    /// Connect, TLS or protocol failure (redacted text).
    Transport(String),
    /// No answer within the deadline.
    Timeout,
}

/// One frame read from the upstream.
pub enum Incoming {
    Text(tungstenite::Utf8Bytes),
    /// A close frame (its code) or the end of the stream (`None`, e.g. 1006: no close frame).
    Closed(Option<u16>),
    Binary,
}

impl Socket {
    /// Opens `url` (`ws://` / `wss://`) with `headers`; bounded by `timeout` for TCP, TLS and the upgrade.
    pub async fn connect(
        url: &str,
        headers: &HeaderMap,
        credential: Digest,
        timeout: Duration,
    ) -> Result<Box<Self>, HandshakeError> {
        match tokio::time::timeout(timeout, Self::connect_inner(url, headers, credential)).await {
            Ok(result) => result,
            Err(_) => Err(HandshakeError::Timeout),
        }
    }

    async fn connect_inner(url: &str, headers: &HeaderMap, credential: Digest) -> Result<Box<Self>, HandshakeError> {
        let transport =
            |e: &dyn std::fmt::Display| HandshakeError::Transport(crate::upstream::redact_urls_in(&e.to_string()));
        let mut request = url.into_client_request().map_err(|e| transport(&e))?;
        let uri = request.uri().clone();
        let host = uri.host().ok_or_else(|| HandshakeError::Transport("the upstream URL has no host".into()))?;
        let secure = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) =
                (HeaderName::from_bytes(name.as_str().as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
            {
                let mut v = v;
                v.set_sensitive(value.is_sensitive());
                request.headers_mut().append(n, v);
            }
        }
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port)).await.map_err(|e| transport(&e))?;
        let _ = tcp.set_nodelay(true);
        let io: Io = if secure {
            let name =
                tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| transport(&e))?;
            let connector = tls_connector().ok_or_else(|| HandshakeError::Transport("TLS is unavailable".into()))?;
            let tls = connector.connect(name, tcp).await.map_err(|e| transport(&e))?;
            Either::Right(tls)
        } else {
            Either::Left(tcp)
        };
        let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
        match tokio_tungstenite::client_async_with_config(request, io, Some(config)).await {
            Ok((ws, response)) => {
                let handshake_turn_state = response
                    .headers()
                    .get(crate::turn_state::TURN_STATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let now = Instant::now();
                Ok(Box::new(Self { ws, opened: now, last_used: now, credential, anchor: None, handshake_turn_state }))
            }
            Err(tungstenite::Error::Http(response)) => Err(HandshakeError::Status(response.status().as_u16())),
            Err(e) => Err(transport(&e)),
        }
    }

    /// Sends one text frame (flushed).
    pub async fn send(&mut self, text: String) -> Result<(), String> {
        self.ws.send(Message::Text(text.into())).await.map_err(|e| e.to_string())
    }

    /// The next data frame, waiting at most `idle`; pings are answered by the library, pongs skipped.
    /// `Err` on a timeout (its text) or a protocol error.
    pub async fn recv(&mut self, idle: Duration) -> Result<Incoming, ReadError> {
        loop {
            let Ok(next) = tokio::time::timeout(idle, self.ws.next()).await else {
                return Err(ReadError::Idle(idle));
            };
            return Ok(match next {
                None => Incoming::Closed(None),
                Some(Ok(Message::Text(t))) => Incoming::Text(t),
                Some(Ok(Message::Binary(_))) => Incoming::Binary,
                Some(Ok(Message::Close(frame))) => Incoming::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                    Incoming::Closed(None)
                }
                Some(Err(tungstenite::Error::Protocol(_) | tungstenite::Error::Io(_))) => Incoming::Closed(Some(1006)),
                Some(Err(e)) => return Err(ReadError::Protocol(e.to_string())),
            });
        }
    }

    /// After a failed write: the close code the upstream already sent, if a close frame is waiting (read
    /// for at most 100 ms).
    pub async fn pending_close(&mut self) -> Option<u16> {
        match self.recv(Duration::from_millis(100)).await {
            Ok(Incoming::Closed(code)) => code,
            _ => None,
        }
    }

    /// The liveness check of a pooled socket: a ping answered by a pong within `deadline` (any frame
    /// other than a pong, or none, fails it: an idle socket has nothing else to say).
    pub async fn alive(&mut self, deadline: Duration) -> bool {
        if self.ws.send(Message::Ping(b"codex-bridge".to_vec().into())).await.is_err() {
            return false;
        }
        let until = tokio::time::Instant::now() + deadline;
        loop {
            match tokio::time::timeout_at(until, self.ws.next()).await {
                Ok(Some(Ok(Message::Pong(_)))) => return true,
                Ok(Some(Ok(Message::Ping(_)))) => continue,
                _ => return false,
            }
        }
    }

    /// Closes politely (best effort, bounded).
    pub async fn close(mut self: Box<Self>) {
        let _ = tokio::time::timeout(Duration::from_millis(200), self.ws.close(None)).await;
    }
}

/// Why reading a frame failed.
#[derive(Debug)]
pub enum ReadError {
    Idle(Duration),
    Protocol(String),
}

/// One TLS client configuration for every upstream socket (webpki roots, the ring provider reqwest uses);
/// `None` if it cannot be built (every wss:// handshake then fails cleanly and the turn goes over HTTP).
fn tls_connector() -> Option<tokio_rustls::TlsConnector> {
    use tokio_rustls::rustls;
    static CONFIG: std::sync::OnceLock<Option<Arc<rustls::ClientConfig>>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder =
            rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().ok()?;
        Some(Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
    });
    config.clone().map(tokio_rustls::TlsConnector::from)
}
