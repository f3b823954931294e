//! `GET /api/live`: new tracked turns as Server-Sent Events (`event: turn`, data = the turn row plus its
//! session), with a keep-alive comment every 15 s.
//!
//! Invariants: each subscriber reads its own cursor into the tracker's bounded ring
//! ([`crate::tracker::LIVE_BUFFER`]); the tracker never waits for a subscriber. A subscriber that falls
//! behind the ring (a stalled browser, a full socket) gets one `event: lagged` and its stream ends, so it
//! holds no memory beyond the ring; the page then reloads its data and reconnects.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::tracker::LiveTurn;

/// The SSE response for one subscriber.
pub fn events(rx: Receiver<Arc<LiveTurn>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Ok(turn) => {
                let data = serde_json::to_string(&*turn).unwrap_or_default();
                Some((Ok(Event::default().event("turn").data(data)), Some(rx)))
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "a live dashboard subscriber fell behind and was dropped");
                Some((Ok(Event::default().event("lagged").data(missed.to_string())), None))
            }
            Err(RecvError::Closed) => None,
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    fn turn(n: i64) -> Arc<LiveTurn> {
        let row = serde_json::from_value(serde_json::json!({"ts_ms": n, "request_id": format!("r{n}"), "key": "k",
            "key_kind": "session", "model": null, "client": null, "items": 1, "classification": "new",
            "input_tokens": null, "cached_tokens": null, "outcome": null}))
        .unwrap();
        Arc::new(LiveTurn { session: "s".into(), row })
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_dropped_and_the_sender_never_waits() {
        let (tx, rx) = tokio::sync::broadcast::channel(4);
        let mut body = axum::response::IntoResponse::into_response(events(rx)).into_body().into_data_stream();
        // The sender outruns the subscriber by far more than the ring holds; every send returns at once.
        for n in 0..100 {
            tx.send(turn(n)).unwrap();
        }
        let mut text = String::new();
        while let Some(Ok(chunk)) = tokio::time::timeout(Duration::from_secs(5), body.next()).await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(text.starts_with("event: lagged\ndata: 96\n"), "{text}");
        assert!(!text.contains("event: turn"), "{text}");
    }

    #[tokio::test]
    async fn turns_arrive_in_order() {
        let (tx, rx) = tokio::sync::broadcast::channel(4);
        let mut body = axum::response::IntoResponse::into_response(events(rx)).into_body().into_data_stream();
        tx.send(turn(1)).unwrap();
        tx.send(turn(2)).unwrap();
        let mut text = String::new();
        while text.matches("event: turn").count() < 2 {
            let chunk = tokio::time::timeout(Duration::from_secs(5), body.next()).await.unwrap().unwrap().unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let first = text.find("\"request_id\":\"r1\"").unwrap();
        assert!(first < text.find("\"request_id\":\"r2\"").unwrap(), "{text}");
        assert!(text.contains("\"session\":\"s\""), "{text}");
    }
}
