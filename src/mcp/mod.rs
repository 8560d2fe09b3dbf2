//! The MCP server (rmcp, stdio). Each tool checks its input, translates it
//! into one engine call, and shapes the reply; the work happens in the
//! actors. stdout is the protocol: logs go to stderr.

pub mod framing;
pub mod params;
#[cfg(test)]
mod properties;
pub mod replies;
mod tasks;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    ProgressNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::model::{CancelTaskParams, GetTaskParams, GetTaskResult, UpdateTaskParams};
use rmcp::service::RequestContext;
use rmcp::task_manager::TaskManager;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};

use crate::actors::ThreadExtras;
use crate::actors::approvals::Choice;
use crate::actors::{ChatRequest, Engine, Interrupted, ResumeRequest, ResumeTarget, RunRequest};
use crate::appserver::connection::LATENCY_TARGET;
use crate::codex_bin::{CodexBinary, NoUsableCodex};
use crate::config::{Config, Permissions, ToolFamilies};
use crate::protocol::{ApprovalPolicy, SandboxMode};
use crate::store::RunId;
use params::*;

/// A run may be given at most a day: a larger number is a mistake (seconds
/// for milliseconds, say), not a plan.
const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// Conversations answer within this range (ms), 2 minutes by default: long
/// enough for a considered reply, short enough to stay a conversation.
const CHAT_TIMEOUT_MIN_MS: u64 = 1_000;
const CHAT_TIMEOUT_MAX_MS: u64 = 600_000;
const CHAT_TIMEOUT_DEFAULT_MS: u64 = 120_000;

/// How long codex_interrupt waits for Codex to confirm the turn stopped
/// (the run actor itself gives up after 5 s), so it can answer with the
/// final status.
const INTERRUPT_REPLY_WAIT: Duration = Duration::from_secs(15);

/// At most one progress notification a second: enough to show life
/// without flooding the client.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// How long the last replies may take to reach stdout once the client has
/// closed stdin: a client still reading takes them at once; one that has
/// stopped reading must not keep the process alive.
const FINAL_WRITE_GRACE: Duration = Duration::from_secs(5);

const RUNS_LIMIT_DEFAULT: u64 = 20;
const RUNS_LIMIT_MAX: u64 = 200;

/// Serves MCP on stdio until the client closes it. Codex is looked for (and
/// the engine started) meanwhile, not first: `codex --version` runs the npm
/// launcher, a Node.js process that takes tens of milliseconds, which
/// `initialize` and `tools/list` need not wait for. A tool that needs the
/// engine waits for it.
pub async fn serve_stdio() -> Result<(), String> {
    let config = Config::from_env().map_err(|error| error.to_string())?;
    let cwd = std::env::current_dir().map_err(|error| error.to_string())?;
    let server = SidecarServer::starting(config.clone(), cwd, start_backend(config));
    let backend = server.backend.clone();
    // Started now, whether or not a tool asks.
    tokio::spawn(backend.clone());
    let (stdin, stdout) = rmcp::transport::stdio();
    let guarded = framing::guard(stdin, stdout);
    let outcome = match server.serve((guarded.to_rmcp, guarded.from_rmcp)).await {
        Ok(service) => service
            .waiting()
            .await
            .map(|_| ())
            .map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    };
    // rmcp's output is closed now; let the guard write what is left.
    if tokio::time::timeout(FINAL_WRITE_GRACE, guarded.writer)
        .await
        .is_err()
    {
        tracing::warn!("stdout did not take the last replies in time");
    }
    if let Ok(engine) = backend.await.engine {
        engine.shutdown().await;
    }
    outcome
}

/// Finds Codex and starts the engine on it.
async fn start_backend(config: Config) -> Backend {
    let codex = CodexBinary::discover().await.map_err(NoUsableCodex::from);
    let engine = match &codex {
        Ok(codex) => Engine::start(config, codex.clone()).await.map_err(|error| {
            tracing::error!(%error, "the engine could not start");
            format!("the engine could not start: {error}")
        }),
        // The server still serves, so that codex_wrapper_check can say why.
        Err(error) => {
            tracing::warn!(%error, "no usable Codex CLI; only codex_wrapper_check works");
            Err(error.to_string())
        }
    };
    Backend { codex, engine }
}

/// The Codex CLI found (or why not) and the engine on it (or why not).
#[derive(Clone)]
struct Backend {
    codex: Result<CodexBinary, NoUsableCodex>,
    engine: Result<Engine, String>,
}

/// The backend, once found: every clone resolves to the same one.
type SharedBackend = Shared<BoxFuture<'static, Backend>>;

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
async fn answer(outcome: impl std::future::Future<Output = Reply>) -> ToolResult {
    Ok(outcome.await.unwrap_or_else(|failure| failure))
}

