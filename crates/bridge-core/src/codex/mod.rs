//! The Codex backend: request shaping ([`shape`]), the model table and effort variants ([`models`]),
//! system-side prompt edits ([`prompts`]), the instruction cache ([`instructions`]), usage-limit error
//! mapping ([`errors`]), the plan's last reported quota ([`quota`]) and the runtime that holds them ([`runtime`]). Its settings are in
//! [`crate::config::codex`]; ChatGPT credentials in [`crate::credentials`].

pub mod errors;
pub mod instructions;
pub mod models;
pub mod prompts;
pub mod quota;
pub mod runtime;
pub mod shape;

pub use runtime::{CodexRuntime, start};
