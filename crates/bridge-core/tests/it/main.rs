//! Integration tests of the gateway through its HTTP interface, against a scripted upstream on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod codex_support;
/// The throwaway `redis-server` (Redis tests skip without it unless `CODEX_BRIDGE_REQUIRE_REDIS=1`).
use bridge_test_support::redis_server;
mod support;

mod access;
mod cache_emulator;
mod chat;
mod chatgpt_auth;
mod codex_errors;
mod codex_prompts;
mod codex_shape;
mod errors;
mod hardening;
mod identity;
mod identity_edges;
mod identity_lineage;
mod identity_props;
mod identity_side_requests;
mod instructions;
mod journal;
mod layers;
mod pipeline;
mod store_outage;
mod streaming;
mod tracker_memory;
mod ws_ingress;
