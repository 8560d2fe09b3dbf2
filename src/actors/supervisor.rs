//! `Supervisor`: owns the app-server (a private process, a lease on the
//! shared one, or only a connection to someone else's) and the connection to
//! it; spawns a `RunActor` per turn and routes each notification and server
//! request to the run of its thread; reconnects when the connection drops,
//! and fails the runs in flight when the app-server itself is gone.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::actors::approvals::Choice;
use crate::actors::broker::{BrokerMsg, BrokerRef};
use crate::actors::record::{RunSettings, ThreadExtras};
use crate::actors::resolve::{self, Located};
use crate::actors::run::{RunActor, RunArgs, RunMsg, RunRef, Start};
use crate::actors::types::{
    EngineError, ResumeRequest, ResumeTarget, RunRequest, RunResult, RunStarted,
};
use crate::appserver::account::LoginGate;
use crate::appserver::process::live_group_members;
use crate::appserver::shared::{SharedLease, SharedOptions, SharedPaths, ensure_shared};
use crate::appserver::{
    AppServerConnection, AppServerProcess, CapabilityToken, ConnectOptions, ServerEvent,
    SpawnOptions,
};
use crate::codex_bin::CodexBinary;
use crate::codex_config;
use crate::config::{AppServerMode, Config};
use crate::protocol::jsonrpc::RpcError;
use crate::store::{self, RunId};

/// Reconnect attempts after a drop, spaced by this base doubled each time:
/// 100 ms, 200 ms, … 3.2 s, about 6 s in all, which rides out an app-server
/// restart while a dead one is noticed quickly.
const RECONNECT_BASE: Duration = Duration::from_millis(100);
const RECONNECT_ATTEMPTS: u32 = 6;

/// After the connection drops, how long a private server may take to be
/// seen exiting. A killed process is reaped within milliseconds; a second
/// covers a loaded machine, and a live server never holds us up longer
/// before the reconnect.
const EXIT_SETTLE: Duration = Duration::from_secs(1);

/// JSON-RPC code for a server request no run claims.
const UNROUTED_REQUEST: i64 = -32001;

/// Ended runs whose thread and project are kept in memory for a resume:
/// as many as the broker keeps results for, a few hundred, which covers
/// any agent's working set; older ones are looked up on disk.
const ENDED_REMEMBERED: usize = 512;

pub struct Supervisor;

pub type SupervisorRef = ActorRef<SupervisorMsg>;

/// What an interrupt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// The turn is being stopped; waiters wake with `interrupted`.
    Requested,
    /// Nothing to stop: the run ended already (with this status, when
    /// known).
    AlreadyEnded(Option<crate::store::RunStatus>),
}

/// Whether a waited-on run that no actor had was finished or is now adopted.
pub enum Adopted {
    Finished(RunResult),
    Live,
}

pub enum SupervisorMsg {
    /// Call: start a new thread and turn.
    StartRun(RunRequest, RpcReplyPort<Result<RunStarted, EngineError>>),
    /// Call: a new turn on an earlier run's thread.
    Resume(ResumeRequest, RpcReplyPort<Result<RunStarted, EngineError>>),
    /// Call: the caller's answer to a request the run holds for it.
    Approve {
        run_id: RunId,
        approval_id: String,
        choice: Choice,
        reply: RpcReplyPort<Result<(), EngineError>>,
    },
    /// Call: stop a run's turn. A run that already ended is a no-op.
    Interrupt(RunId, RpcReplyPort<Result<Interrupted, EngineError>>),
    /// Call: a run the broker does not know: answer it from disk, or adopt it
    /// when its owner died while it ran.
    Adopt(RunId, RpcReplyPort<Result<Adopted, EngineError>>),
    /// From a run actor: events of this thread are its.
    Route { thread_id: String, run: RunRef },
    /// From a run actor that stopped: its thread and project are
    /// remembered for a resume.
    RunEnded {
        run_id: RunId,
        thread_id: String,
        cwd: PathBuf,
    },
    /// From a run actor that started a thread: its model and effort, which a
    /// later turn without overrides returns to (Codex keeps a turn's
    /// overrides for the turns after it).
    ThreadDefaults {
        thread_id: String,
        model: Option<String>,
        reasoning_effort: Option<String>,
    },
    /// From the connection's event pump; `generation` tells stale ones apart.
    Event { generation: u64, event: ServerEvent },
    /// A private app-server's stderr line.
    Stderr(String),
    /// Sent to itself after a drop.
    Reconnect { attempt: u32 },
    /// Sent to itself at start: adopt runs a dead sidecar left behind.
    RecoverOrphans,
}

