//! The codex-bridge gateway: router, handlers, upstream client, stream pump, usage recorder and metrics.
//!
//! # Life of a request (`POST /v1/responses`, alias `POST /backend-api/codex/responses`)
//! [`router`] runs the access check ([`access`]) on every route except `/health`; [`proxy`] (the HTTP
//! transport) reads and parses the body once and hands it to [`pipeline`], which lists the phases in
//! order: begin the [`exchange`] → identify ([`identity`]) → shape ([`shape`], [`codex`], [`journal_hook`])
//! → upstream call ([`upstream`], [`credentials`]) → stream ([`pump`], into the transport's sink) →
//! finish (exactly once: usage row via [`recorder`], journal turn, [`tracker`]).
//!
//! Layers (no module imports one above it): [`clock`], [`errors`], [`metrics`], [`config`] →
//! [`store_guard`], [`recorder`], [`credentials`], [`codex`] → [`identity`], [`tracker`], [`upstream`],
//! [`shape`], [`sent`], [`journal_hook`] → [`exchange`] → [`pump`] → [`state`] → [`pipeline`] →
//! [`proxy`], [`models`], [`access`], [`dashboard`], [`router`], [`server`]. `tests/it/layers.rs` checks it.
//!
//! Invariants: nothing panics on client input; every error is OpenAI-shaped JSON; secrets never reach logs
//! or error messages.

pub mod access;
pub mod clock;
pub mod codex;
pub mod config;
pub mod connection;
pub mod credentials;
pub mod dashboard;
pub mod errors;
pub mod exchange;
pub mod identity;
pub mod journal_hook;
pub mod listener;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod proxy;
pub mod pump;
pub mod recorder;
pub mod router;
pub mod sent;
pub mod server;
pub mod shape;
pub mod state;
pub mod store_guard;
pub mod tracker;
pub mod upstream;

pub use config::{Config, ConfigError, Settings, UpstreamAuth};
pub use server::{BoundServer, ServeError, bind};
pub use state::AppState;
