//! Helpers shared by the real-client tests: gating ([`gate`]), bounded client processes and their JSONL
//! events ([`process`]), client sessions pointed at any Responses upstream ([`codex`], [`opencode`]), the
//! Codex app-server driver ([`appserver`]), the emulator with summaries of its request log ([`upstream`]),
//! and the real `codex-bridge` binary in front of it ([`bridge`], ChatGPT login in [`chatgpt`]).

pub mod appserver;
pub mod bridge;
pub mod chatgpt;
pub mod codex;
pub mod gate;
pub mod opencode;
pub mod process;
pub mod upstream;
