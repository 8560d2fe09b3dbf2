//! Calling the sidecar's MCP tools through an rmcp client, the way every
//! suite that drives the server does: one call with the suite-wide timeout,
//! and the two ways a test reads its answer.

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{ClientHandler, RoleClient};
use serde_json::Value;

use super::EVENT_TIMEOUT;

/// Calls `tool` with `arguments` (a JSON object); a tool error comes back as
/// a result, while no answer within [`EVENT_TIMEOUT`] fails the test.
pub async fn call<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    arguments: Value,
) -> CallToolResult {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(arguments.as_object().cloned().unwrap_or_default());
    tokio::time::timeout(EVENT_TIMEOUT, client.call_tool(params))
        .await
        .unwrap_or_else(|_| panic!("{tool} answers in time"))
        .unwrap()
}

/// The structured content of a result that must not be a tool error.
pub fn structured(result: &CallToolResult) -> Value {
    assert_ne!(
        result.is_error,
        Some(true),
        "tool error: {}\n{result:?}",
        text(result)
    );
    result
        .structured_content
        .clone()
        .expect("structured content")
}

/// The result's text blocks, one a line.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}
