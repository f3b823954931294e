//! Errors reported by the SSE decoder.

/// Failure while decoding an SSE stream.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// A single pending event grew past the decoder's size limit. The
    /// offending block is discarded (up to its terminating blank line) and
    /// decoding resumes with the next block.
    #[error("SSE event exceeds the limit of {limit} bytes")]
    EventTooLarge {
        /// The configured maximum event size in bytes.
        limit: usize,
    },
}