pub struct SupervisorArgs {
    pub config: Config,
    pub codex: CodexBinary,
    pub broker: BrokerRef,
}

/// The live connection and what keeps its server.
struct Link {
    connection: AppServerConnection,
    url: String,
    /// The server's token file, for a terminal UI that attaches to a run.
    token_file: Option<PathBuf>,
    generation: u64,
    /// Whether Codex is logged in, asked before a run starts on this link.
    login: LoginGate,
}

pub struct SupervisorState {
    config: Config,
    codex: CodexBinary,
    broker: BrokerRef,
    link: Option<Link>,
    generation: u64,
    /// Mode `private`: our own app-server, stopped with us.
    private: Option<AppServerProcess>,
    /// Holds the token file for the private server.
    private_dir: Option<tempfile::TempDir>,
    /// Mode `shared`: keeps the shared server from exiting while we live.
    lease: Option<SharedLease>,
    routes: HashMap<String, RunRef>,
    runs: HashMap<RunId, RunRef>,
    /// Each thread's own model and effort, by thread id. Kept for this
    /// process's life: after a restart a thread keeps whatever its last
    /// turn used.
    thread_defaults: HashMap<String, (Option<String>, Option<String>)>,
    /// Codex config every thread we start or resume gets
    /// ([`crate::codex_config`]), read once at start.
    thread_config: serde_json::Map<String, serde_json::Value>,
    /// Runs that ended here, so that resuming one reads no index.
    ended: EndedRuns,
}

/// The thread and project of the runs that ended here, the most recent
/// [`ENDED_REMEMBERED`]. A resume names an earlier run; without this it
/// reads the pointer index, which holds every run the user ever had.
#[derive(Default)]
struct EndedRuns {
    runs: HashMap<RunId, (String, PathBuf)>,
    /// Oldest first, to forget beyond the limit.
    order: VecDeque<RunId>,
}

