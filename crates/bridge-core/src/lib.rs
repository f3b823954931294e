//! The codex-bridge gateway: router, handlers, upstream client, stream pump, usage recorder and metrics.
//!
//! # Life of a request (`POST /v1/responses`, alias `POST /backend-api/codex/responses`)
//! 1. [`router`]: the access check ([`access`]) runs on every route except `/health`.
//! 2. [`proxy::responses`] reads the body under the size limit (413) and parses it into a
//!    [`bridge_types::ResponsesRequest`] (400 naming the JSON path).
//! 3. [`identity`] resolves the request's cache identity (`prompt_cache_key` and upstream affinity headers).
//!    The request is shaped for the upstream ([`shape`]): only what must change changes; an unchanged body is
//!    forwarded as the client's original bytes.
//! 4. [`upstream::Upstream::send`] forwards it with the upstream credential and retries connect errors,
//!    429 with `Retry-After` and 5xx, all before the first byte reaches the client.
//! 5. [`pump`] reads the SSE stream event by event (idle timeout per read, no total timeout), forwards each
//!    event's raw bytes to the client as soon as it is complete, taps usage from `response.completed`, and
//!    keeps reading to the end even when the client went away.
//! 6. [`tracker`] classifies the finished request against its session and explains its cached tokens.
//! 7. [`recorder`] writes the usage row to the store off the hot path (bounded channel), and
//!    [`journal_hook`] hands the finished turn to bridge-journal (rollout, history, project state); its
//!    bounded, cached git drift check is the one journal step before the upstream call.
//!
//! Invariants: nothing panics on client input; every error is OpenAI-shaped JSON; secrets never reach logs
//! or error messages.

pub mod access;
pub mod codex;
pub mod config;
pub mod connection;
pub mod errors;
pub mod identity;
pub mod journal_hook;
pub mod listener;
pub mod metrics;
pub mod models;
pub mod proxy;
pub mod pump;
pub mod recorder;
pub mod router;
pub mod server;
pub mod shape;
pub mod state;
pub mod store_guard;
pub mod tracker;
pub mod upstream;

pub use config::{Config, ConfigError, Settings, UpstreamAuth};
pub use server::{BoundServer, ServeError, bind};
pub use state::AppState;
