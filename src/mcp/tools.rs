//! The tool methods: what each tool does with its checked arguments, and
//! how a call that follows a run answers (at once, per wait slice, or at
//! the end).

use std::time::Duration;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ProgressNotificationParam};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};

use super::params::*;
use super::requests::{Conversation, run_id};
use super::wait_request::{WaitTarget, wait_request};
use super::{Reply, SidecarServer, ToolResult, answer, many_replies, replies};
use crate::actors::approvals::Choice;
use crate::actors::{Engine, Interrupted, ResumeRequest, ResumeTarget};
use crate::appserver::connection::LATENCY_TARGET;
use crate::store::RunId;

/// How long codex_interrupt waits for Codex to confirm the turn stopped
/// (the run actor itself gives up after 5 s), so it can answer with the
/// final status.
const INTERRUPT_REPLY_WAIT: Duration = Duration::from_secs(15);

/// At most one progress notification a second: enough to show life
/// without flooding the client.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

const RUNS_LIMIT_DEFAULT: u64 = 20;
const RUNS_LIMIT_MAX: u64 = 200;

#[tool_router(vis = "pub(super)")]
impl SidecarServer {
    /// Start a Codex session; answers when its turn ends. Continue with
    /// codex-reply.
    #[tool(name = "codex")]
    async fn legacy_codex(
        &self,
        Parameters(params): Parameters<LegacyCodexParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let outcome = async {
            let engine = &self.engine().await?;
            let request = self.legacy_request(params)?;
            let started = engine.run(request).await.map_err(replies::failure)?;
            self.legacy_answer(engine, &started.run_id).await
        };
        self.with_progress(&context, outcome).await
    }

    /// Continue a Codex session started with the `codex` tool, and answer
    /// when the turn ends.
    #[tool(name = "codex-reply")]
    async fn legacy_reply(
        &self,
        Parameters(params): Parameters<LegacyReplyParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let outcome = async {
            let engine = &self.engine().await?;
            let thread_id = params
                .thread_id
                .or(params.conversation_id)
                .ok_or_else(|| replies::failure("threadId is required"))?;
            let request = ResumeRequest::new(ResumeTarget::Thread(thread_id.into()), params.prompt);
            let started = engine.resume(request).await.map_err(replies::failure)?;
            self.legacy_answer(engine, &started.run_id).await
        };
        self.with_progress(&context, outcome).await
    }

    /// Start Codex on a task; returns a runId at once. Then call codex_wait
    /// with it, and again on each `still_running`, until the result comes.
    #[tool]
    async fn codex_run(
        &self,
        Parameters(params): Parameters<RunParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let outcome = async {
            let engine = &self.engine().await?;
            let run_async = params.run_async;
            let person = self.person(&context, None);
            let request = self.run_request(params, person)?;
            let started = engine.run(request).await.map_err(replies::failure)?;
            self.follow(engine, &started, run_async).await
        };
        self.with_progress(&context, outcome).await
    }

    /// Continue an earlier run's Codex conversation with a new prompt (a new
    /// turn on the same thread); returns a new runId to codex_wait on.
    #[tool]
    async fn codex_resume(
        &self,
        Parameters(params): Parameters<ResumeParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let outcome = async {
            let engine = &self.engine().await?;
            let run_async = params.run_async;
            let person = self.person(&context, None);
            let request = self.resume_request(params, person)?;
            let started = engine.resume(request).await.map_err(replies::failure)?;
            self.follow(engine, &started, run_async).await
        };
        self.with_progress(&context, outcome).await
    }

    /// Wait for a run: returns the result as soon as it ends, or
    /// `still_running` with progress after the soft timeout; then call
    /// codex_wait again with the same runId (or run_ids).
    #[tool]
    async fn codex_wait(
        &self,
        Parameters(params): Parameters<WaitParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let outcome = async {
            let engine = &self.engine().await?;
            let request = wait_request(params, self.config.wait_soft_timeout)?;
            let slice = request.slice;
            match request.target {
                WaitTarget::One { run_id, offset } => {
                    let outcome = engine
                        .wait(&run_id, slice)
                        .await
                        .map_err(replies::failure)?;
                    let reply = replies::wait_outcome(
                        &outcome,
                        slice.unwrap_or_default(),
                        self.page(offset),
                    );
                    tracing::debug!(
                        target: LATENCY_TARGET,
                        run_id = %run_id,
                        outcome = outcome.kind(),
                        "codex_wait reply"
                    );
                    Ok(reply)
                }
                WaitTarget::Many { ids, mode } => {
                    let outcome = engine
                        .wait_many(&ids, mode, slice)
                        .await
                        .map_err(replies::failure)?;
                    Ok(many_replies::many(
                        &outcome,
                        slice.unwrap_or_default(),
                        self.config.max_result_chars,
                    ))
                }
            }
        };
        self.with_progress(&context, outcome).await
    }

