//! The MCP server (rmcp, stdio). Each tool checks its input, translates it
//! into one engine call, and shapes the reply; the work happens in the
//! actors. stdout is the protocol: logs go to stderr.

//!
//! - [`server`]: the lifecycle (serve stdio, find Codex, start the engine).
//! - [`catalog`]: the one table of tools (name, family, argument check, how
//!   it runs as a task).
//! - [`gate`]: every call's way in: the table's checks, then a task or the
//!   tool.
//! - [`tools`]: the tool methods; [`tasks`]: the same calls as MCP tasks.
//! - [`requests`]: a tool's arguments as an engine request.
//! - [`params`] and [`replies`]: what the tools take and answer;
//!   [`wait_request`] and [`many_replies`]: `codex_wait` on one run or several.
//! - [`person`]: the person at the client, asked about Codex's requests
//!   through an elicitation form (and a task's `input_required`).
//! - [`lean`]: what `tools/list` leaves out of the derived schemas, and
//!   the size budget the list keeps to.

pub mod catalog;
pub mod framing;
mod gate;
mod lean;
mod many_replies;
pub mod params;
mod person;
#[cfg(test)]
mod properties;
pub mod replies;
mod requests;
mod server;
mod tasks;
mod tools;
mod wait_request;

use std::path::PathBuf;

use rmcp::ErrorData;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::CallToolResult;
use rmcp::task_manager::TaskManager;

use crate::config::Config;
use server::SharedBackend;
pub use server::serve_stdio;

#[derive(Clone)]
pub struct SidecarServer {
    config: Config,
    /// Codex and the engine, which the stdio server finds after it starts
    /// serving.
    backend: SharedBackend,
    /// Where runs go when a call names no cwd.
    cwd: PathBuf,
    tool_router: ToolRouter<SidecarServer>,
    /// Calls made as MCP tasks (clients with the tasks extension).
    tasks: TaskManager,
}

type ToolResult = Result<CallToolResult, ErrorData>;

/// A tool's own outcome: the reply, or the tool error to send instead.
type Reply = Result<CallToolResult, CallToolResult>;

/// Either way, a tool answers with a result (errors are tool errors that a
/// model can read, not protocol errors).
pub(crate) async fn answer(outcome: impl std::future::Future<Output = Reply>) -> ToolResult {
    Ok(outcome.await.unwrap_or_else(|failure| failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router routes exactly the tools of the table, so no tool skips
    /// the argument check, a family or its task kind.
    #[test]
    fn every_tool_has_its_arguments_checked() {
        let mut routed: Vec<String> = SidecarServer::tool_router()
            .list_all()
            .into_iter()
            .map(|tool| tool.name.to_string())
            .collect();
        routed.sort();
        let mut checked: Vec<String> = catalog::tool_names().map(str::to_string).collect();
        checked.sort();
        assert_eq!(routed, checked);
    }
}
