//! One accepted client connection: HTTP/1 served by hyper, watched for what it holds and for how long.
//!
//! Invariants:
//! - A connection with no request in flight is closed [`ServerLimits::idle_timeout`] after its last response
//!   ended (or after it was accepted, when it never sent anything).
//! - A request's headers must be complete within [`ServerLimits::header_read_timeout`] of its first byte;
//!   otherwise the connection is dropped (slow headers).
//! - [`ConnectionHandle::cut`] drops the connection at once: the pump uses it for a client that stopped
//!   reading ([`ServerLimits::client_stall_timeout`]). Eviction ([`Activity::evict`]) and server shutdown
//!   close it gracefully: an idle connection at once, a busy one after its response.
//! - "In flight" lasts from the request's arrival until hyper has taken the last byte of its response
//!   body, so a long quiet stream is never mistaken for an idle connection.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::ServerLimits;
use crate::metrics::Metrics;

/// Milliseconds since the first call in this process (a monotonic clock that fits an atomic).
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// What one connection is doing, shared by its task, its requests and the listener's registry.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// When the connection last became idle (accept, or the end of a response).
    idle_since_ms: AtomicU64,
    /// When the first byte of a request not yet handed to the router arrived; 0 when none.
    first_byte_ms: AtomicU64,
    cut: AtomicBool,
    evict: AtomicBool,
    wake: Notify,
}

impl Activity {
    /// A fresh connection: idle since now.
    pub fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(now_ms()),
            first_byte_ms: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            evict: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// How long the connection has been idle, or `None` while a request is in flight or arriving.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 || self.first_byte_ms.load(Ordering::Acquire) != 0 {
            return None;
        }
        Some(Duration::from_millis(now_ms().saturating_sub(self.idle_since_ms.load(Ordering::Acquire))))
    }

    /// Asks the connection to close gracefully (the listener needs its slot).
    pub fn evict(&self) {
        self.evict.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.first_byte_ms.store(0, Ordering::Release);
        InFlight(self.clone())
    }

    fn saw_bytes(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && self.first_byte_ms.load(Ordering::Acquire) == 0 {
            self.first_byte_ms.store(now_ms(), Ordering::Release);
        }
    }

    /// What the connection's watchdog should do now.
    fn verdict(&self, limits: &ServerLimits) -> Verdict {
        if self.cut.load(Ordering::Acquire) {
            return Verdict::Drop("cut");
        }
        let now = now_ms();
        let first = self.first_byte_ms.load(Ordering::Acquire);
        if first != 0 && now.saturating_sub(first) > limits.header_read_timeout.as_millis() as u64 {
            return Verdict::Drop("header_timeout");
        }
        if self.evict.load(Ordering::Acquire) {
            return Verdict::Close("evicted");
        }
        match self.idle_for() {
            Some(idle) if idle > limits.idle_timeout => Verdict::Close("idle_timeout"),
            _ => Verdict::Keep,
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

enum Verdict {
    Keep,
    /// Graceful: now when idle, after the current response otherwise.
    Close(&'static str),
    /// Drop the connection at once.
    Drop(&'static str),
}

/// Marks a request in flight until dropped (with the response body, or earlier if the request fails).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.idle_since_ms.store(now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Put into every request's extensions: lets a handler cut its own connection.
#[derive(Clone, Debug)]
pub struct ConnectionHandle(Arc<Activity>);

impl ConnectionHandle {
    /// Drops the connection at once (the client stopped reading).
    pub fn cut(&self) {
        self.0.cut.store(true, Ordering::Release);
        self.0.wake.notify_one();
    }
}

/// The socket, noting when bytes of a new request arrive.
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.saw_bytes();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// A response body that keeps its request in flight until hyper has taken all of it.
struct Guarded {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves one connection until it ends, is closed by a limit, or the server stops.
/// `shutdown` asks for a graceful close; `abort` (after the shutdown grace) drops it.
pub async fn serve(
    tcp: TcpStream,
    router: Router,
    limits: Arc<ServerLimits>,
    activity: Arc<Activity>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    abort: CancellationToken,
) {
    let io = TokioIo::new(Watched { tcp, activity: activity.clone() });
    let on_request = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let in_flight = on_request.request_started();
        request.extensions_mut().insert(ConnectionHandle(on_request.clone()));
        let call = router.clone().oneshot(request);
        async move {
            let response = match call.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| Guarded { body, _in_flight: in_flight }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own header timer starts whenever the connection waits for a request, so it would also end
    // idle keep-alive connections: it is only a backstop here, behind the watchdog below.
    builder.timer(TokioTimer::new()).header_read_timeout(limits.idle_timeout + limits.header_read_timeout);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "client connection ended with an error");
                }
                return;
            }
            () = activity.wake.notified() => {}
            () = tokio::time::sleep(tick) => {}
            () = shutdown.cancelled(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
                continue;
            }
            () = abort.cancelled() => return,
        }
        match activity.verdict(&limits) {
            Verdict::Keep => {}
            Verdict::Close(reason) => {
                if !closing {
                    Metrics::count(&metrics.connections_closed, reason, 1);
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            Verdict::Drop(reason) => {
                Metrics::count(&metrics.connections_closed, reason, 1);
                tracing::debug!(reason, "dropping a client connection");
                return;
            }
        }
    }
}