    /// Answer the pendingApproval of a run that codex_wait showed as
    /// `waiting_for_approval` (not one with askedPerson: the person decides).
    /// Accepting a question picks each one's first option. Then call
    /// codex_wait again.
    #[tool]
    async fn codex_approve(&self, Parameters(params): Parameters<ApproveParams>) -> ToolResult {
        let outcome = async {
            let engine = &self.engine().await?;
            let run_id = run_id(&params.run_id)?;
            let choice = match params.decision {
                DecisionParam::Accept => Choice::Accept,
                DecisionParam::Decline => Choice::Decline,
                DecisionParam::Cancel => Choice::Cancel,
            };
            engine
                .approve(&run_id, &params.approval_id, choice)
                .await
                .map_err(replies::failure)?;
            Ok(replies::approved(&run_id, &params.approval_id, choice))
        };
        answer(outcome).await
    }

    /// Stop a running run's Codex turn. Returns the run's final status
    /// (`interrupted`); a run that already ended is left as it is.
    #[tool]
    async fn codex_interrupt(&self, Parameters(params): Parameters<InterruptParams>) -> ToolResult {
        let outcome = async {
            let engine = &self.engine().await?;
            let run_id = run_id(&params.run_id)?;
            match engine.interrupt(&run_id).await.map_err(replies::failure)? {
                Interrupted::Requested => {
                    let outcome = engine
                        .wait(&run_id, Some(INTERRUPT_REPLY_WAIT))
                        .await
                        .map_err(replies::failure)?;
                    Ok(replies::wait_outcome(
                        &outcome,
                        INTERRUPT_REPLY_WAIT,
                        self.page(0),
                    ))
                }
                Interrupted::AlreadyEnded(status) => Ok(replies::already_ended(&run_id, status)),
            }
        };
        answer(outcome).await
    }

    /// The runs going on now: runId, title, elapsedMs.
    #[tool]
    async fn codex_active_runs(&self) -> ToolResult {
        let outcome = async {
            let active = self
                .engine()
                .await?
                .active_runs()
                .await
                .map_err(replies::failure)?;
            Ok(replies::active(&active))
        };
        answer(outcome).await
    }

    /// Recent runs of every project, newest first: runId, status, title.
    #[tool]
    async fn codex_runs(&self, Parameters(params): Parameters<RunsParams>) -> ToolResult {
        let outcome = async {
            let limit = params.limit.unwrap_or(RUNS_LIMIT_DEFAULT);
            if !(1..=RUNS_LIMIT_MAX).contains(&limit) {
                return Err(replies::failure(format!(
                    "limit must be 1..={RUNS_LIMIT_MAX}, not {limit}"
                )));
            }
            let runs = self
                .engine()
                .await?
                .recent_runs(limit as usize)
                .await
                .map_err(replies::failure)?;
            Ok(replies::runs(&runs))
        };
        answer(outcome).await
    }

    /// Check the setup: the Codex CLI and login, the app-server, the run
    /// directories. `ok` is true when nothing is wrong.
    #[tool]
    async fn codex_wrapper_check(&self) -> ToolResult {
        let backend = self.backend.clone().await;
        let mut health = crate::health::check(&self.config, &backend.codex, &self.cwd).await;
        if let Ok(engine) = &backend.engine {
            health.add_problems(engine.problems());
            health.add_news(engine.news());
        }
        let value = serde_json::to_value(&health).unwrap_or_default();
        Ok(CallToolResult::structured(value))
    }

