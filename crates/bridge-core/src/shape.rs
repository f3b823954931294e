//! Shaping a client request for the upstream. Only what must change changes; the caller forwards the
//! client's original bytes when [`ResponsesRequest::is_modified`] stays false.
//!
//! Today: `promptCacheKey` is renamed to `prompt_cache_key` in place, and with `force_stream` the upstream
//! is always asked for a stream (the bridge aggregates for `stream:false` clients).

use bridge_types::ResponsesRequest;

use crate::config::UpstreamConfig;

/// Applies the upstream shape; returns whether the client asked for a stream.
pub fn for_upstream(request: &mut ResponsesRequest, upstream: &UpstreamConfig) -> Result<bool, serde_json::Error> {
    let client_streams = request.stream();
    request.rename("promptCacheKey", "prompt_cache_key");
    if upstream.force_stream && !client_streams {
        request.set("stream", &true)?;
    }
    Ok(client_streams)
}