impl EndedRuns {
    fn remember(&mut self, run_id: RunId, thread_id: String, cwd: PathBuf) {
        if self.runs.insert(run_id.clone(), (thread_id, cwd)).is_none() {
            self.order.push_back(run_id);
        }
        while self.order.len() > ENDED_REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.runs.remove(&oldest);
            }
        }
    }

    fn get(&self, run_id: &RunId) -> Option<&(String, PathBuf)> {
        self.runs.get(run_id)
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: SupervisorRef,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        if matches!(args.config.app_server, AppServerMode::Shared { .. }) {
            myself.cast(SupervisorMsg::RecoverOrphans)?;
        }
        let codex_home = args.config.codex_home.clone();
        let thread_config =
            tokio::task::spawn_blocking(move || codex_config::thread_overrides(&codex_home))
                .await
                .unwrap_or_default();
        Ok(SupervisorState {
            thread_config,
            config: args.config,
            codex: args.codex,
            broker: args.broker,
            link: None,
            generation: 0,
            private: None,
            private_dir: None,
            lease: None,
            routes: HashMap::new(),
            runs: HashMap::new(),
            thread_defaults: HashMap::new(),
            ended: EndedRuns::default(),
        })
    }

    async fn post_stop(
        &self,
        _myself: SupervisorRef,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Runs stop with us (linked); then the private server goes. A shared
        // server stays for other sidecars, and our lease is released.
        if let Some(link) = state.link.take() {
            link.connection.close().await;
        }
        if let Some(process) = state.private.take()
            && let Err(error) = process.shutdown().await
        {
            tracing::warn!(%error, "stopping the private app-server failed");
        }
        state.lease = None;
        Ok(())
    }

    async fn handle(
        &self,
        myself: SupervisorRef,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::StartRun(request, reply) => {
                if let Err(error) = self.start_run(&myself, state, request, reply).await {
                    tracing::warn!(%error, "start run");
                }
            }
            SupervisorMsg::Resume(request, reply) => {
                if let Err((error, reply)) = self.resume(&myself, state, request, reply).await {
                    let _ = reply.send(Err(error));
                }
            }
            SupervisorMsg::Approve {
                run_id,
                approval_id,
                choice,
                reply,
            } => match state.runs.get(&run_id) {
                // The run answers the caller itself, once it has responded.
                Some(run) => {
                    let _ = run.cast(RunMsg::Approve {
                        approval_id,
                        choice,
                        reply,
                    });
                }
                None => {
                    let _ = reply.send(Err(EngineError::BadRequest(format!(
                        "run {run_id} is not running here, so it has nothing waiting for approval"
                    ))));
                }
            },
            SupervisorMsg::Interrupt(run_id, reply) => {
                let outcome = match state.runs.get(&run_id) {
                    Some(run) => run
                        .cast(RunMsg::Interrupt)
                        .map(|()| Interrupted::Requested)
                        .map_err(EngineError::from),
                    None => self.find(state, &run_id, None).await.map(|located| {
                        Interrupted::AlreadyEnded(located.ended.map(|end| end.status))
                    }),
                };
                let _ = reply.send(outcome);
            }
            SupervisorMsg::Adopt(run_id, reply) => {
                let adopted = self.adopt(&myself, state, run_id).await;
                let _ = reply.send(adopted);
            }
            SupervisorMsg::ThreadDefaults {
                thread_id,
                model,
                reasoning_effort,
            } => {
                state
                    .thread_defaults
                    .insert(thread_id, (model, reasoning_effort));
            }
            SupervisorMsg::Route { thread_id, run } => {
                state.routes.insert(thread_id, run);
            }
            SupervisorMsg::RunEnded {
                run_id,
                thread_id,
                cwd,
            } => {
                state.runs.remove(&run_id);
                state.ended.remember(run_id, thread_id.clone(), cwd);
                if let Some(run) = state.routes.get(&thread_id)
                    && !state
                        .runs
                        .values()
                        .any(|live| live.get_id() == run.get_id())
                {
                    state.routes.remove(&thread_id);
                }
            }
            SupervisorMsg::Event { generation, event } => {
                if state
                    .link
                    .as_ref()
                    .is_some_and(|link| link.generation == generation)
                {
                    self.on_event(&myself, state, event).await;
                }
            }
            SupervisorMsg::Stderr(line) => {
                for run in state.runs.values() {
                    let _ = run.cast(RunMsg::Stderr(line.clone()));
                }
            }
            SupervisorMsg::Reconnect { attempt } => self.reconnect(&myself, state, attempt).await,
            SupervisorMsg::RecoverOrphans => self.recover_orphans(&myself, state).await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: SupervisorRef,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // A run actor that panicked is gone; forget it so that its thread
        // can be resumed. Nothing is restarted: a run is one turn.
        if let SupervisionEvent::ActorFailed(cell, error) = event {
            tracing::error!(%error, "a run actor failed");
            state.runs.retain(|_, run| run.get_id() != cell.get_id());
            state.routes.retain(|_, run| run.get_id() != cell.get_id());
        }
        Ok(())
    }
}

impl Supervisor {
    async fn start_run(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        request: RunRequest,
        reply: RpcReplyPort<Result<RunStarted, EngineError>>,
    ) -> Result<(), EngineError> {
        if let Err(error) = validate(&request.prompt, Some(&request.cwd)) {
            let _ = reply.send(Err(error));
            return Ok(());
        }
        let connection = match self.ensure_ready(myself, state).await {
            Ok(connection) => connection,
            Err(error) => {
                let _ = reply.send(Err(error));
                return Ok(());
            }
        };
        let permissions = request
            .permissions
            .unwrap_or(state.config.default_permissions);
        let settings = RunSettings {
            permissions,
            sandbox: request.sandbox.unwrap_or(permissions.sandbox()),
            approval_policy: request
                .approval_policy
                .unwrap_or(permissions.approval_policy()),
            model: request.model.clone(),
            reasoning_effort: request.reasoning_effort.clone(),
            extras: ThreadExtras {
                config: codex_config::merged(&state.thread_config, request.extras.config.clone()),
                ..request.extras.clone()
            },
            interactive: request.interactive,
        };
        let title = store::title_for(request.run_name.as_deref(), &request.prompt);
        let args = self.run_args(
            myself,
            state,
            connection,
            Start::New { settings },
            request.prompt,
            title,
            request.cwd,
            request.timeout,
            Some(reply),
        );
        self.spawn_run(myself, state, args).await;
        Ok(())
    }

