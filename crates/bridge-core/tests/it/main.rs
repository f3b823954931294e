//! Integration tests of the gateway through its HTTP interface, against a scripted upstream on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod codex_support;
mod support;

mod access;
mod chatgpt_auth;
mod codex_errors;
mod codex_prompts;
mod codex_shape;
mod errors;
mod instructions;
mod streaming;
