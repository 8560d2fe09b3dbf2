//! What `tools/list` costs a client: every byte of it goes into the model's
//! context in every session of a client that loads tool schemas eagerly.
//! The schemas rmcp derives carry what no model reads (the JSON Schema
//! dialect, Rust's integer widths); they are dropped here, once, when the
//! router is built. The budget below is what the default list must fit, and
//! every tool of every family on its own, so a tool or argument added later
//! has to fit it too.

use rmcp::model::Tool;
use serde_json::{Map, Value};

/// The default `tools/list` result as compact JSON, at most (issue 15).
#[cfg(test)]
pub(super) const LIST_BUDGET_BYTES: usize = 8 * 1024;

/// Any one tool's object in that result, at most (issue 15).
#[cfg(test)]
pub(super) const TOOL_BUDGET_BYTES: usize = 1536;

/// Drops from `tool`'s input schema what only a validator reads: the
/// `$schema` dialect (MCP assumes 2020-12 without it) and schemars' Rust
/// integer `format`s (`uint64`: the `minimum` next to it says the same).
/// The arguments themselves are still checked against the full schema
/// (`params::check`).
pub(super) fn compact(tool: &mut Tool) {
    let mut schema = (*tool.input_schema).clone();
    schema.remove("$schema");
    strip_formats(&mut schema);
    tool.input_schema = std::sync::Arc::new(schema);
}

fn strip_formats(object: &mut Map<String, Value>) {
    if object
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|format| format.starts_with("uint") || format.starts_with("int"))
    {
        object.remove("format");
    }
    for value in object.values_mut() {
        match value {
            Value::Object(inner) => strip_formats(inner),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(inner) = item {
                        strip_formats(inner);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ToolFamilies};
    use crate::mcp::SidecarServer;

    fn listed(tools: ToolFamilies) -> Vec<Tool> {
        let mut config =
            Config::from_lookup(|name| (name == "HOME").then(|| "/h".to_string())).unwrap();
        config.tools = tools;
        let server = SidecarServer::new(
            config,
            Err::<crate::codex_bin::CodexBinary, _>("no Codex in this test".to_string()),
            None,
            "/".into(),
        );
        let mut tools = server.tool_router.list_all();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        tools
    }

    fn bytes(value: &impl serde::Serialize) -> usize {
        serde_json::to_vec(value).unwrap().len()
    }

    #[test]
    fn the_default_list_and_every_tool_fit_the_budget() {
        let default = listed(ToolFamilies::DEFAULT);
        let result = rmcp::model::ListToolsResult {
            tools: default.clone(),
            ..Default::default()
        };
        let total = bytes(&result);
        assert!(
            total <= LIST_BUDGET_BYTES,
            "the default tools/list is {total} bytes, over {LIST_BUDGET_BYTES}"
        );
        // Every tool of every family, listed or not by default: one added
        // later, or a new argument, must fit as well.
        let all = listed(ToolFamilies::ALL);
        assert_eq!(all.len(), crate::mcp::catalog::TOOLS.len());
        for tool in &all {
            let size = bytes(tool);
            assert!(
                size <= TOOL_BUDGET_BYTES,
                "{} is {size} bytes, over {TOOL_BUDGET_BYTES}",
                tool.name
            );
        }
    }

    #[test]
    fn legacy_and_alias_names_are_listed_only_when_asked_for() {
        let names = |tools: ToolFamilies| -> Vec<String> {
            listed(tools)
                .into_iter()
                .map(|tool| tool.name.to_string())
                .collect()
        };
        let old = [
            "codex",
            "codex-reply",
            "codex_guard_plan",
            "codex_guard_final",
        ];
        let default = names(ToolFamilies::DEFAULT);
        for name in old {
            assert!(
                !default.contains(&name.to_string()),
                "{name} in {default:?}"
            );
        }
        assert!(default.contains(&"codex_run".to_string()));
        assert!(default.contains(&"codex_plan".to_string()));

        let legacy = names(ToolFamilies::parse("sidecar,legacy").unwrap());
        assert!(
            legacy.contains(&"codex".to_string()) && legacy.contains(&"codex-reply".to_string())
        );
        assert!(!legacy.contains(&"codex_guard_plan".to_string()));

        let aliases = names(ToolFamilies::parse("aliases").unwrap());
        assert_eq!(aliases, ["codex_guard_final", "codex_guard_plan"]);
    }

    #[test]
    fn what_a_model_needs_to_follow_the_wait_pattern_is_still_said() {
        let all = listed(ToolFamilies::ALL);
        let described = |name: &str| {
            all.iter()
                .find(|tool| tool.name == name)
                .and_then(|tool| tool.description.clone())
                .unwrap_or_default()
        };
        let run = described("codex_run");
        assert!(
            run.contains("codex_wait") && run.contains("still_running"),
            "{run}"
        );
        let wait = described("codex_wait");
        assert!(wait.contains("still_running"), "{wait}");
    }

    #[test]
    fn compacting_keeps_every_argument_and_its_type() {
        for tool in listed(ToolFamilies::ALL) {
            let schema = Value::Object((*tool.input_schema).clone());
            let text = schema.to_string();
            assert!(
                !text.contains("$schema") && !text.contains("uint64"),
                "{text}"
            );
            assert_eq!(schema["type"], "object", "{}", tool.name);
        }
        let wait = listed(ToolFamilies::DEFAULT)
            .into_iter()
            .find(|tool| tool.name == "codex_wait")
            .unwrap();
        let soft = &wait.input_schema["properties"]["soft_timeout_ms"];
        assert_eq!(soft["type"], serde_json::json!(["integer", "null"]));
        assert_eq!(soft["minimum"], 0);
    }
}
