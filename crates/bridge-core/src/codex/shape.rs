//! Shaping a request for the Codex backend (README, "ChatGPT access"): `store:false`, `stream:true`, `include`
//! gains `reasoning.encrypted_content` when reasoning is present, rejected parameters removed, model names
//! normalized by the explicit table, `item_reference` items dropped, and in `codex` instructions mode the
//! official instructions with the client's system prompt kept as a developer message and the bridge prompt.
//!
//! Cost on the request path: top-level edits touch only their field. `input` items (split once at parse)
//! are decoded only when they must change: an `item_reference` appears in an item's raw text,
//! `env_context` is not `keep`, or the mode is `codex`; even then only the leading developer/system items
//! are decoded, and every other item moves into the new input with its bytes.

use bridge_types::ResponsesRequest;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::models::{self, Resolved};
use super::prompts;
use super::runtime::CodexRuntime;
use crate::codex::instructions::OPENCODE_KEY;
use crate::config::codex::{CodexShaping, EnvContext, InstructionsMode, OpencodePrompt};

/// Applies the Codex shape in place.
pub fn apply(
    request: &mut ResponsesRequest,
    shaping: &CodexShaping,
    rt: &CodexRuntime,
) -> Result<(), serde_json::Error> {
    request.set("store", &false)?;
    request.set("stream", &true)?;
    for param in &shaping.rejected_params {
        if request.raw(param).is_some() {
            request.remove(param);
        }
    }
    let model = normalize_model(request, shaping, rt)?;
    ensure_encrypted_reasoning(request)?;
    edit_input(request, shaping, rt, model.as_deref())
}

fn normalize_model(
    request: &mut ResponsesRequest,
    shaping: &CodexShaping,
    rt: &CodexRuntime,
) -> Result<Option<String>, serde_json::Error> {
    let Some(name) = request.model() else { return Ok(None) };
    match models::resolve(&name, &shaping.model_aliases) {
        Resolved::Known { model, effort } => {
            if model != name {
                request.set("model", &model)?;
            }
            if let Some(effort) = effort {
                let mut reasoning: Map<String, Value> = request.get("reasoning").ok().flatten().unwrap_or_default();
                reasoning.insert("effort".to_owned(), Value::from(effort));
                request.set("reasoning", &reasoning)?;
            }
            Ok(Some(model))
        }
        Resolved::Unknown => {
            rt.warn_once(&format!("model:{name}"), || {
                tracing::warn!(model = %name, "model is not in the Codex model table; sending it unchanged");
            });
            Ok(Some(name))
        }
    }
}

fn ensure_encrypted_reasoning(request: &mut ResponsesRequest) -> Result<(), serde_json::Error> {
    if request.raw("reasoning").is_none_or(|r| r.get() == "null") {
        return Ok(());
    }
    let mut include: Vec<Value> = request.get("include").ok().flatten().unwrap_or_default();
    if !include.iter().any(|v| v == "reasoning.encrypted_content") {
        include.push(Value::from("reasoning.encrypted_content"));
        request.set("include", &include)?;
    }
    Ok(())
}

/// One input item: the received item at an index (its bytes untouched) or an edited value.
enum Piece {
    Keep(usize),
    Value(Value),
}

