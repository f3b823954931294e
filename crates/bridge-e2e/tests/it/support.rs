//! Helpers shared by the real-client tests: gating ([`gate`]), bounded client processes and their JSONL
//! events ([`process`]), client sessions pointed at any Responses upstream ([`codex`], [`opencode`]), and the
//! emulator with summaries of its request log ([`upstream`]).

pub mod codex;
pub mod gate;
pub mod opencode;
pub mod process;
pub mod upstream;
