//! [`WsSink`]: the pump's egress for a WebSocket client. Each SSE event's `data` JSON becomes one text
//! frame, as the Codex backend sends them; the frames go to the socket's task through a bounded queue.
//!
//! Invariants:
//! - Every hand-off waits at most the client stall timeout; a socket that leaves frames unread longer is
//!   cut ([`CancellationToken`] the socket task obeys) and the pump goes on draining the upstream, so the
//!   turn is still recorded.
//! - Only `response.output_item.done`, `response.created` and `response.completed` are decoded (the items
//!   the response added, else the completed response's `output`; its id); deltas pass as text.
//! - The socket task always learns how the turn ended: [`Outbound::Ended`], even when the stream broke, or
//!   [`Outbound::Close`] when the upstream socket closed with a code the client sees as it is
//!   ([`crate::upstream_ws::PROPAGATED_CLOSE_CODES`]).

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use bridge_sse::SseDecoder;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::pump::{Sink, StreamFailure, Tap, Terminal};

/// What a turn sends its socket task.
pub enum Outbound {
    /// Response headers, before the first event (turn state, model, rate limits, bridge notes).
    Head(axum::http::HeaderMap),
    /// Text frames to write, in order.
    Frames(Vec<Utf8Bytes>),
    /// The turn is over; `completed` when its response completed.
    Ended { completed: Option<Completed> },
    /// Close the socket with this code: the upstream closed its socket with 1009/1012/1013, which a
    /// WebSocket client sees as it is instead of a JSON error (the turn is over).
    Close { code: u16, reason: String },
}

/// A completed response: its id and the items it added (the socket's next anchor).
pub struct Completed {
    pub id: String,
    pub output: Vec<Box<RawValue>>,
}

/// A bounded hand-off to the socket task: false (and the socket cut) when it did not take `item` within
/// `stall`, false when it is gone.
pub async fn hand_off(tx: &mpsc::Sender<Outbound>, item: Outbound, stall: Duration, cut: &CancellationToken) -> bool {
    match tokio::time::timeout(stall, tx.send(item)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            cut.cancel();
            false
        }
    }
}

/// A WebSocket client's sink (module docs).
pub struct WsSink {
    tx: mpsc::Sender<Outbound>,
    stall: Duration,
    cut: CancellationToken,
    live: bool,
    decoder: SseDecoder,
    response_id: Option<String>,
    items: Vec<Box<RawValue>>,
}

impl WsSink {
    /// A sink writing to the socket task behind `tx`.
    pub fn new(tx: mpsc::Sender<Outbound>, stall: Duration, cut: CancellationToken) -> Self {
        Self { tx, stall, cut, live: true, decoder: SseDecoder::new(), response_id: None, items: Vec::new() }
    }

    /// Splits raw SSE bytes (whole events) into text frames, noting output items and the response id.
    fn frames(&mut self, bytes: &[u8]) -> Vec<Utf8Bytes> {
        self.decoder.feed(bytes);
        let mut frames = Vec::new();
        while let Ok(Some(event)) = self.decoder.next_event() {
            if event.data.is_empty() {
                continue;
            }
            let kind = event.event.as_deref();
            let is =
                |name: &str| kind.map_or_else(|| event.data.contains(&format!("\"type\":\"{name}\"")), |k| k == name);
            if is("response.output_item.done") {
                if let Ok(done) = serde_json::from_str::<ItemDone<'_>>(&event.data) {
                    self.items.push(done.item.to_owned());
                }
            } else if (is("response.completed") || is("response.created"))
                && let Ok(e) = serde_json::from_str::<WithResponse<'_>>(&event.data)
            {
                if let Some(id) = e.response.id {
                    self.response_id = Some(id);
                }
                // A stream without `response.output_item.done` events: the terminal response lists them.
                if self.items.is_empty() {
                    self.items = e.response.output.into_iter().map(ToOwned::to_owned).collect();
                }
            }
            frames.push(Utf8Bytes::from(event.data));
        }
        frames
    }
}

#[derive(Deserialize)]
struct ItemDone<'a> {
    #[serde(borrow)]
    item: &'a RawValue,
}

#[derive(Deserialize)]
struct WithResponse<'a> {
    #[serde(borrow)]
    response: ResponseIdAndOutput<'a>,
}

#[derive(Deserialize)]
struct ResponseIdAndOutput<'a> {
    id: Option<String>,
    #[serde(borrow, default)]
    output: Vec<&'a RawValue>,
}

impl Sink for WsSink {
    fn aggregates(&self) -> bool {
        false
    }

    async fn deliver(&mut self, bytes: Bytes, request_id: &str, _metrics: &Metrics) -> bool {
        if !self.live {
            return false;
        }
        let frames = self.frames(&bytes);
        if frames.is_empty() {
            return true;
        }
        if hand_off(&self.tx, Outbound::Frames(frames), self.stall, &self.cut).await {
            return true;
        }
        // The socket task counts and logs a stalled client (its own write timed out first or at the same time).
        tracing::debug!(request_id, "WebSocket client gone or stalled; draining the upstream stream");
        self.live = false;
        false
    }

    async fn end(self, tap: &mut Tap, failure: Option<StreamFailure>) -> u16 {
        let (status, completed) = match tap.terminal {
            Some(Terminal::Completed) => (200, self.response_id.map(|id| Completed { id, output: self.items })),
            Some(Terminal::Failed) => (502, None),
            Some(Terminal::Incomplete) => (200, None),
            None => {
                let err = failure.as_ref().map_or_else(
                    || crate::errors::bad_gateway("upstream closed the stream before response.completed"),
                    StreamFailure::to_api_error,
                );
                if let (true, Some(code)) = (self.live, failure.as_ref().and_then(StreamFailure::client_close_code)) {
                    // The upstream socket closed with 1009/1012/1013: so does the client's (the socket task
                    // ends with it, so there is nothing more to hand over).
                    let reason = crate::upstream_ws::close_reason(code).to_owned();
                    hand_off(&self.tx, Outbound::Close { code, reason }, self.stall, &self.cut).await;
                    return err.status;
                }
                if self.live {
                    let frame = super::frames::wrapped_error(&err, serde_json::Map::new());
                    hand_off(&self.tx, Outbound::Frames(vec![Utf8Bytes::from(frame)]), self.stall, &self.cut).await;
                }
                (err.status, None)
            }
        };
        if self.live {
            hand_off(&self.tx, Outbound::Ended { completed }, self.stall, &self.cut).await;
        }
        status
    }
}
