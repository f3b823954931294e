//! Incremental, linear-time Server-Sent Events (SSE) decoder and encoder.
//!
//! [`SseDecoder`] turns network chunks into complete [`SseEvent`] blocks, each
//! carrying its exact received bytes (`raw`) so a proxy can forward it
//! unchanged, plus the parsed WHATWG fields. [`encode_event`] and
//! [`encode_comment`] produce well-formed blocks.
//!
//! Invariant: decoding costs O(total bytes) whatever the chunking; every byte
//! is scanned for a line terminator once and every line is parsed once.

mod decoder;
mod encode;
mod error;
mod event;

pub use decoder::SseDecoder;
pub use encode::{encode_comment, encode_event};
pub use error::SseError;
pub use event::SseEvent;

#[cfg(test)]
mod tests;
