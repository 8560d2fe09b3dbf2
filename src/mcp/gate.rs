//! The call gate: every call passes here before it reaches a tool. An
//! unknown tool or arguments the tool does not take are tool errors; a
//! client with the tasks extension gets the tools that can be tasks as
//! tasks.

use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, GetTaskParams, GetTaskResult,
    Implementation, ServerCapabilities, ServerConfig, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use super::{SidecarServer, catalog, replies};

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SidecarServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "Hand coding tasks to OpenAI Codex. codex_run starts one and returns a runId at once; \
                 codex_wait returns its result or still_running (then call codex_wait again). \
                 codex_chat, codex_plan and codex_review hold conversations.",
        )
    }

    /// An unknown tool is a tool error that says which tools exist, not a
    /// protocol error the model cannot read; so are arguments the tool does
    /// not take or of the wrong type (rmcp would answer those with a
    /// JSON-RPC error that names neither the tool nor the argument).
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !self.tool_router.has_route(&request.name) {
            let known: Vec<String> = self
                .tool_router
                .list_all()
                .into_iter()
                .map(|tool| tool.name.to_string())
                .collect();
            let message = format!(
                "unknown tool {}; the tools are: {}",
                request.name,
                known.join(", ")
            );
            return Ok(replies::failure(message).into());
        }
        let no_arguments = serde_json::Map::new();
        let arguments = request.arguments.as_ref().unwrap_or(&no_arguments);
        if let Err(error) = catalog::check_arguments(&request.name, arguments) {
            return Ok(replies::failure(error.to_string()).into());
        }
        let tasks_declared = context
            .client_capabilities()
            .is_some_and(|capabilities| capabilities.supports_tasks());
        if tasks_declared && let Some(response) = self.call_as_task(&request, &context).await {
            return Ok(response);
        }
        self.tool_router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(self.tasks.get_task(&request.task_id)?))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks
            .update_task(&request.task_id, request.input_responses)
    }

    /// Cancelling a task interrupts its Codex turn.
    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks.cancel_task(&request.task_id)
    }
}