#[tool_router]
impl SidecarServer {
    pub fn new(
        config: Config,
        codex: Result<CodexBinary, impl Into<NoUsableCodex>>,
        engine: Option<Engine>,
        cwd: PathBuf,
    ) -> SidecarServer {
        let codex = codex.map_err(Into::into);
        let engine = match (engine, &codex) {
            (Some(engine), _) => Ok(engine),
            (None, Err(error)) => Err(error.to_string()),
            (None, Ok(_)) => Err("the engine is not running".to_string()),
        };
        let backend = Backend { codex, engine };
        SidecarServer::starting(config, cwd, std::future::ready(backend))
    }

    /// A server whose backend is still being found.
    fn starting(
        config: Config,
        cwd: PathBuf,
        backend: impl std::future::Future<Output = Backend> + Send + 'static,
    ) -> SidecarServer {
        let mut tool_router = Self::tool_router();
        let listed: Vec<String> = tool_router
            .list_all()
            .into_iter()
            .map(|tool| tool.name.to_string())
            .collect();
        for name in listed {
            if !family_enabled(&config.tools, &name) {
                tool_router.remove_route(&name);
            }
        }
        SidecarServer {
            config,
            backend: backend.boxed().shared(),
            cwd,
            tool_router,
            tasks: TaskManager::new(),
        }
    }

