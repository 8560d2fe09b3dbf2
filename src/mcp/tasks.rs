//! The MCP tasks extension (`io.modelcontextprotocol/tasks`). A client that
//! declares it gets `codex_run`, `codex_resume` and `codex` as tasks: the run
//! starts before the call returns (so its run id is in the task's status
//! message, and `codex_wait` works on it too), then the task follows it like
//! `codex_wait` does. The conversation tools (`codex_chat`, `codex_plan`,
//! `codex_review` and aliases) become tasks too: their run starts when the
//! session is free, and the status message names it from then on. `tasks/get` shows how it is going; the task's result is
//! the final result `codex_wait` would give; `tasks/cancel` interrupts the
//! Codex turn. Without the extension nothing here runs.

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, CreateTaskResult};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskContext, TaskExit, TaskOptions};
use rmcp::{ErrorData, RoleServer};
use serde::de::DeserializeOwned;

use super::catalog::{self, AsTask, Talk};
use super::params::{LegacyCodexParams, ResumeParams, RunParams};
use super::person::TaskSlot;
use super::requests::Conversation;
use super::{SidecarServer, replies};
use crate::actors::{Engine, WaitOutcome};
use crate::store::RunId;

/// How often a client should poll `tasks/get`: a turn takes seconds to
/// minutes, so a second is prompt enough and cheap.
const TASK_POLL_MS: u64 = 1000;

/// How long the task waits per slice before refreshing its status message
/// with the run's progress.
const TASK_SLICE: Duration = Duration::from_secs(1);