    async fn resume(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        request: ResumeRequest,
        reply: RpcReplyPort<Result<RunStarted, EngineError>>,
    ) -> Result<(), (EngineError, RpcReplyPort<Result<RunStarted, EngineError>>)> {
        if let Err(error) = validate(&request.prompt, request.cwd.as_deref()) {
            return Err((error, reply));
        }
        let (thread_id, cwd) = match self.thread_of(state, &request).await {
            Ok(found) => found,
            Err(error) => return Err((error, reply)),
        };
        if state.routes.contains_key(&thread_id) {
            let target = request.target.to_string();
            return Err((EngineError::StillRunning { target }, reply));
        }
        let connection = match self.ensure_ready(myself, state).await {
            Ok(connection) => connection,
            Err(error) => return Err((error, reply)),
        };
        let permissions = request
            .permissions
            .unwrap_or(state.config.default_permissions);
        // An override is for this request; without one, go back to the
        // thread's own model and effort.
        let (default_model, default_effort) = state
            .thread_defaults
            .get(&thread_id)
            .cloned()
            .unwrap_or_default();
        let settings = RunSettings {
            permissions,
            sandbox: request.sandbox.unwrap_or(permissions.sandbox()),
            approval_policy: request
                .approval_policy
                .unwrap_or(permissions.approval_policy()),
            model: request.model.clone().or(default_model),
            reasoning_effort: request.reasoning_effort.clone().or(default_effort),
            extras: ThreadExtras {
                config: codex_config::merged(&state.thread_config, None),
                ..ThreadExtras::default()
            },
            interactive: request.interactive,
        };
        let title = store::title_for(None, &request.prompt);
        let start = Start::Resume {
            thread_id,
            settings,
            chosen_access: request.chooses_access(),
        };
        let args = self.run_args(
            myself,
            state,
            connection,
            start,
            request.prompt,
            title,
            cwd,
            request.timeout,
            Some(reply),
        );
        self.spawn_run(myself, state, args).await;
        Ok(())
    }

    /// The thread a resume goes on, and the project it runs in.
    async fn thread_of(
        &self,
        state: &SupervisorState,
        request: &ResumeRequest,
    ) -> Result<(String, PathBuf), EngineError> {
        match &request.target {
            ResumeTarget::Run(run_id) => {
                if let Some((thread_id, cwd)) = state.ended.get(run_id) {
                    let cwd = request.cwd.clone().unwrap_or_else(|| cwd.clone());
                    return Ok((thread_id.clone(), cwd));
                }
                let earlier = self.find(state, run_id, request.cwd.clone()).await?;
                let cwd = request.cwd.clone().unwrap_or(earlier.cwd);
                Ok((earlier.thread_id, cwd))
            }
            ResumeTarget::Thread(thread_id) => {
                if let Some(cwd) = &request.cwd {
                    return Ok((thread_id.clone(), cwd.clone()));
                }
                let (config, id) = (state.config.clone(), thread_id.clone());
                tokio::task::spawn_blocking(move || resolve::project_of_thread(&config, &id))
                    .await
                    .map_err(|error| EngineError::Actor(error.to_string()))?
                    .map(|cwd| (thread_id.clone(), cwd))
                    .ok_or_else(|| EngineError::UnknownSession(thread_id.clone()))
            }
        }
    }

