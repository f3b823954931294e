//! Token usage as reported in `response.completed`, with absent fields kept absent.
//!
//! The Responses API may omit any detail field; the bridge records `None` for an omitted field and never
//! turns it into 0, so "the upstream said 0 cached tokens" and "the upstream said nothing" stay distinct.

use serde_json::Value;

/// Usage of one response. `None` means the upstream did not send the field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

impl Usage {
    /// Reads a `usage` object (`input_tokens`, `input_tokens_details.cached_tokens`,
    /// `input_tokens_details.cache_write_tokens`, `output_tokens`, `output_tokens_details.reasoning_tokens`,
    /// `total_tokens`). Fields of the wrong type count as absent.
    pub fn from_json(usage: &Value) -> Self {
        let num = |v: Option<&Value>| v.and_then(Value::as_u64);
        let input_details = usage.get("input_tokens_details");
        let output_details = usage.get("output_tokens_details");
        Self {
            input_tokens: num(usage.get("input_tokens")),
            cached_tokens: num(input_details.and_then(|d| d.get("cached_tokens"))),
            cache_write_tokens: num(input_details.and_then(|d| d.get("cache_write_tokens"))),
            output_tokens: num(usage.get("output_tokens")),
            reasoning_tokens: num(output_details.and_then(|d| d.get("reasoning_tokens"))),
            total_tokens: num(usage.get("total_tokens")),
        }
    }

    /// Reads the usage of a `response.completed` (or `response.incomplete` / `response.failed`) event payload,
    /// that is `{"type":..., "response": {"usage": {...}}}`. `None` when the payload has no usage object.
    pub fn from_event(event: &Value) -> Option<Self> {
        event.get("response").and_then(|r| r.get("usage")).filter(|u| u.is_object()).map(Self::from_json)
    }
}