fn edit_input(
    request: &mut ResponsesRequest,
    shaping: &CodexShaping,
    rt: &CodexRuntime,
    model: Option<&str>,
) -> Result<(), serde_json::Error> {
    let codex_mode = shaping.instructions == InstructionsMode::Codex;
    let has_reference =
        request.input_items().is_some_and(|items| items.iter().any(|i| i.get().contains("item_reference")));
    if !has_reference && !codex_mode && shaping.env_context == EnvContext::Keep {
        return Ok(());
    }
    let official = if codex_mode { official_instructions(rt, model) } else { None };
    let tools = request.raw("tools").is_some_and(|t| t.get().trim_start().starts_with('[') && t.get() != "[]");
    let client_instructions = request.get_str("instructions");
    let Some(raw_items) = request.input_items() else {
        if let (Some(text), Some(_)) = (request.input_text(), &official) {
            let item = serde_json::json!({"type": "message", "role": "user", "content": text});
            request.set_input_items(vec![serde_json::value::to_raw_value(&item)?]);
            return edit_input(request, shaping, rt, model);
        }
        return Ok(());
    };
    let received = raw_items.len();
    let mut pieces: Vec<Piece> = Vec::with_capacity(received + 3);
    let mut leading = true;
    let mut env_blocks = Vec::new();
    let opencode = match (&official, shaping.opencode_prompt) {
        (Some(_), OpencodePrompt::Replace) => rt.instructions.as_ref().and_then(|c| c.get(OPENCODE_KEY)),
        _ => None,
    };
    for (index, raw) in raw_items.iter().enumerate() {
        let text = raw.get();
        if text.contains("item_reference") && is_item_reference(text) {
            continue;
        }
        if !leading || !(text.contains("\"developer\"") || text.contains("\"system\"")) {
            leading = false;
            pieces.push(Piece::Keep(index));
            continue;
        }
        let mut item: Value = serde_json::from_str(text)?;
        if !prompts::is_system_side(&item) {
            leading = false;
            pieces.push(Piece::Keep(index));
            continue;
        }
        let mut changed = opencode.as_deref().is_some_and(|p| prompts::remove_opencode_prompt(&mut item, p));
        if shaping.env_context != EnvContext::Keep {
            let blocks = prompts::take_env_blocks(&mut item);
            changed |= !blocks.is_empty();
            env_blocks.extend(blocks);
        }
        match (changed, prompts::is_empty_message(&item)) {
            (true, true) => {}
            (true, false) => pieces.push(Piece::Value(item)),
            (false, _) => pieces.push(Piece::Keep(index)),
        }
    }
    let mut front = Vec::new();
    if let Some(official) = &official {
        if shaping.bridge_prompt && tools && !bridge_prompt_present(raw_items) {
            front.push(Piece::Value(prompts::developer_message(prompts::BRIDGE_PROMPT)));
        }
        if let Some(client) = client_instructions.filter(|c| c.trim() != official.trim() && !c.trim().is_empty()) {
            front.push(Piece::Value(prompts::developer_message(&client)));
        }
    }
    if shaping.env_context == EnvContext::Tail && !env_blocks.is_empty() {
        pieces.push(Piece::Value(prompts::developer_message(&env_blocks.join("\n"))));
    }
    let untouched = front.is_empty() && pieces.len() == received && pieces.iter().all(|p| matches!(p, Piece::Keep(_)));
    if let Some(official) = &official {
        request.set("instructions", &**official)?;
    }
    if untouched {
        return Ok(());
    }
    front.extend(pieces);
    // The kept items move into the new input: no item is copied or re-encoded.
    let mut received: Vec<Option<Box<RawValue>>> =
        request.take_input_items().unwrap_or_default().into_iter().map(Some).collect();
    let mut items = Vec::with_capacity(front.len());
    for piece in front {
        match piece {
            Piece::Keep(index) => items.extend(received.get_mut(index).and_then(Option::take)),
            Piece::Value(v) => items.push(serde_json::value::to_raw_value(&v)?),
        }
    }
    request.set_input_items(items);
    Ok(())
}

fn is_item_reference(raw: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<&'a str>,
    }
    serde_json::from_str::<Head<'_>>(raw).is_ok_and(|h| h.kind == Some("item_reference"))
}

/// Whether an item is already the bridge prompt (only items mentioning it are decoded).
fn bridge_prompt_present(items: &[Box<RawValue>]) -> bool {
    items.iter().filter(|i| i.get().contains("codex-bridge: tools")).any(|i| {
        serde_json::from_str::<Value>(i.get()).is_ok_and(|v| prompts::has_bridge_prompt(std::slice::from_ref(&v)))
    })
}

/// The official instructions for `model` from the cache (memory only); warns once per file while missing.
fn official_instructions(rt: &CodexRuntime, model: Option<&str>) -> Option<std::sync::Arc<str>> {
    let file = models::instruction_file(model.unwrap_or_default());
    let found = rt.instructions.as_ref().and_then(|c| c.get(file));
    if found.is_none() {
        rt.warn_once(&format!("instructions:{file}"), || {
            tracing::warn!(file, "Codex instructions not cached yet; passing the client's instructions through");
        });
    }
    found
}
