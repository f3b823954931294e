//! Micro-benchmarks of the request hot path, the CPU work one exchange does outside I/O (issue 13):
//! parse → identify → shape → key + bytes → fingerprint, each step alone and `whole` end to end, for three
//! bodies, so a change to one step is measured without the noise of sockets, an upstream and a store.
//!
//! Run (release profile):
//!
//! ```sh
//! cargo bench -p bridge-core --bench hot_path                # everything
//! cargo bench -p bridge-core --bench hot_path -- kib_0038     # one size (a regex over `size::step`)
//! ```
//!
//! Bodies, one module each (`kib_0004`, `kib_0038`, `kib_1024`), built once at start from
//! `fixtures/captures/` and re-serialised compactly like the tests' `capture_body`:
//! - `kib_0038`: the Codex CLI capture `codex-exec__s1-t3-resume-tool__r02` (a resumed turn with a tool
//!   call: 13 input items, the first two the developer messages Codex sends, 10 tools,
//!   `prompt_cache_key` set; 40,004 bytes);
//! - `kib_0004`: the same capture trimmed: its top-level fields, its first tool and its conversation items
//!   (those after the developer messages) in order while the body stays within 4 KiB (4,000 bytes);
//! - `kib_1024`: the same capture with its conversation items appended again, in order, while the body
//!   stays within 1 MiB (1,048,396 bytes, 4,262 input items; same developer messages, tools and fields).
//!
//! Steps: `parse` is `ResponsesRequest::parse`; `identify_first` and `identify_repeat` are
//! `IdentityEngine::resolve` over a `MemoryStore` for a session's first request (a fresh engine) and for a
//! later turn of a session it already knows; `shape` is `shape::for_upstream` with the Codex runtime
//! (`[upstream.codex] enabled = true`, passthrough instructions: `codex::start` then touches neither the
//! network nor a tokio runtime); `key_bytes` is `identity::apply_key` then `to_bytes` (always serialised,
//! although the pipeline forwards the client's own bytes when nothing changed); `fingerprint` is
//! `Fingerprint::of` (the tracker's digest of the sent items); `whole` is parse → identify (repeat turn) →
//! shape → key → `SentRequest::new` → fingerprint, as `pipeline.rs` orders them. Throughput is in body
//! bytes, so MB/s compares across sizes. divan drops each output after its sample, so freeing is not timed.
//!
//! divan rather than criterion: one small dependency tree that builds in seconds, `args` for the three
//! sizes and a bytes counter per benchmark, and a plain filter CLI for running one case under `perf`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bridge_core::codex::CodexRuntime;
use bridge_core::identity::{self, Fingerprint, Identity, IdentityEngine};
use bridge_core::sent::SentRequest;
use bridge_core::{Config, Settings, UpstreamAuth};
use bridge_store::MemoryStore;
use bridge_types::ResponsesRequest;
use bytes::Bytes;
use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use serde_json::Value;

const CAPTURE: &str = "codex-exec__s1-t3-resume-tool__r02__POST-v1-responses.json";
const SMALL: usize = 4 * 1024;
const LARGE: usize = 1024 * 1024;

fn main() {
    // Build the bodies before the first sample, and show what was built.
    for size in SIZES {
        let case = case(size);
        eprintln!("{size}: {} bytes, {} input items", case.body.len(), case.request.input_items().unwrap().len());
    }
    divan::main();
}

#[derive(Clone, Copy, Debug)]
enum Size {
    K4,
    K38,
    M1,
}

const SIZES: [Size; 3] = [Size::K4, Size::K38, Size::M1];

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Size::K4 => "4KiB",
            Size::K38 => "38KiB",
            Size::M1 => "1MiB",
        })
    }
}

/// What every benchmark of one body size reads.
struct Case {
    body: Bytes,
    headers: HeaderMap,
    /// `body` parsed.
    request: ResponsesRequest,
    /// `request` shaped for the upstream.
    shaped: ResponsesRequest,
    /// The identity of a repeat turn.
    identity: Identity,
    /// An engine that has already seen this session (repeat turns).
    engine: IdentityEngine,
}

/// The bridge's configuration and Codex runtime, shared by every case.
struct Env {
    config: Config,
    codex: Arc<CodexRuntime>,
    rt: tokio::runtime::Runtime,
}

