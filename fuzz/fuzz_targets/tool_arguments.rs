//! MCP tool arguments: the check every call passes before its arguments are
//! used (unknown names, wrong types, for each tool's parameters struct).
//! The first byte picks the tool (past the known ones: a name from the
//! input), the rest is the JSON of the arguments.
#![no_main]

use codex_mcp_sidecar::mcp::catalog::{check_arguments, tool_names};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let tools: Vec<&str> = tool_names().collect();
    let Ok(Value::Object(arguments)) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let tool = tools
        .get(usize::from(pick) % (tools.len() + 1))
        .copied()
        .unwrap_or("codex_teleport");
    if let Err(error) = check_arguments(tool, &arguments) {
        assert!(error.to_string().starts_with(tool));
    }
});
