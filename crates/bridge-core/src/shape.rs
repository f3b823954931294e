//! Shaping a client request for the upstream. Only what must change changes; the caller forwards the
//! client's original bytes when [`ResponsesRequest::is_modified`] stays false.
//!
//! Today: `promptCacheKey` is renamed to `prompt_cache_key` in place (when both are present the snake-case
//! one wins, as in the identity's hints, and the camel-case one is removed: one key goes upstream), with `force_stream` the upstream
//! is always asked for a stream (the bridge aggregates for `stream:false` clients), and for the Codex
//! backend the Codex shape is applied ([`crate::codex::shape`]).

use bridge_types::ResponsesRequest;

use crate::codex::CodexRuntime;

/// Applies the upstream shape; returns whether the client asked for a stream. `force_stream` is
/// `[upstream] force_stream`; `codex` the Codex runtime when the upstream is the Codex backend.
pub fn for_upstream(
    request: &mut ResponsesRequest,
    force_stream: bool,
    codex: Option<&CodexRuntime>,
) -> Result<bool, serde_json::Error> {
    let client_streams = request.stream();
    if request.raw("prompt_cache_key").is_some() {
        request.remove("promptCacheKey");
    } else {
        request.rename("promptCacheKey", "prompt_cache_key");
    }
    if force_stream && !client_streams {
        request.set("stream", &true)?;
    }
    if let Some(codex) = codex
        && let Some(shaping) = &codex.shaping
    {
        crate::codex::shape::apply(request, shaping, codex)?;
    }
    Ok(client_streams)
}
