//! Test harness: a scripted upstream (exact bytes and timing, for transport behaviour) and a bridge
//! running in process on 127.0.0.1:0 with the in-memory store.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bridge_core::{AppState, Config, Settings, UpstreamAuth};
use tokio::sync::oneshot;

/// What the scripted upstream answers to one request.
#[derive(Clone)]
pub enum Reply {
    /// SSE: each part is sent after its delay, as its own chunk.
    Sse(Vec<(Duration, Bytes)>),
    /// A plain response.
    Status { status: u16, headers: Vec<(&'static str, String)>, body: String },
    /// Headers, then nothing for this long.
    StallHeaders(Duration),
}

/// One request the upstream received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
pub struct UpstreamState {
    pub replies: Mutex<VecDeque<Reply>>,
    pub seen: Mutex<Vec<Seen>>,
    /// When each SSE part was handed to the socket: (request index, part index, instant).
    pub sent_at: Mutex<Vec<(usize, usize, Instant)>>,
    /// SSE streams that ran to their last part.
    pub finished: Mutex<usize>,
}

pub struct ScriptedUpstream {
    pub addr: SocketAddr,
    pub state: Arc<UpstreamState>,
}

impl ScriptedUpstream {
    pub async fn start() -> Self {
        let state = Arc::new(UpstreamState::default());
        let app = axum::Router::new().fallback(answer).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        self.state.replies.lock().unwrap().push_back(reply);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn answer(
    State(state): State<Arc<UpstreamState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // An HTTP-only upstream, as the scripted replies are HTTP: a WebSocket upgrade gets 426 (the bridge
    // then serves this upstream over HTTP) and is neither recorded nor answered from the script.
    if headers.get("upgrade").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket")) {
        return StatusCode::UPGRADE_REQUIRED.into_response();
    }
    let index = {
        let mut seen = state.seen.lock().unwrap();
        seen.push(Seen { path: uri.path().to_owned(), headers, body });
        seen.len() - 1
    };
    let reply =
        state.replies.lock().unwrap().pop_front().unwrap_or_else(|| Reply::Sse(sse_reply("default", 10, Some(4))));
    match reply {
        Reply::Status { status, headers, body } => {
            let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (k, v) in headers {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
        Reply::StallHeaders(d) => {
            let stream = futures_util::stream::once(async move {
                tokio::time::sleep(d).await;
                Ok::<_, std::convert::Infallible>(Bytes::new())
            });
            sse_response(Body::from_stream(stream))
        }
        Reply::Sse(parts) => {
            let st = state;
            let n = parts.len();
            let stream =
                futures_util::stream::unfold((parts.into_iter().enumerate(), st), move |(mut it, st)| async move {
                    let (i, (delay, bytes)) = it.next()?;
                    tokio::time::sleep(delay).await;
                    st.sent_at.lock().unwrap().push((index, i, Instant::now()));
                    if i + 1 == n {
                        *st.finished.lock().unwrap() += 1;
                    }
                    Some((Ok::<_, std::convert::Infallible>(bytes), (it, st)))
                });
            sse_response(Body::from_stream(stream))
        }
    }
}

fn sse_response(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
    r.headers_mut().insert("x-request-id", "up-123".parse().unwrap());
    r
}

/// One SSE event in the Responses shape.
pub fn ev(kind: &str, data: serde_json::Value) -> Bytes {
    let mut data = data;
    data["type"] = serde_json::Value::from(kind);
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

/// A full text reply: created, a delta, item done, completed with usage (cached omitted when `cached` is None).
pub fn sse_reply(text: &str, input_tokens: u64, cached: Option<u64>) -> Vec<(Duration, Bytes)> {
    let mut details = serde_json::json!({});
    if let Some(c) = cached {
        details["cached_tokens"] = c.into();
    }
    let item = serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]});
    let usage = serde_json::json!({"input_tokens": input_tokens, "input_tokens_details": details, "output_tokens": 3, "total_tokens": input_tokens + 3});
    [
        ev(
            "response.created",
            serde_json::json!({"response": {"id": "resp_1", "status": "in_progress", "output": []}}),
        ),
        ev(
            "response.output_item.added",
            serde_json::json!({"output_index": 0, "item": {"id": "msg_1", "type": "message"}}),
        ),
        ev("response.output_text.delta", serde_json::json!({"item_id": "msg_1", "delta": text})),
        ev("response.output_item.done", serde_json::json!({"output_index": 0, "item": item})),
        ev(
            "response.completed",
            serde_json::json!({"response": {"id": "resp_1", "status": "completed", "output": [], "usage": usage}}),
        ),
    ]
    .into_iter()
    .map(|b| (Duration::ZERO, b))
    .collect()
}

/// A bridge in process.
pub struct TestBridge {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    pub done: Option<tokio::task::JoinHandle<()>>,
    /// The data directory when the test did not name one (removed on drop).
    _data: Option<tempfile::TempDir>,
}

pub struct Options {
    pub access_tokens: Option<String>,
    pub auth: UpstreamAuth,
    pub file: String,
    /// Store URL (default `memory://`).
    pub store: Option<String>,
    /// Data directory (journal files); a fresh temporary directory when `None`.
    pub data_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self { access_tokens: None, auth: UpstreamAuth::Passthrough, file: String::new(), store: None, data_dir: None }
    }
}

impl TestBridge {
    pub async fn start(upstream: &str) -> Self {
        Self::with(upstream, Options::default()).await
    }

    pub async fn with(upstream: &str, options: Options) -> Self {
        let temp = options.data_dir.is_none().then(|| tempfile::tempdir().unwrap());
        let data_dir = options.data_dir.clone().or_else(|| temp.as_ref().map(|t| t.path().to_owned()));
        let settings = Settings {
            listen: Some("127.0.0.1:0".into()),
            upstream: Some(upstream.to_owned()),
            upstream_auth: Some(options.auth),
            store: Some(options.store.unwrap_or_else(|| "memory://".into())),
            access_tokens: options.access_tokens,
            env_api_key: Some("sk-bridge-owned-key".into()),
            data_dir,
        };
        let config =
            Config::resolve(settings, Some(&options.file), &PathBuf::from("test.toml"), std::env::temp_dir()).unwrap();
        let server = bridge_core::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let state = server.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self { addr, state, stop: Some(tx), done: Some(done), _data: temp }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until every stream task finished and every queued store write is done.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.state.tasks.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.state.recorder.flush().await;
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            tokio::time::timeout(Duration::from_secs(10), done).await.unwrap().unwrap();
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Loads the `body` of a capture file from fixtures/captures as compact JSON bytes.
pub fn capture_body(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/captures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::to_vec(&v["body"]).unwrap()
}

/// Splits an SSE body into its events' raw blocks.
pub fn split_events(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body).split_inclusive("\n\n").map(str::to_owned).collect()
}