    /// Talk with Codex in a persistent session: ask, get its reply.
    /// Pass the returned session_id to continue the same conversation.
    #[tool]
    async fn codex_chat(
        &self,
        Parameters(params): Parameters<ChatParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let outcome = self.converse(params.into());
        self.with_progress(&context, outcome).await
    }

    /// Ask Codex to critique a plan before it is carried out (no files are
    /// changed). Returns a critique and a session_id to follow up with.
    #[tool]
    async fn codex_plan(
        &self,
        Parameters(params): Parameters<PlanParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        self.with_progress(&context, self.converse(params.into()))
            .await
    }

    /// The same as codex_plan (its older name).
    #[tool]
    async fn codex_guard_plan(
        &self,
        Parameters(params): Parameters<PlanParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        self.codex_plan(Parameters(params), context).await
    }

    /// Ask Codex to review a finished change before it lands (no files are
    /// changed). Returns a review and a session_id to follow up with.
    #[tool]
    async fn codex_review(
        &self,
        Parameters(params): Parameters<ReviewParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        self.with_progress(&context, self.converse(params.into()))
            .await
    }

    /// The same as codex_review (its older name).
    #[tool]
    async fn codex_guard_final(
        &self,
        Parameters(params): Parameters<ReviewParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        self.codex_review(Parameters(params), context).await
    }
}

impl SidecarServer {
    /// Runs `work`, reporting progress to a client that sent a progress
    /// token (when CODEX_MCP_WRAPPER_PROGRESS is on) at most once per
    /// `PROGRESS_INTERVAL`. The ticker is dropped the moment `work` is done,
    /// so no notification can follow the reply.
    async fn with_progress(
        &self,
        context: &RequestContext<RoleServer>,
        work: impl std::future::Future<Output = Reply>,
    ) -> ToolResult {
        let token = self
            .config
            .progress
            .then(|| context.meta.get_progress_token())
            .flatten();
        let Some(token) = token else {
            return answer(work).await;
        };
        let peer = context.peer.clone();
        let ticker = async move {
            let started = tokio::time::Instant::now();
            let mut ticks =
                tokio::time::interval_at(started + PROGRESS_INTERVAL, PROGRESS_INTERVAL);
            // After a stall, wait a full interval again rather than catch up
            // in a burst: never more than one a second.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut count = 0u32;
            loop {
                ticks.tick().await;
                count += 1;
                let message = format!("waiting for Codex: {}s", started.elapsed().as_secs());
                let progress = ProgressNotificationParam::new(token.clone(), f64::from(count))
                    .with_message(message);
                if peer.notify_progress(progress).await.is_err() {
                    // The client is gone; the work itself notices that.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            output = answer(work) => output,
            never = ticker => match never {},
        }
    }

    /// Blocks until the run ends; the legacy tools answer `{threadId, content}`.
    async fn legacy_answer(
        &self,
        engine: &Engine,
        run_id: &RunId,
    ) -> Result<CallToolResult, CallToolResult> {
        match engine.wait(run_id, None).await.map_err(replies::failure)? {
            crate::actors::WaitOutcome::Finished(result) => Ok(replies::legacy(&result)),
            crate::actors::WaitOutcome::StillRunning { .. }
            | crate::actors::WaitOutcome::NeedsApproval { .. } => {
                Err(replies::failure("a blocking wait returned before the end"))
            }
        }
    }
    /// The handle at once (async), or the first wait slice's outcome.
    async fn follow(
        &self,
        engine: &Engine,
        started: &crate::actors::RunStarted,
        run_async: Option<bool>,
    ) -> Result<CallToolResult, CallToolResult> {
        if run_async.unwrap_or(true) {
            return Ok(replies::handle(started));
        }
        let slice = crate::wait_slice::wait_slice(None, None, self.config.wait_soft_timeout);
        let outcome = engine
            .wait(&started.run_id, slice)
            .await
            .map_err(replies::failure)?;
        Ok(replies::wait_outcome(
            &outcome,
            slice.unwrap_or_default(),
            self.page(0),
        ))
    }

    async fn converse(&self, conversation: Conversation) -> Reply {
        let engine = &self.engine().await?;
        let request = self.chat_request(conversation.prompt, conversation.settings)?;
        let reply = engine.chat(request).await.map_err(replies::failure)?;
        Ok(replies::conversation(&reply, conversation.field))
    }
}