impl SidecarServer {
    /// The call as a task, for the tools the table makes tasks; `None`
    /// otherwise.
    pub(super) async fn call_as_task(
        &self,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<CallToolResponse> {
        let as_task = catalog::find(&request.name).map_or(AsTask::No, |tool| tool.as_task);
        let legacy = match as_task {
            AsTask::No => return None,
            AsTask::Conversation(talk) => return Some(self.conversation_task(request, talk).await),
            AsTask::Run | AsTask::Resume => false,
            AsTask::Legacy => true,
        };
        let engine = match self.engine().await {
            Ok(engine) => engine,
            Err(failure) => return Some(failure.into()),
        };
        // The person's form goes into the task's input_required too, once
        // the task exists.
        let slot = TaskSlot::default();
        let person = self.person(context, Some(slot.clone()));
        let started = async {
            match as_task {
                AsTask::Resume => {
                    let request =
                        self.resume_request(arguments::<ResumeParams>(request)?, person)?;
                    engine.resume(request).await.map_err(replies::failure)
                }
                AsTask::Legacy => {
                    let request = self.legacy_request(arguments::<LegacyCodexParams>(request)?)?;
                    engine.run(request).await.map_err(replies::failure)
                }
                _ => {
                    let request = self.run_request(arguments::<RunParams>(request)?, person)?;
                    engine.run(request).await.map_err(replies::failure)
                }
            }
        }
        .await;
        let started = match started {
            Ok(started) => started,
            // Refused before any run began: an ordinary tool error.
            Err(failure) => return Some(failure.into()),
        };
        let page = self.page(0);
        let run_id = started.run_id.clone();
        let options = TaskOptions::new()
            .with_poll_interval_ms(TASK_POLL_MS)
            .with_status_message(format!("run {run_id}: running"));
        let tasks = self.tasks.clone();
        let task = self.tasks.spawn(options, move |context| {
            let _ = slot.set((tasks, context.clone()));
            Box::pin(follow(engine, run_id, context, move |outcome| {
                if legacy {
                    replies::legacy(outcome)
                } else {
                    replies::finished(outcome, page)
                }
            }))
        });
        Some(CallToolResponse::Task(CreateTaskResult::new(task)))
    }
}

impl SidecarServer {
    async fn conversation_task(
        &self,
        request: &CallToolRequestParams,
        talk: Talk,
    ) -> CallToolResponse {
        let engine = match self.engine().await {
            Ok(engine) => engine,
            Err(failure) => return failure.into(),
        };
        let prepared: Result<(Engine, crate::actors::ChatRequest, &'static str), CallToolResult> =
            (|| {
                let conversation = Conversation::from_arguments(talk, arguments_value(request))
                    .map_err(deserialize_failure)?;
                let chat = self.chat_request(conversation.prompt, conversation.settings)?;
                Ok((engine, chat, conversation.field))
            })();
        let (engine, mut chat, field) = match prepared {
            Ok(prepared) => prepared,
            Err(failure) => return failure.into(),
        };
        let (tell, started) = tokio::sync::mpsc::unbounded_channel();
        chat.started = Some(tell);
        let options = TaskOptions::new()
            .with_poll_interval_ms(TASK_POLL_MS)
            .with_status_message("waiting for the session");
        let task = self.tasks.spawn(options, move |context| {
            Box::pin(converse(engine, chat, started, context, field))
        });
        CallToolResponse::Task(CreateTaskResult::new(task))
    }
}

/// Runs one conversation request as a task: the status message names its
/// run once it starts; a cancel interrupts that run.
async fn converse(
    engine: Engine,
    chat: crate::actors::ChatRequest,
    mut started: tokio::sync::mpsc::UnboundedReceiver<RunId>,
    context: TaskContext,
    field: &'static str,
) -> Result<CallToolResult, TaskExit> {
    let reply = engine.chat(chat);
    tokio::pin!(reply);
    let mut run: Option<RunId> = None;
    loop {
        tokio::select! {
            // A cancel that comes before the run starts is acted on as soon
            // as it has (cancelled() stays ready), so that run is stopped too.
            () = context.cancelled(), if run.is_some() => {
                if let Some(run_id) = &run
                    && let Err(error) = engine.interrupt(run_id).await
                {
                    tracing::warn!(%error, %run_id, "interrupting a cancelled task's run failed");
                }
                return Err(TaskExit::Cancelled);
            }
            Some(run_id) = started.recv(), if run.is_none() => {
                context.set_status_message(format!("run {run_id}: running"));
                run = Some(run_id);
            }
            answer = &mut reply => {
                return Ok(match answer {
                    Ok(reply) => replies::conversation(&reply, field),
                    Err(error) => replies::failure(error),
                });
            }
        }
    }
}

/// Follows the run to its end, keeping the task's status message current;
/// a cancelled task interrupts the turn.
async fn follow(
    engine: Engine,
    run_id: RunId,
    context: TaskContext,
    shape: impl Fn(&crate::actors::RunResult) -> CallToolResult,
) -> Result<CallToolResult, TaskExit> {
    loop {
        tokio::select! {
            () = context.cancelled() => {
                if let Err(error) = engine.interrupt(&run_id).await {
                    tracing::warn!(%error, %run_id, "interrupting a cancelled task's run failed");
                }
                return Err(TaskExit::Cancelled);
            }
            outcome = engine.wait(&run_id, Some(TASK_SLICE)) => match outcome {
                Ok(WaitOutcome::Finished(result)) => return Ok(shape(&result)),
                Ok(WaitOutcome::StillRunning { progress, .. }) => {
                    context.set_status_message(format!(
                        "run {run_id}: running, {} events, {} tokens",
                        progress.events, progress.total_tokens
                    ));
                }
                Ok(WaitOutcome::NeedsApproval { approval, .. }) => {
                    let who = if approval.asked_person {
                        "the person at the client is asked"
                    } else {
                        "answer with codex_approve"
                    };
                    context.set_status_message(format!(
                        "run {run_id}: waiting for approval {} ({}): {who}",
                        approval.approval_id, approval.summary
                    ));
                    if !approval.asked_person {
                        tokio::time::sleep(TASK_SLICE).await;
                    }
                }
                Err(error) => {
                    return Err(TaskExit::Error(ErrorData::internal_error(error.to_string(), None)));
                }
            },
        }
    }
}

/// The call's arguments as `T`, with the same message a plain call gets.
fn arguments<T: DeserializeOwned>(request: &CallToolRequestParams) -> Result<T, CallToolResult> {
    serde_json::from_value(arguments_value(request)).map_err(deserialize_failure)
}

fn arguments_value(request: &CallToolRequestParams) -> serde_json::Value {
    serde_json::Value::Object(request.arguments.clone().unwrap_or_default())
}

fn deserialize_failure(error: serde_json::Error) -> CallToolResult {
    replies::failure(format!("failed to deserialize parameters: {error}"))
}