static ENV: LazyLock<Env> = LazyLock::new(|| {
    let settings = Settings {
        listen: Some("127.0.0.1:0".into()),
        upstream: Some("http://127.0.0.1:9".into()),
        upstream_auth: Some(UpstreamAuth::Passthrough),
        store: Some("memory://".into()),
        access_tokens: None,
        env_api_key: None,
        data_dir: Some(std::env::temp_dir()),
    };
    let file = "[upstream.codex]\nenabled = true\n";
    let config = Config::resolve(settings, Some(file), &PathBuf::from("bench.toml"), std::env::temp_dir()).unwrap();
    let codex = bridge_core::codex::start(&config).expect("Codex shaping is on");
    assert!(codex.instructions.is_none(), "passthrough instructions: no instruction cache");
    // `resolve` is async over the store; `MemoryStore` never waits, so a current-thread runtime only polls.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    Env { config, codex, rt }
});

static CASES: LazyLock<[Case; 3]> = LazyLock::new(|| {
    let (capture, headers) = capture();
    [
        build(&trimmed(&capture, SMALL), headers.clone()),
        build(&capture, headers.clone()),
        build(&repeated(&capture, LARGE), headers),
    ]
});

fn case(size: Size) -> &'static Case {
    &CASES[size as usize]
}

