//! [`SentRequest`]: the request as it went upstream, parsed once. Shaping produced it; the tracker
//! fingerprints its items and the journal reads its fields from it, so nothing after the upstream call
//! parses the body again.

use bridge_types::ResponsesRequest;
use bytes::Bytes;

/// The request as sent upstream: the parsed form every consumer reads, and its bytes.
#[derive(Debug)]
pub struct SentRequest {
    pub request: ResponsesRequest,
    /// The body sent upstream (the client's own bytes when shaping changed nothing).
    pub body: Bytes,
}

impl SentRequest {
    /// The final request and its bytes: the client's original bytes when nothing changed.
    pub fn new(request: ResponsesRequest, original: Bytes) -> Self {
        let body = if request.is_modified() { Bytes::from(request.to_bytes()) } else { original };
        Self { request, body }
    }
}
