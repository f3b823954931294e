//! [`SentRequest`]: the request as it went upstream, parsed once. Shaping produced it; the tracker
//! fingerprints its items and the journal reads its fields through [`RequestView`], so nothing after the
//! upstream call parses the body again. The bytes themselves are not kept: once the upstream has them,
//! an exchange holds only the parsed form.

use bridge_journal::{InputView, RequestView};
use bridge_types::ResponsesRequest;
use bytes::Bytes;

/// The request as sent upstream.
#[derive(Debug)]
pub struct SentRequest {
    pub request: ResponsesRequest,
    /// `model` as sent (decoded once).
    model: Option<String>,
    body_len: usize,
}

impl SentRequest {
    /// The final request and the bytes to send: the client's original bytes when nothing changed.
    pub fn new(request: ResponsesRequest, original: Bytes) -> (Self, Bytes) {
        let body = if request.is_modified() { Bytes::from(request.to_bytes()) } else { original };
        let model = request.model();
        (Self { request, model, body_len: body.len() }, body)
    }
}

impl RequestView for SentRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn instructions(&self) -> Option<String> {
        self.request.get_str("instructions")
    }

    fn input(&self) -> InputView<'_> {
        match (self.request.input_items(), self.request.input_text()) {
            (Some(items), _) => InputView::Items(items),
            (None, Some(text)) => InputView::Text(text),
            (None, None) => InputView::Absent,
        }
    }

    fn body_len(&self) -> usize {
        self.body_len
    }
}