/// The capture's body and its request headers.
fn capture() -> (Value, HeaderMap) {
    let path = format!("{}/../../fixtures/captures/{CAPTURE}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let mut headers = HeaderMap::new();
    if let Some(list) = v["headers"].as_object() {
        for (k, val) in list {
            if let (Ok(name), Some(Ok(value))) =
                (HeaderName::from_bytes(k.as_bytes()), val.as_str().map(HeaderValue::from_str))
            {
                headers.insert(name, value);
            }
        }
    }
    (v["body"].take(), headers)
}

/// Input items of the capture that are not developer (or system) messages: the conversation.
fn conversation(body: &Value) -> Vec<Value> {
    let items = body["input"].as_array().unwrap();
    items.iter().filter(|i| !matches!(i["role"].as_str(), Some("developer" | "system"))).cloned().collect()
}

fn compact_len(v: &Value) -> usize {
    serde_json::to_vec(v).unwrap().len()
}

/// The capture's top-level fields, its first tool, then its conversation items while the body fits `limit`.
fn trimmed(capture: &Value, limit: usize) -> Value {
    let mut body = capture.clone();
    let first_tool = capture["tools"][0].clone();
    body["tools"] = Value::Array(vec![first_tool]);
    body["input"] = Value::Array(Vec::new());
    for item in conversation(capture) {
        let mut next = body.clone();
        next["input"].as_array_mut().unwrap().push(item);
        if compact_len(&next) > limit {
            break;
        }
        body = next;
    }
    body
}

/// The capture with its conversation items appended again, in order, while the body stays within `limit`.
fn repeated(capture: &Value, limit: usize) -> Value {
    let mut body = capture.clone();
    let cycle = conversation(capture);
    let mut len = compact_len(&body);
    let input = body["input"].as_array_mut().unwrap();
    for item in cycle.iter().cycle() {
        let add = compact_len(item) + 1;
        if len + add > limit {
            break;
        }
        len += add;
        input.push(item.clone());
    }
    body
}

fn build(body: &Value, headers: HeaderMap) -> Case {
    let env = &*ENV;
    let body = Bytes::from(serde_json::to_vec(body).unwrap());
    let request = ResponsesRequest::parse(&body).unwrap();
    let engine = engine();
    // The first turn files the session; the benchmarks' repeat turns find it.
    env.rt.block_on(engine.resolve(&request, &headers, Some("codex_exec"), 0)).unwrap();
    let identity = env.rt.block_on(engine.resolve(&request, &headers, Some("codex_exec"), 0)).unwrap();
    let mut shaped = request.clone();
    bridge_core::shape::for_upstream(&mut shaped, env.config.upstream.force_stream, Some(&env.codex)).unwrap();
    Case { body, headers, request, shaped, identity, engine }
}

fn engine() -> IdentityEngine {
    IdentityEngine::new(ENV.config.cache.clone(), Arc::new(MemoryStore::default()))
}

fn bytes(case: &Case) -> BytesCount {
    BytesCount::new(case.body.len())
}

/// One module per body size, so a divan filter selects a size (`kib_0038::whole`); the steps are below.
macro_rules! sizes {
    ($($module:ident => $size:expr),* $(,)?) => {$(
        mod $module {
            use divan::Bencher;

            #[divan::bench]
            fn parse(b: Bencher<'_, '_>) {
                super::parse(b, $size);
            }
            #[divan::bench]
            fn identify_first(b: Bencher<'_, '_>) {
                super::identify_first(b, $size);
            }
            #[divan::bench]
            fn identify_repeat(b: Bencher<'_, '_>) {
                super::identify_repeat(b, $size);
            }
            #[divan::bench]
            fn shape(b: Bencher<'_, '_>) {
                super::shape(b, $size);
            }
            #[divan::bench]
            fn key_bytes(b: Bencher<'_, '_>) {
                super::key_bytes(b, $size);
            }
            #[divan::bench]
            fn fingerprint(b: Bencher<'_, '_>) {
                super::fingerprint(b, $size);
            }
            #[divan::bench]
            fn fingerprint_value_tree(b: Bencher<'_, '_>) {
                super::fingerprint_value_tree(b, $size);
            }
            #[divan::bench]
            fn whole(b: Bencher<'_, '_>) {
                super::whole(b, $size);
            }
        }
    )*};
}

sizes!(kib_0004 => super::Size::K4, kib_0038 => super::Size::K38, kib_1024 => super::Size::M1);

fn parse(bencher: Bencher<'_, '_>, size: Size) {
    let case = case(size);
    bencher.counter(bytes(case)).bench_local(|| ResponsesRequest::parse(black_box(&case.body)).unwrap());
}

fn identify_first(bencher: Bencher<'_, '_>, size: Size) {
    let (case, env) = (case(size), &*ENV);
    bencher.counter(bytes(case)).with_inputs(engine).bench_local_values(|engine| {
        let found = env.rt.block_on(engine.resolve(black_box(&case.request), &case.headers, Some("codex_exec"), 0));
        (found.unwrap(), engine)
    });
}

fn identify_repeat(bencher: Bencher<'_, '_>, size: Size) {
    let (case, env) = (case(size), &*ENV);
    bencher.counter(bytes(case)).bench_local(|| {
        env.rt.block_on(case.engine.resolve(black_box(&case.request), &case.headers, Some("codex_exec"), 0)).unwrap()
    });
}

fn shape(bencher: Bencher<'_, '_>, size: Size) {
    let (case, env) = (case(size), &*ENV);
    bencher.counter(bytes(case)).with_inputs(|| case.request.clone()).bench_local_values(|mut request| {
        bridge_core::shape::for_upstream(&mut request, env.config.upstream.force_stream, Some(&env.codex)).unwrap();
        request
    });
}

fn key_bytes(bencher: Bencher<'_, '_>, size: Size) {
    let case = case(size);
    bencher.counter(bytes(case)).with_inputs(|| case.shaped.clone()).bench_local_values(|mut request| {
        identity::apply_key(&mut request, &case.identity).unwrap();
        (request.to_bytes(), request)
    });
}

fn fingerprint(bencher: Bencher<'_, '_>, size: Size) {
    let case = case(size);
    bencher.counter(bytes(case)).bench_local(|| Fingerprint::of(black_box(&case.shaped)));
}

/// The item digests as the fingerprint computed them before `identity::canonical`: each item decoded into a
/// `serde_json::Value`, written with sorted keys (the `id` left out), hashed. Kept here only so that one run
/// measures the two methods side by side (their bytes are equal: `identity::canonical`'s property test).
fn fingerprint_value_tree(bencher: Bencher<'_, '_>, size: Size) {
    fn write(value: &serde_json::Value, skip: Option<&str>, out: &mut Vec<u8>) {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().filter(|(k, _)| Some(k.as_str()) != skip).collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push(b'{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, k).unwrap();
                    out.push(b':');
                    write(v, None, out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(v, None, out);
                }
                out.push(b']');
            }
            scalar => serde_json::to_writer(&mut *out, scalar).unwrap(),
        }
    }
    let case = case(size);
    bencher.counter(bytes(case)).bench_local(|| {
        let request = black_box(&case.shaped);
        let mut out = Vec::new();
        let mut digests = Vec::new();
        for name in ["instructions", "tools"] {
            if let Some(raw) = request.raw(name) {
                let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
                out.clear();
                write(&value, None, &mut out);
                digests.push(blake3::hash(&out));
            }
        }
        for raw in request.input_items().unwrap_or(&[]) {
            let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
            out.clear();
            write(&value, Some("id"), &mut out);
            digests.push(blake3::hash(&out));
        }
        digests
    });
}

fn whole(bencher: Bencher<'_, '_>, size: Size) {
    let (case, env) = (case(size), &*ENV);
    bencher.counter(bytes(case)).bench_local(|| {
        let original = black_box(&case.body).clone();
        let mut request = ResponsesRequest::parse(&original).unwrap();
        let identity = env.rt.block_on(case.engine.resolve(&request, &case.headers, Some("codex_exec"), 0)).unwrap();
        bridge_core::shape::for_upstream(&mut request, env.config.upstream.force_stream, Some(&env.codex)).unwrap();
        identity::apply_key(&mut request, &identity).unwrap();
        let (sent, bytes) = SentRequest::new(request, original);
        let fp = Fingerprint::of(&sent.request);
        (sent, bytes, fp, identity)
    });
}
