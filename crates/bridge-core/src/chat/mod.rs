//! Chat Completions as one more ingress of the exchange pipeline: the translation of a Chat request into a
//! Responses request ([`translate_in`]), of the upstream's events into Chat answers ([`translate_out`], a
//! [`crate::pump::Sink`]), and the per-session reasoning replay that keeps a Chat conversation's upstream
//! input equal to a Responses client's ([`continuity`]). The HTTP handler is [`crate::chat_ingress`].
//!
//! Invariants: domain code only (no bridge state); the translation is byte-stable and linear in the body.

pub mod continuity;
pub mod translate_in;
pub mod translate_out;
