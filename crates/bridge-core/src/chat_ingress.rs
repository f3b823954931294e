//! The HTTP Chat Completions transport (`POST /v1/chat/completions`, alias `POST /chat/completions`): the
//! ingress adapter (the body read under the same limits as Responses, translated once into a Responses
//! request by [`crate::chat::translate_in`], the session's kept reasoning items spliced in by
//! [`crate::chat::continuity`]) and the egress (a [`crate::chat::translate_out::ChatSink`]: chunks for a
//! streaming client, one `chat.completion` otherwise). The phases between are [`crate::pipeline`]'s, the
//! same as for `/v1/responses`; usage rows carry the Chat route, so stats tell the ingress API apart.
//!
//! Invariants: the upstream is always asked for a stream; a refused field is a 400 naming it before any
//! upstream call; the replay is scoped by the session hint and the upstream account, and skipped without
//! a session hint.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Extension, MatchedPath, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bridge_types::{ApiError, ErrorKind, ResponsesRequest};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::chat::continuity::{Digest, ReplayStore, Scope};
use crate::chat::translate_in::{self, Translated};
use crate::chat::translate_out::{self, ChatSink, Egress};
use crate::connection::ConnectionHandle;
use crate::errors::{BridgeError, json_response};
use crate::identity::Hints;
use crate::pipeline::{Ingress, Reply};
use crate::pump::SseSink;
use crate::state::AppState;
use crate::upstream::copy_response_headers;

/// Bodies larger than this are translated on the blocking pool.
const TRANSLATE_OFF_WORKER_BYTES: usize = 256 * 1024;

/// What the egress needs from the translation.
struct ChatContext {
    client_streams: bool,
    include_usage: bool,
    model: String,
    tool_names: std::collections::HashMap<String, String>,
    replay: Option<(Arc<ReplayStore>, Scope, Digest)>,
}

impl ChatContext {
    fn sink_request(self) -> translate_out::Request {
        translate_out::Request { model: self.model, tool_names: self.tool_names, replay: self.replay }
    }
}

/// `POST /v1/chat/completions` and `POST /chat/completions`.
pub async fn completions(
    State(state): State<AppState>,
    path: Option<MatchedPath>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let route: &'static str = match path.as_ref().map(MatchedPath::as_str) {
        Some("/chat/completions") => "/chat/completions",
        _ => "/v1/chat/completions",
    };
    let connection = connection.map(|Extension(c)| c);
    let ingress = ingress(&state, route, &headers, body, started).await;
    crate::proxy::answer(&state, route, ingress, |reply, chat| egress(&state, reply, chat, connection)).await
}

/// Reads and translates the body, then splices in the session's kept reasoning items.
async fn ingress<'a>(
    state: &AppState,
    route: &'static str,
    headers: &'a HeaderMap,
    body: Body,
    started: Instant,
) -> Result<(Ingress<'a>, ChatContext), BridgeError> {
    let (chat_body, body_permit) = crate::proxy::read_limited(state, headers, body).await?;
    let translated = if chat_body.len() > TRANSLATE_OFF_WORKER_BYTES {
        tokio::task::spawn_blocking(move || translate_in::translate(&chat_body))
            .await
            .map_err(|e| ApiError::new(500, ErrorKind::ServerError, format!("request translation stopped: {e}")))?
    } else {
        translate_in::translate(&chat_body)
    }
    .map_err(BridgeError::Api)?;
    let Translated { body, client_streams, include_usage, model, tool_names, anchors, notes } = translated;
    if !notes.is_empty() {
        tracing::debug!(notes = ?notes, "chat request translated with notes");
    }
    let original = Bytes::from(body);
    let mut request = ResponsesRequest::parse(&original).map_err(BridgeError::InvalidRequest)?;
    let scope = match &state.chat_replay {
        Some(store) => replay_scope(state, &request, headers).map(|scope| (store.clone(), scope)),
        None => None,
    };
    let mut replay = None;
    if let Some((store, scope)) = scope
        && let Some(mut items) = request.take_input_items()
    {
        let (inserted, input) = store.splice(&scope, &mut items, &anchors);
        request.set_input_items(items);
        tracing::debug!(inserted, "chat reasoning replay");
        replay = Some((store, scope, input));
    }
    let chat = ChatContext { client_streams, include_usage, model, tool_names, replay };
    Ok((
        Ingress {
            route,
            transport: crate::exchange::Transport::Http,
            headers,
            original,
            request,
            started,
            body_permit,
        },
        chat,
    ))
}

/// The replay scope: the request's own key or session hint under the upstream account; none without one.
fn replay_scope(state: &AppState, request: &ResponsesRequest, headers: &HeaderMap) -> Option<Scope> {
    let hints = Hints::extract(request, headers);
    let session = match (&hints.host_key, &hints.session) {
        (Some(key), _) => format!("key:{key}"),
        (None, Some(session)) => format!("session:{}", session.value),
        (None, None) => return None,
    };
    Some(Scope::new(&session, &state.upstream.account_marker(headers)))
}

/// The Chat egress: errors as they are (already OpenAI-shaped), a stream as chunks or one object.
async fn egress(state: &AppState, reply: Reply, chat: ChatContext, connection: Option<ConnectionHandle>) -> Response {
    let mut streaming = match reply {
        Reply::Whole { status, headers, body } => {
            let mut response = if (200..300).contains(&status) {
                // The upstream ignored `stream: true` and answered with one Responses object.
                match serde_json::from_slice::<Value>(&body) {
                    Ok(object) => {
                        let completion = translate_out::from_response_object(&object, chat.sink_request());
                        json_response(200, completion.to_string())
                    }
                    Err(e) => BridgeError::Api(crate::errors::bad_gateway(format!(
                        "upstream answered with a body that is not JSON: {e}"
                    )))
                    .into_response(),
                }
            } else {
                let mut r = json_response(status, String::new());
                *r.body_mut() = Body::from(body);
                r
            };
            copy_response_headers(&headers, response.headers_mut());
            return response;
        }
        Reply::Stream(streaming) => streaming,
    };
    let upstream_headers = std::mem::take(&mut streaming.headers);
    if chat.client_streams {
        let (tx, rx) = mpsc::channel(crate::proxy::CLIENT_QUEUE);
        let sse = SseSink { tx, stall: state.config.server.client_stall_timeout, connection, live: true };
        let include_usage = chat.include_usage;
        streaming.pump(ChatSink::new(Egress::Stream { sse, include_usage }, chat.sink_request()));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let mut response = Response::new(Body::from_stream(stream));
        copy_response_headers(&upstream_headers, response.headers_mut());
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return response;
    }
    let (done, wait) = oneshot::channel();
    streaming.pump(ChatSink::new(Egress::Whole(done), chat.sink_request()));
    match wait.await {
        Ok(Ok(completion)) => {
            let mut response = json_response(200, completion.to_string());
            copy_response_headers(&upstream_headers, response.headers_mut());
            response
        }
        Ok(Err(e)) => BridgeError::Api(e).into_response(),
        Err(_) => BridgeError::Api(ApiError::new(500, ErrorKind::ServerError, "chat aggregation stopped unexpectedly"))
            .into_response(),
    }
}
