//! The codex-bridge gateway: router, handlers, upstream client, stream pump, usage recorder and metrics.
//!
//! # Life of a request (`POST /v1/responses`, alias `POST /backend-api/codex/responses`; Chat Completions
//! enters through [`chat_ingress`] and [`chat`] and then takes the same path)
//! [`router`] runs the access check ([`access`]) on every route except `/health`; [`proxy`] (the HTTP
//! transport) reads and parses the body once and hands it to [`pipeline`], which lists the phases in
//! order: begin the [`exchange`] → identify ([`identity`]) → shape ([`shape`], [`codex`], [`journal_hook`])
//! → upstream call ([`upstream`], [`credentials`]) → stream ([`pump`], into the transport's sink) →
//! finish (exactly once: usage row via [`recorder`], journal turn, [`tracker`]).
//!
//! WebSocket clients (`GET` with `Upgrade: websocket` on the same routes) enter through [`ws_ingress`], which
//! turns each `response.create` frame into a whole request for the same [`pipeline`].
//!
//! Layers (no module imports one above it): [`clock`], [`errors`], [`metrics`], [`config`], [`turn_state`] →
//! [`store_guard`], [`recorder`], [`credentials`], [`codex`] → [`identity`], [`tracker`], [`upstream`],
//! [`shape`], [`sent`], [`journal_hook`] → [`exchange`] → [`pump`] → [`chat`] → [`state`] → [`pipeline`] →
//! [`proxy`], [`chat_ingress`], [`ws_ingress`], [`models`], [`access`], [`router`], [`server`]. `tests/it/layers.rs`
//! checks it.
//!
//! Invariants: nothing panics on client input; every error is OpenAI-shaped JSON; secrets never reach logs
//! or error messages.

pub mod access;
pub mod chat;
pub mod chat_ingress;
pub mod clock;
pub mod codex;
pub mod config;
pub mod connection;
pub mod credentials;
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
pub mod turn_state;
pub mod upstream;
pub mod ws_ingress;

pub use config::{Config, ConfigError, Settings, UpstreamAuth};
pub use server::{BoundServer, ServeError, bind};
pub use state::AppState;
