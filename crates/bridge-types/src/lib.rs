//! Wire types for the OpenAI Responses API as codex-bridge sees it.
//!
//! The bridge must forward what it does not change byte for byte, so a request is never decoded into a
//! full `serde_json::Value` tree. [`ResponsesRequest`] keeps the top-level object as an ordered map of
//! `key -> raw JSON` (insertion order, hash lookups): reading a field decodes only that field, editing one
//! replaces only its raw text, and [`ResponsesRequest::to_bytes`] writes the fields back in their original
//! order. `input` items stay raw JSON (see [`ResponsesRequest::input_items`]).

mod error;
mod request;
mod usage;

pub use error::{ApiError, ErrorKind};
pub use request::{RequestError, ResponsesRequest, parse_count};
pub use usage::Usage;
