//! Plan tool calls seen in responses: Codex `update_plan` (`{explanation?, plan: [{step, status}]}`,
//! codex-wire.md §11.3) and OpenCode `todowrite` (`{todos: [{content, status, priority}]}`,
//! opencode-wire.md). Both become one [`Plan`].
//!
//! Invariant: a call that is not a plan tool, or whose arguments do not parse, yields `None`; nothing here
//! fails on model output.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::tasks::PlanItem;
use crate::tasks::TaskStatus;

/// A plan as the model last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `update_plan` or `todowrite`.
    pub tool: String,
    #[serde(default)]
    pub explanation: Option<String>,
    pub items: Vec<PlanItem>,
}

/// The names of the tools whose calls are plans.
pub const PLAN_TOOLS: &[&str] = &["update_plan", "todowrite"];

/// The plan in a `function_call` output item, if it is one.
pub fn from_function_call(item: &Value) -> Option<Plan> {
    if item.get("type").and_then(Value::as_str) != Some("function_call") {
        return None;
    }
    let name = item.get("name").and_then(Value::as_str)?;
    let args: Value = serde_json::from_str(item.get("arguments").and_then(Value::as_str)?).ok()?;
    let (list, text_key) = match name {
        "update_plan" => (args.get("plan")?.as_array()?, "step"),
        "todowrite" => (args.get("todos")?.as_array()?, "content"),
        _ => return None,
    };
    let items = list
        .iter()
        .filter_map(|entry| {
            let step = entry.get(text_key).and_then(Value::as_str)?.trim().to_owned();
            let status = match entry.get("status").and_then(Value::as_str)? {
                "pending" => TaskStatus::Pending,
                "in_progress" => TaskStatus::InProgress,
                "completed" => TaskStatus::Completed,
                "cancelled" | "blocked" => TaskStatus::Blocked,
                _ => return None,
            };
            (!step.is_empty()).then_some(PlanItem { step, status })
        })
        .collect();
    let explanation = args.get("explanation").and_then(Value::as_str).map(str::to_owned);
    Some(Plan { tool: name.to_owned(), explanation, items })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn both_plan_shapes_parse() {
        let codex = json!({"type": "function_call", "name": "update_plan", "call_id": "c",
            "arguments": r#"{"explanation":"why","plan":[{"step":"Write parser","status":"completed"},{"step":"Test","status":"in_progress"}]}"#});
        let p = from_function_call(&codex).unwrap();
        assert_eq!(p.explanation.as_deref(), Some("why"));
        assert_eq!(p.items[1], PlanItem { step: "Test".into(), status: TaskStatus::InProgress });
        let oc = json!({"type": "function_call", "name": "todowrite", "call_id": "c",
            "arguments": r#"{"todos":[{"content":"Ship","status":"cancelled","priority":"low"}]}"#});
        assert_eq!(from_function_call(&oc).unwrap().items[0].status, TaskStatus::Blocked);
        let other = json!({"type": "function_call", "name": "bash", "arguments": "{}"});
        assert!(from_function_call(&other).is_none());
        let broken = json!({"type": "function_call", "name": "update_plan", "arguments": "{not json"});
        assert!(from_function_call(&broken).is_none());
    }
}