    /// Start a Codex session, and answer when its turn ends. (The `codex`
    /// tool of Codex's removed built-in MCP server; continue with
    /// codex-reply.)
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
            let request = ResumeRequest::new(ResumeTarget::Thread(thread_id), params.prompt);
            let started = engine.resume(request).await.map_err(replies::failure)?;
            self.legacy_answer(engine, &started.run_id).await
        };
        self.with_progress(&context, outcome).await
    }

    /// Start Codex on a task in the background and get a runId at once.
    /// Then call codex_wait with that runId; on `still_running`, call
    /// codex_wait again with the same runId until the result comes.
    #[tool]
    async fn codex_run(
        &self,
        Parameters(params): Parameters<RunParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let outcome = async {
            let engine = &self.engine().await?;
            let run_async = params.run_async;
            let request = self.run_request(params)?;
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
            let request = self.resume_request(params)?;
            let started = engine.resume(request).await.map_err(replies::failure)?;
            self.follow(engine, &started, run_async).await
        };
        self.with_progress(&context, outcome).await
    }

    /// Wait for a run: returns the result as soon as it ends, or
    /// `still_running` with progress after the soft timeout; then call
    /// codex_wait again with the same runId.
    #[tool]
    async fn codex_wait(
        &self,
        Parameters(params): Parameters<WaitParams>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let outcome = async {
            let engine = &self.engine().await?;
            let run_id = run_id(&params.run_id)?;
            if let Some(ms) = params.soft_timeout_ms {
                bounded(ms, "soft_timeout_ms")?;
            }
            if let Some(ms) = params.timeout_ms {
                bounded(ms, "timeout_ms")?;
            }
            let slice = crate::wait_slice::wait_slice(
                params.soft_timeout_ms,
                params.timeout_ms,
                self.config.wait_soft_timeout,
            );
            let outcome = engine
                .wait(&run_id, slice)
                .await
                .map_err(replies::failure)?;
            let offset = usize::try_from(params.offset.unwrap_or(0)).unwrap_or(usize::MAX);
            let reply =
                replies::wait_outcome(&outcome, slice.unwrap_or_default(), self.page(offset));
            tracing::debug!(
                target: LATENCY_TARGET,
                run_id = %run_id,
                outcome = outcome.kind(),
                "codex_wait reply"
            );
            Ok(reply)
        };
        self.with_progress(&context, outcome).await
    }

    /// Answer a request a run is waiting on (codex_wait showed it as
    /// `waiting_for_approval` with a pendingApproval): accept, decline or
    /// cancel. Accepting a question (kind userInput) answers each with its
    /// first, recommended option. The run goes on; call codex_wait again.
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

    /// Check the setup: the Codex CLI, its home, the run directory, the
    /// pointer index, the app-server, the Codex login and the sidecar's own
    /// actors. `ok` is true when nothing is wrong.
    #[tool]
    async fn codex_wrapper_check(&self) -> ToolResult {
        let backend = self.backend.clone().await;
        let mut health = crate::health::check(&self.config, &backend.codex, &self.cwd).await;
        if let Ok(engine) = &backend.engine {
            health.add_problems(engine.problems());
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
        let outcome = self.converse(params.prompt, params.settings, "reply");
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
        let prompt = crate::prompts::plan_critique(
            &params.requirements,
            &params.plan,
            params.constraints.as_deref(),
        );
        self.with_progress(&context, self.converse(prompt, params.settings, "critique"))
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
        let prompt = crate::prompts::change_review(
            &params.change_summary,
            params.test_results.as_deref(),
            params.open_questions.as_deref(),
        );
        self.with_progress(&context, self.converse(prompt, params.settings, "review"))
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
    /// The engine, once started; a tool error saying why when it could not.
    async fn engine(&self) -> Result<Engine, CallToolResult> {
        self.backend.clone().await.engine.map_err(replies::failure)
    }

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

    /// `codex_run`'s parameters as an engine request.
    fn run_request(&self, params: RunParams) -> Result<RunRequest, CallToolResult> {
        let mut request =
            RunRequest::new(params.prompt, self.cwd_or_default(params.cwd.as_deref()));
        request.run_name = params.run_name;
        request.permissions = params.permissions.map(permissions);
        request.sandbox = params.sandbox.map(sandbox);
        request.approval_policy = params.approval_policy.map(approval);
        request.interactive = asks(request.approval_policy);
        request.model = params.model;
        request.reasoning_effort = params.reasoning_effort;
        request.timeout = run_timeout(params.timeout_ms)?;
        Ok(request)
    }

    /// `codex_resume`'s parameters as an engine request.
    fn resume_request(&self, params: ResumeParams) -> Result<ResumeRequest, CallToolResult> {
        let mut request =
            ResumeRequest::new(ResumeTarget::Run(run_id(&params.run_id)?), params.prompt);
        request.cwd = params.cwd.as_deref().map(|cwd| self.absolute(cwd));
        request.permissions = params.permissions.map(permissions);
        request.sandbox = params.sandbox.map(sandbox);
        request.approval_policy = params.approval_policy.map(approval);
        request.interactive = asks(request.approval_policy);
        request.model = params.model;
        request.reasoning_effort = params.reasoning_effort;
        request.timeout = run_timeout(params.timeout_ms)?;
        Ok(request)
    }

    /// The legacy `codex` tool's parameters as an engine request.
    fn legacy_request(&self, params: LegacyCodexParams) -> Result<RunRequest, CallToolResult> {
        let mut request =
            RunRequest::new(params.prompt, self.cwd_or_default(params.cwd.as_deref()));
        request.sandbox = params.sandbox.map(sandbox);
        request.approval_policy = params.approval_policy.map(approval);
        request.model = params.model;
        // A profile's settings first, so explicit config overrides win.
        let mut config = match &params.profile {
            Some(profile) => profile_settings(&self.config.codex_home, profile)?,
            None => serde_json::Map::new(),
        };
        config.extend(params.config.unwrap_or_default());
        if let Some(compact_prompt) = params.compact_prompt {
            config.insert("compact_prompt".into(), compact_prompt.into());
        }
        request.extras = ThreadExtras {
            config: (!config.is_empty()).then_some(config),
            base_instructions: params.base_instructions,
            developer_instructions: params.developer_instructions,
        };
        Ok(request)
    }

    fn page(&self, offset: usize) -> replies::Page {
        replies::Page {
            offset,
            max_chars: self.config.max_result_chars,
        }
    }

    fn absolute(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.cwd.join(path)
        }
    }

    fn cwd_or_default(&self, cwd: Option<&str>) -> PathBuf {
        cwd.map(|cwd| self.absolute(cwd))
            .unwrap_or_else(|| self.cwd.clone())
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

    async fn converse(&self, prompt: String, settings: ConversationSettings, field: &str) -> Reply {
        let engine = &self.engine().await?;
        let request = self.chat_request(prompt, settings)?;
        let reply = engine.chat(request).await.map_err(replies::failure)?;
        Ok(replies::conversation(&reply, field))
    }

    /// A conversation tool's prompt and settings as an engine request.
    fn chat_request(
        &self,
        prompt: String,
        settings: ConversationSettings,
    ) -> Result<ChatRequest, CallToolResult> {
        {
            let timeout_ms = settings.timeout_ms.unwrap_or(CHAT_TIMEOUT_DEFAULT_MS);
            if !(CHAT_TIMEOUT_MIN_MS..=CHAT_TIMEOUT_MAX_MS).contains(&timeout_ms) {
                return Err(replies::failure(format!(
                    "timeout_ms must be {CHAT_TIMEOUT_MIN_MS}..={CHAT_TIMEOUT_MAX_MS}, not {timeout_ms}"
                )));
            }
            let cwd = match (&settings.session_id, settings.cwd.as_deref()) {
                (_, Some(cwd)) => Some(self.absolute(cwd)),
                (None, None) => Some(self.cwd.clone()),
                (Some(_), None) => None,
            };
            Ok(ChatRequest {
                session_id: settings.session_id,
                prompt,
                cwd,
                model: settings.model,
                reasoning_effort: settings.reasoning_effort,
                timeout: Duration::from_millis(timeout_ms),
                started: None,
            })
        }
    }
}

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
        if let Err(error) = params::check_arguments(&request.name, arguments) {
            return Ok(replies::failure(error.to_string()).into());
        }
        let tasks_declared = context
            .client_capabilities()
            .is_some_and(|capabilities| capabilities.supports_tasks());
        if tasks_declared && let Some(response) = self.call_as_task(&request).await {
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

/// A Codex profile's settings, as `codex --profile NAME` reads them:
/// `$CODEX_HOME/NAME.config.toml`. The app-server takes no profile per
/// thread, so they travel as config overrides.
fn profile_settings(
    codex_home: &Path,
    name: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, CallToolResult> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(replies::failure(format!(
            "profile {name:?} is not a profile name"
        )));
    }
    let path = codex_home.join(format!("{name}.config.toml"));
    let text = std::fs::read_to_string(&path).map_err(|error| {
        replies::failure(format!(
            "profile {name}: cannot read {}: {error}",
            path.display()
        ))
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|error| {
        replies::failure(format!(
            "profile {name}: {} is not valid TOML: {error}",
            path.display()
        ))
    })?;
    match serde_json::to_value(table) {
        Ok(serde_json::Value::Object(settings)) => Ok(settings),
        _ => Err(replies::failure(format!(
            "profile {name}: unusable settings"
        ))),
    }
}

/// Whether a tool's family is listed (CODEX_MCP_WRAPPER_TOOLS).
fn family_enabled(families: &ToolFamilies, tool: &str) -> bool {
    match tool {
        "codex" | "codex-reply" => families.legacy,
        "codex_chat" | "codex_plan" | "codex_guard_plan" | "codex_review" | "codex_guard_final" => {
            families.persistent
        }
        _ => families.sidecar,
    }
}

fn run_id(text: &str) -> Result<RunId, CallToolResult> {
    RunId::parse(text).map_err(replies::failure)
}

/// `None` for 0 (no bound), an error beyond a day.
fn bounded(ms: u64, name: &str) -> Result<Option<Duration>, CallToolResult> {
    if ms > MAX_TIMEOUT_MS {
        return Err(replies::failure(format!(
            "{name} must be at most {MAX_TIMEOUT_MS} ms, not {ms}"
        )));
    }
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

fn run_timeout(ms: Option<u64>) -> Result<Option<Duration>, CallToolResult> {
    match ms {
        None => Ok(None),
        Some(0) => Err(replies::failure("timeout_ms must be greater than 0")),
        Some(ms) => bounded(ms, "timeout_ms"),
    }
}

/// A policy that asks makes the caller the one who answers.
fn asks(policy: Option<ApprovalPolicy>) -> bool {
    policy.is_some_and(|policy| policy != ApprovalPolicy::Never)
}

fn permissions(param: PermissionsParam) -> Permissions {
    match param {
        PermissionsParam::Yolo => Permissions::Yolo,
        PermissionsParam::WorkspaceWrite => Permissions::WorkspaceWrite,
        PermissionsParam::ReadOnly => Permissions::ReadOnly,
    }
}

fn sandbox(param: SandboxParam) -> SandboxMode {
    match param {
        SandboxParam::ReadOnly => SandboxMode::ReadOnly,
        SandboxParam::WorkspaceWrite => SandboxMode::WorkspaceWrite,
        SandboxParam::DangerFullAccess => SandboxMode::DangerFullAccess,
    }
}

fn approval(param: ApprovalParam) -> ApprovalPolicy {
    match param {
        ApprovalParam::Never => ApprovalPolicy::Never,
        ApprovalParam::OnRequest => ApprovalPolicy::OnRequest,
        ApprovalParam::OnFailure => ApprovalPolicy::OnFailure,
        ApprovalParam::Untrusted => ApprovalPolicy::Untrusted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every routed tool has its parameters in `params`, so no tool skips
    /// the argument check.
    #[test]
    fn every_tool_has_its_arguments_checked() {
        let mut routed: Vec<String> = SidecarServer::tool_router()
            .list_all()
            .into_iter()
            .map(|tool| tool.name.to_string())
            .collect();
        routed.sort();
        let mut checked: Vec<String> = params::tool_names().map(str::to_string).collect();
        checked.sort();
        assert_eq!(routed, checked);
    }
}
