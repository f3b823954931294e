//! The Codex backend and ChatGPT access: settings ([`settings`]), request shaping ([`shape`]), the model
//! table and effort variants ([`models`]), system-side prompt edits ([`prompts`]), the instruction cache
//! ([`instructions`]), ChatGPT credentials on upstream requests ([`auth`]), usage-limit error mapping
//! ([`errors`]) and the runtime that ties them to the upstream ([`runtime`]).

pub mod auth;
pub mod errors;
pub mod instructions;
pub mod models;
pub mod prompts;
pub mod runtime;
pub mod settings;
pub mod shape;

pub use runtime::{CodexRuntime, attach};
