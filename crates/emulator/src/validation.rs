//! Request validation for the two Responses flavours, answered with the real services' error shapes.
//!
//! API flavour (`/v1/responses`): a non-empty `Authorization: Bearer` is required. ChatGPT flavour
//! (`/backend-api/codex/responses`): the bearer token must be issued by the emulator's OAuth server (or be
//! in the configured accepted set), `chatgpt-account-id` is required, and the body rules of the Codex
//! backend apply (`store` must be false, `stream` must be true, rejected parameters, no `item_reference`).
//! Sources for every rule are in README.md ("Validation"). Invariant: checks run in a fixed order and the
//! first failing rule answers; nothing here panics on client input.

use serde_json::Value;

use crate::config::EmulatorConfig;
use crate::errors::{self, ApiError};
use crate::oauth::{OAuth, TokenCheck};

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `POST /v1/responses` (OpenAI API).
    Api,
    /// `POST /backend-api/codex/responses` (ChatGPT Codex backend).
    ChatGpt,
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Check authentication (and the account header in ChatGPT flavour).
pub fn check_auth(
    flavour: Flavour,
    headers: &http::HeaderMap,
    config: &EmulatorConfig,
    oauth: &OAuth,
    now_ms: u64,
) -> Result<(), ApiError> {
    let Some(token) = bearer(headers) else { return Err(errors::missing_auth()) };
    if flavour == Flavour::Api {
        return Ok(());
    }
    if !config.accept_any_token && !config.accepted_tokens.iter().any(|t| t == token) {
        match oauth.check(token, now_ms) {
            TokenCheck::Valid => {}
            TokenCheck::Expired => return Err(errors::token_expired()),
            TokenCheck::Invalid => return Err(errors::token_invalidated()),
        }
    }
    let account = headers.get("chatgpt-account-id").and_then(|v| v.to_str().ok()).map(str::trim);
    if account.is_none_or(str::is_empty) {
        return Err(errors::detail(400, "Missing chatgpt-account-id header"));
    }
    Ok(())
}

/// Check the JSON body.
pub fn check_body(flavour: Flavour, body: &Value, config: &EmulatorConfig) -> Result<(), ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(errors::api_error(
            400,
            "The request body must be a JSON object.",
            Some("invalid_request_error"),
            None,
            None,
        ));
    };
    if !obj.get("model").is_some_and(Value::is_string) {
        return Err(errors::api_error(
            400,
            "Missing required parameter: 'model'.",
            Some("invalid_request_error"),
            Some("model"),
            Some("missing_required_parameter"),
        ));
    }
    if flavour == Flavour::ChatGpt {
        if obj.get("store") != Some(&Value::Bool(false)) {
            return Err(errors::detail(400, "Store must be set to false"));
        }
        if obj.get("stream") != Some(&Value::Bool(true)) {
            return Err(errors::detail(400, "Stream must be set to true"));
        }
        if let Some(param) = config.rejected_params.iter().find(|p| obj.contains_key(p.as_str())) {
            return Err(errors::detail(400, &format!("Unsupported parameter: {param}")));
        }
    }
    if let Some(prev) = obj.get("previous_response_id").and_then(Value::as_str) {
        return Err(errors::api_error(
            400,
            &format!("Previous response with id '{prev}' not found."),
            Some("invalid_request_error"),
            Some("previous_response_id"),
            Some("previous_response_not_found"),
        ));
    }
    let reference = obj
        .get("input")
        .and_then(Value::as_array)
        .and_then(|items| items.iter().find(|it| it.get("type").and_then(Value::as_str) == Some("item_reference")));
    if let Some(item) = reference {
        let id = item.get("id").and_then(Value::as_str).unwrap_or("");
        return Err(errors::api_error(
            404,
            &format!(
                "Item with id '{id}' not found. Items are not persisted when `store` is set to false. Try again with `store` set to true, or remove this item from your input."
            ),
            Some("invalid_request_error"),
            Some("input"),
            None,
        ));
    }
    Ok(())
}