    /// A run's thread and project: live runs first, then the disk.
    async fn find(
        &self,
        state: &SupervisorState,
        run_id: &RunId,
        cwd_hint: Option<PathBuf>,
    ) -> Result<Located, EngineError> {
        let config = state.config.clone();
        let id = run_id.clone();
        tokio::task::spawn_blocking(move || resolve::locate(&config, &id, cwd_hint.as_deref()))
            .await
            .map_err(|error| EngineError::Actor(error.to_string()))?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))
    }

    async fn adopt(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        run_id: RunId,
    ) -> Result<Adopted, EngineError> {
        let located = self.find(state, &run_id, None).await?;
        if let Some(end) = &located.ended {
            let (located, end) = (located.clone(), end.clone());
            let result =
                tokio::task::spawn_blocking(move || resolve::finished_result(&located, &end))
                    .await
                    .map_err(|error| EngineError::Actor(error.to_string()))?;
            return Ok(Adopted::Finished(result));
        }
        match &located.active {
            Some(active)
                if resolve::process_alive(active.pid) && active.pid != std::process::id() =>
            {
                Err(EngineError::BadRequest(format!(
                    "run {run_id} belongs to the sidecar with pid {}, which is still running; wait there",
                    active.pid
                )))
            }
            Some(_) => {
                self.adopt_located(myself, state, located).await?;
                Ok(Adopted::Live)
            }
            None => Err(EngineError::BadRequest(format!(
                "run {run_id} has no end record and is not listed as running; its audit is incomplete"
            ))),
        }
    }

    async fn adopt_located(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        located: Located,
    ) -> Result<(), EngineError> {
        let Some(active) = located.active.clone() else {
            return Ok(());
        };
        if state.runs.contains_key(&located.run_id) {
            return Ok(());
        }
        let connection = self.ensure_link(myself, state).await?;
        // The broker hears of the run before anyone is told to wait on it.
        state.broker.cast(BrokerMsg::Started {
            run_id: located.run_id.clone(),
            thread_id: located.thread_id.clone(),
            title: active.title.clone(),
            cwd: located.cwd.clone(),
        })?;
        let args = self.run_args(
            myself,
            state,
            connection,
            Start::Recover(Box::new(active.clone())),
            String::new(),
            active.title.clone(),
            located.cwd.clone(),
            None,
            None,
        );
        let mut args = args;
        args.run_id = located.run_id.clone();
        args.run_dir = located.run_dir.clone();
        self.spawn_run(myself, state, args).await;
        Ok(())
    }

    async fn recover_orphans(&self, myself: &SupervisorRef, state: &mut SupervisorState) {
        let AppServerMode::Shared { url } = &state.config.app_server else {
            return;
        };
        let (config, url) = (state.config.clone(), url.clone());
        let orphans = tokio::task::spawn_blocking(move || resolve::orphans(&config, &url))
            .await
            .unwrap_or_default();
        for located in orphans {
            tracing::info!(run_id = %located.run_id, "adopting a run whose sidecar died");
            if let Err(error) = self.adopt_located(myself, state, located).await {
                tracing::warn!(%error, "could not adopt an orphaned run");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run_args(
        &self,
        myself: &SupervisorRef,
        state: &SupervisorState,
        connection: AppServerConnection,
        start: Start,
        prompt: String,
        title: String,
        cwd: PathBuf,
        timeout: Option<Duration>,
        reply: Option<RpcReplyPort<Result<RunStarted, EngineError>>>,
    ) -> RunArgs {
        RunArgs {
            run_id: RunId::generate(),
            start,
            prompt,
            title,
            run_dir: state.config.run_dir(&cwd),
            cwd,
            connection,
            supervisor: myself.clone(),
            broker: state.broker.clone(),
            pointer_index: state.config.pointer_index(),
            app_server_url: state
                .link
                .as_ref()
                .map(|link| link.url.clone())
                .unwrap_or_default(),
            app_server_token_file: state.link.as_ref().and_then(|link| link.token_file.clone()),
            timeout: timeout.unwrap_or(state.config.run_timeout),
            reply,
        }
    }

    async fn spawn_run(&self, myself: &SupervisorRef, state: &mut SupervisorState, args: RunArgs) {
        let run_id = args.run_id.clone();
        match Actor::spawn_linked(None, RunActor, args, myself.get_cell()).await {
            Ok((run, _)) => {
                state.runs.insert(run_id, run);
            }
            // pre_start only moves its arguments; this means the runtime is
            // shutting down, and the reply port went with the arguments.
            Err(error) => tracing::error!(%error, "could not spawn a run actor"),
        }
    }

    /// The current connection, establishing one (and the server, by mode)
    /// when there is none.
    async fn ensure_link(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
    ) -> Result<AppServerConnection, EngineError> {
        if let Some(link) = &state.link
            && !link.connection.is_closed()
        {
            return Ok(link.connection.clone());
        }
        let (url, token, token_file) = match state.config.app_server.clone() {
            AppServerMode::Private => {
                if state.private.is_none() {
                    let dir = tempfile::tempdir().map_err(|source| store::StoreError::Io {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                    let mut options =
                        SpawnOptions::loopback(state.codex.path.clone(), dir.path().join("token"));
                    options.codex_home = Some(state.config.codex_home.clone());
                    options.log_filter = state.config.app_server_log.clone();
                    let process = AppServerProcess::spawn(options).await?;
                    forward_stderr(myself, &process);
                    state.private = Some(process);
                    state.private_dir = Some(dir);
                }
                let process = state
                    .private
                    .as_ref()
                    .ok_or_else(|| EngineError::Actor("private app-server vanished".to_string()))?;
                let token_file = state
                    .private_dir
                    .as_ref()
                    .map(|dir| dir.path().join("token"));
                (
                    process.url().to_string(),
                    Some(process.token().clone()),
                    token_file,
                )
            }
            AppServerMode::Shared { url } => {
                let lease = ensure_shared(&SharedOptions {
                    url: url.clone(),
                    pointer_dir: state.config.pointer_dir.clone(),
                    codex_bin: state.codex.path.clone(),
                    codex_home: Some(state.config.codex_home.clone()),
                    idle_exit: state.config.shared_idle_exit,
                    cli_version: Some(state.codex.version.clone()),
                })
                .await?;
                let token = lease.token.clone();
                state.lease = Some(lease);
                let token_file = SharedPaths::new(&state.config.pointer_dir).token();
                (url, Some(token), Some(token_file))
            }
            AppServerMode::Unix { path } => (
                format!("unix://{}", path.display()),
                None::<CapabilityToken>,
                None,
            ),
        };
        let (connection, events) =
            AppServerConnection::connect(ConnectOptions::new(url.clone(), token)).await?;
        state.generation += 1;
        let generation = state.generation;
        pump_events(myself, generation, events);
        state.link = Some(Link {
            connection: connection.clone(),
            url,
            token_file,
            generation,
            login: LoginGate::default(),
        });
        Ok(connection)
    }

    /// The link for a new turn: [`Self::ensure_link`], then the login
    /// check, so a logged-out Codex refuses the run at once instead of
    /// starting a turn that retries against OpenAI. Recovery and reconnects
    /// skip it: their turns run already.
    async fn ensure_ready(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
    ) -> Result<AppServerConnection, EngineError> {
        let connection = self.ensure_link(myself, state).await?;
        if let Some(link) = state.link.as_mut() {
            link.login
                .admit(&connection, &state.config.codex_home, &state.codex)
                .await?;
        }
        Ok(connection)
    }

    async fn on_event(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        event: ServerEvent,
    ) {
        match event {
            ServerEvent::Notification(note) => {
                if let Some(run) = note.thread_id().and_then(|thread| state.routes.get(thread)) {
                    let _ = run.cast(RunMsg::Notification(note));
                }
            }
            ServerEvent::Request(request) => {
                match request
                    .thread_id()
                    .and_then(|thread| state.routes.get(thread))
                {
                    Some(run) => {
                        let _ = run.cast(RunMsg::Request(request));
                    }
                    None => {
                        // Never leave a request hanging, even one no run claims.
                        let error = RpcError {
                            code: UNROUTED_REQUEST,
                            message: format!("no run of this sidecar owns {}", request.method),
                            data: None,
                        };
                        if let Some(link) = &state.link {
                            let _ = link.connection.respond_error(&request.id, &error).await;
                        }
                    }
                }
            }
            ServerEvent::Disconnected { reason } => {
                tracing::warn!(%reason, "app-server connection lost");
                state.link = None;
                if self.server_gone(state).await {
                    self.fail_runs(
                        state,
                        &format!("the app-server exited while the run was in flight ({reason})"),
                    );
                } else {
                    self.reconnect(myself, state, 0).await;
                }
            }
        }
    }

    /// Whether the app-server itself is gone (not just our connection).
    async fn server_gone(&self, state: &mut SupervisorState) -> bool {
        match state.config.app_server.clone() {
            AppServerMode::Private => {
                let Some(process) = state.private.as_mut() else {
                    return true;
                };
                // The socket closes the instant the server dies, a moment
                // before the kernel has torn it down: its exit is the answer.
                let exited = tokio::time::timeout(EXIT_SETTLE, process.wait())
                    .await
                    .is_ok();
                let gone = exited || live_group_members(process.pgid()).is_empty();
                if gone && let Some(mut process) = state.private.take() {
                    // Reap the rest of the group; the next request starts anew.
                    let _ = process.kill();
                    let _ = process.wait().await;
                }
                gone
            }
            AppServerMode::Shared { url } => {
                let refused = tcp_refused(&url).await;
                if refused {
                    state.lease = None;
                }
                refused
            }
            AppServerMode::Unix { path } => tokio::net::UnixStream::connect(&path).await.is_err(),
        }
    }

    fn fail_runs(&self, state: &mut SupervisorState, reason: &str) {
        for run in state.runs.values() {
            let _ = run.cast(RunMsg::ServerGone(reason.to_string()));
        }
    }

    async fn reconnect(&self, myself: &SupervisorRef, state: &mut SupervisorState, attempt: u32) {
        if state.link.is_some() || state.runs.is_empty() {
            // Connected again already, or nothing needs the connection now:
            // the next request connects.
            return;
        }
        match self.ensure_link(myself, state).await {
            Ok(connection) => {
                for run in state.runs.values() {
                    let _ = run.cast(RunMsg::Reconnected(connection.clone()));
                }
            }
            Err(_) if self.server_gone(state).await => {
                self.fail_runs(state, "the app-server exited while the run was in flight");
            }
            Err(error) if attempt + 1 < RECONNECT_ATTEMPTS => {
                tracing::warn!(%error, attempt, "reconnect failed; retrying");
                let delay = RECONNECT_BASE * 2u32.pow(attempt);
                myself.send_after(delay, move || SupervisorMsg::Reconnect {
                    attempt: attempt + 1,
                });
            }
            Err(error) => {
                self.fail_runs(
                    state,
                    &format!("lost the app-server connection and could not reconnect: {error}"),
                );
            }
        }
    }
}

/// The longest prompt Codex takes in one turn, in characters: its own
/// `MAX_USER_INPUT_TEXT_CHARS` (1 << 20), which `turn/start` enforces. Checked
/// here as well so that a prompt over it is refused before a thread is
/// started or anything is written, with a message that says what to do.
pub const MAX_PROMPT_CHARS: usize = 1 << 20;

/// Bad input is refused before anything is written.
fn validate(prompt: &str, cwd: Option<&std::path::Path>) -> Result<(), EngineError> {
    if prompt.trim().is_empty() {
        return Err(EngineError::BadRequest("the prompt is empty".to_string()));
    }
    // A string of at most that many bytes has at most that many characters:
    // only a long one is counted.
    if prompt.len() > MAX_PROMPT_CHARS {
        let chars = prompt.chars().count();
        if chars > MAX_PROMPT_CHARS {
            return Err(EngineError::BadRequest(format!(
                "the prompt is too long: {chars} characters, Codex takes at most \
                 {MAX_PROMPT_CHARS}; put the long part in a file and name the file"
            )));
        }
    }
    if let Some(cwd) = cwd {
        if !cwd.is_absolute() {
            return Err(EngineError::BadRequest(format!(
                "cwd {} is not an absolute path",
                cwd.display()
            )));
        }
        if !cwd.is_dir() {
            return Err(EngineError::BadRequest(format!(
                "cwd {} does not exist or is not a directory",
                cwd.display()
            )));
        }
        // Codex would fail later, after a thread was started and audited,
        // with a less direct message.
        if let Err(error) = std::fs::read_dir(cwd) {
            return Err(EngineError::BadRequest(format!(
                "cwd {} is not readable: {error}",
                cwd.display()
            )));
        }
    }
    Ok(())
}

/// Moves the connection's events into the supervisor's mailbox.
fn pump_events(
    myself: &SupervisorRef,
    generation: u64,
    mut events: tokio::sync::mpsc::Receiver<ServerEvent>,
) {
    let supervisor = myself.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if supervisor
                .cast(SupervisorMsg::Event { generation, event })
                .is_err()
            {
                break;
            }
        }
    });
}

fn forward_stderr(myself: &SupervisorRef, process: &AppServerProcess) {
    let supervisor = myself.clone();
    let mut lines = process.stderr().subscribe();
    tokio::spawn(async move {
        loop {
            match lines.recv().await {
                Ok(line) => {
                    if supervisor.cast(SupervisorMsg::Stderr(line)).is_err() {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    let note = format!("[{missed} app-server stderr lines were dropped]");
                    let _ = supervisor.cast(SupervisorMsg::Stderr(note));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// A TCP connect to the URL's port is refused: nothing listens there.
async fn tcp_refused(url: &str) -> bool {
    let authority = url
        .strip_prefix("ws://")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .unwrap_or(url);
    matches!(
        tokio::net::TcpStream::connect(authority).await,
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused
    )
}
