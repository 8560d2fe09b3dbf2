//! `Supervisor`: owns the app-server's [`Backend`] (a private process, a
//! lease on the shared one, or only someone else's socket) and the
//! connection to it; spawns a `RunActor` per turn and routes each
//! notification and server request to the run of its thread; reconnects
//! when the connection drops, and fails the runs in flight when the
//! app-server itself is gone.
//!
//! Its `handle` never waits on a process, a socket or a file: connecting
//! runs in a task (`link.rs`) while the requests that need the link queue
//! (`start_queue.rs`), and disk look-ups run in tasks (`lookup.rs`).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::actors::approvals::Choice;
use crate::actors::broker::{BrokerMsg, BrokerRef};
use crate::actors::link::{self, LinkOutcome, LinkReport, LoginCheck, NewLink};
use crate::actors::lookup;
use crate::actors::resolve::Located;
use crate::actors::run::{RunActor, RunArgs, RunMsg, RunRef, RunReport, Start};
use crate::actors::run_state::RunSettings;
use crate::actors::start_queue::{AdoptReply, Queued, StartQueue, StartReply};
use crate::actors::types::ThreadExtras;
use crate::actors::types::{
    EngineError, ResumeRequest, ResumeTarget, RunRequest, RunResult, RunStarted,
};
use crate::appserver::account::{LoginGate, NotLoggedIn};
use crate::appserver::backend::Backend;
use crate::appserver::{AppServerConnection, ServerEvent};
use crate::codex_bin::CodexBinary;
use crate::codex_config;
use crate::config::{AppServerMode, Config};
use crate::protocol::jsonrpc::RpcError;
use crate::store::{self, RunId};

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
    /// Call: start a new thread and turn. The Engine checked the request.
    StartRun(RunRequest, StartReply),
    /// Call: a new turn on an earlier run's thread. The Engine checked the
    /// request.
    Resume(ResumeRequest, StartReply),
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
    Adopt(RunId, AdoptReply),
    /// From a run actor: its route, its new thread's defaults, its end.
    Run(RunReport),
    /// From the connection's event pump; `generation` tells stale ones apart.
    Event { generation: u64, event: ServerEvent },
    /// A private app-server's stderr line.
    Stderr(String),
    /// From a connect task: the link is up (or not), the login checked, or
    /// the server found gone; the backend comes back with it.
    Linked(Box<LinkReport>),
    /// From a look-up task: the thread and project a resume goes on.
    ResumeFound {
        request: Box<ResumeRequest>,
        thread_id: String,
        cwd: PathBuf,
        reply: StartReply,
    },
    /// From a look-up task: a run whose sidecar died, to adopt.
    AdoptFound {
        located: Box<Located>,
        reply: Option<AdoptReply>,
    },
    /// Sent to itself at start: adopt runs a dead sidecar left behind.
    RecoverOrphans,
}

/// A run reports through its own narrow type; the supervisor takes it in.
impl From<RunReport> for SupervisorMsg {
    fn from(report: RunReport) -> Self {
        SupervisorMsg::Run(report)
    }
}

/// Needed by ractor to hand an undeliverable report back to its sender.
impl TryFrom<SupervisorMsg> for RunReport {
    type Error = ();

    fn try_from(message: SupervisorMsg) -> Result<Self, ()> {
        match message {
            SupervisorMsg::Run(report) => Ok(report),
            _ => Err(()),
        }
    }
}

pub struct SupervisorArgs {
    pub config: Config,
    pub codex: CodexBinary,
    pub broker: BrokerRef,
}

/// The live connection.
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
    /// What keeps the app-server; `None` while a connect task holds it.
    backend: Option<Backend>,
    /// A login check is under way on the link of this generation.
    admitting: Option<u64>,
    /// Requests waiting for the link (or its login check).
    queue: StartQueue,
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
            backend: Some(Backend::new(&args.config, &args.codex)),
            config: args.config,
            codex: args.codex,
            broker: args.broker,
            link: None,
            generation: 0,
            admitting: None,
            queue: StartQueue::default(),
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
        // server stays for other sidecars, and our lease is released. A
        // connect task under way lets its backend go itself.
        for queued in state.queue.take() {
            queued.fail(EngineError::Actor("the supervisor stopped".to_string()));
        }
        if let Some(link) = state.link.take() {
            link.connection.close().await;
        }
        if let Some(backend) = state.backend.take() {
            backend.stop().await;
        }
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
                state.queue.push(Queued::New { request, reply });
                self.kick(&myself, state).await;
            }
            SupervisorMsg::Resume(request, reply) => {
                self.resume(&myself, state, request, reply).await
            }
            SupervisorMsg::ResumeFound {
                request,
                thread_id,
                cwd,
                reply,
            } => {
                self.resume_on(&myself, state, *request, thread_id, cwd, reply)
                    .await;
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
            SupervisorMsg::Interrupt(run_id, reply) => match state.runs.get(&run_id) {
                Some(run) => {
                    let outcome = run
                        .cast(RunMsg::Interrupt)
                        .map(|()| Interrupted::Requested)
                        .map_err(EngineError::from);
                    let _ = reply.send(outcome);
                }
                None => lookup::interrupt_ended(state.config.clone(), run_id, reply),
            },
            SupervisorMsg::Adopt(run_id, reply) => {
                lookup::adopt(&myself, state.config.clone(), run_id, reply);
            }
            SupervisorMsg::AdoptFound { located, reply } => {
                if state.runs.contains_key(&located.run_id) {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(Adopted::Live));
                    }
                } else {
                    state.queue.push(Queued::Adopt { located, reply });
                    self.kick(&myself, state).await;
                }
            }
            SupervisorMsg::Run(RunReport::ThreadDefaults {
                thread_id,
                model,
                reasoning_effort,
            }) => {
                state
                    .thread_defaults
                    .insert(thread_id, (model, reasoning_effort));
            }
            SupervisorMsg::Run(RunReport::Route { thread_id, run }) => {
                state.routes.insert(thread_id, run);
            }
            SupervisorMsg::Run(RunReport::Ended {
                run_id,
                thread_id,
                cwd,
            }) => {
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
            SupervisorMsg::Linked(report) => self.on_linked(&myself, state, *report).await,
            SupervisorMsg::RecoverOrphans => {
                if let AppServerMode::Shared { url } = &state.config.app_server {
                    lookup::orphans(&myself, state.config.clone(), url.clone());
                }
            }
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
    /// A resume: its thread from memory when it can, else from the disk in a
    /// task that hands it back ([`SupervisorMsg::ResumeFound`]).
    async fn resume(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        request: ResumeRequest,
        reply: StartReply,
    ) {
        let known = match &request.target {
            ResumeTarget::Run(run_id) => state.ended.get(run_id).map(|(thread_id, cwd)| {
                let cwd = request.cwd.clone().unwrap_or_else(|| cwd.clone());
                (thread_id.clone(), cwd)
            }),
            ResumeTarget::Thread(thread_id) => {
                request.cwd.clone().map(|cwd| (thread_id.clone(), cwd))
            }
        };
        match known {
            Some((thread_id, cwd)) => {
                self.resume_on(myself, state, request, thread_id, cwd, reply)
                    .await;
            }
            None => lookup::resume_target(myself, state.config.clone(), request, reply),
        }
    }

    /// A resume whose thread is known: refused while the thread has a live
    /// turn, else queued for the link.
    async fn resume_on(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        request: ResumeRequest,
        thread_id: String,
        cwd: PathBuf,
        reply: StartReply,
    ) {
        if state.routes.contains_key(&thread_id) {
            let target = request.target.to_string();
            let _ = reply.send(Err(EngineError::StillRunning { target }));
            return;
        }
        state.queue.push(Queued::Resume {
            request,
            thread_id,
            cwd,
            reply,
        });
        self.kick(myself, state).await;
    }

    /// Moves the queue along: spawns its runs when the link is up and (for
    /// turns) the login passed; otherwise starts the task that gets there,
    /// unless one is under way (its report kicks again).
    async fn kick(&self, myself: &SupervisorRef, state: &mut SupervisorState) {
        if state.queue.is_empty() || state.admitting.is_some() {
            return;
        }
        let check = LoginCheck {
            codex_home: state.config.codex_home.clone(),
            codex: state.codex.clone(),
        };
        let wants_login = state.queue.any_starts_turn();
        match &state.link {
            Some(link) if !link.connection.is_closed() => {
                if !wants_login || link.login.passed() {
                    self.drain(myself, state, Ok(())).await;
                } else {
                    state.admitting = Some(link.generation);
                    link::admit(myself, link.connection.clone(), link.generation, check);
                }
            }
            _ => {
                // `None`: a connect task holds the backend; it kicks again.
                if let Some(backend) = state.backend.take() {
                    state.link = None;
                    link::connect(myself, backend, wants_login.then_some(check));
                }
            }
        }
    }

    /// Spawns a run for each queued request on the live link; a refused
    /// login refuses the ones that start a turn.
    async fn drain(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        login: Result<(), NotLoggedIn>,
    ) {
        let Some(connection) = state.link.as_ref().map(|link| link.connection.clone()) else {
            return;
        };
        for queued in state.queue.take() {
            match (&login, queued) {
                (Err(refusal), queued) if queued.starts_turn() => {
                    queued.fail(refusal.clone().into());
                }
                (_, Queued::New { request, reply }) => {
                    self.start_run(myself, state, connection.clone(), request, reply)
                        .await;
                }
                (
                    _,
                    Queued::Resume {
                        request,
                        thread_id,
                        cwd,
                        reply,
                    },
                ) => {
                    self.start_resume(
                        myself,
                        state,
                        connection.clone(),
                        request,
                        thread_id,
                        cwd,
                        reply,
                    )
                    .await;
                }
                (_, Queued::Adopt { located, reply }) => {
                    let outcome = self
                        .adopt_located(myself, state, connection.clone(), *located)
                        .await
                        .map(|()| Adopted::Live);
                    match reply {
                        Some(reply) => {
                            let _ = reply.send(outcome);
                        }
                        None => {
                            if let Err(error) = outcome {
                                tracing::warn!(%error, "could not adopt an orphaned run");
                            }
                        }
                    }
                }
            }
        }
    }

    /// A connect task's report: the backend comes home, and the queue and
    /// the live runs learn the outcome.
    async fn on_linked(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        report: LinkReport,
    ) {
        if let Some(backend) = report.backend {
            state.backend = Some(backend);
        }
        match report.outcome {
            LinkOutcome::Connected {
                link,
                login,
                after_drop,
            } => {
                let connection = self.install(myself, state, link);
                if after_drop {
                    for run in state.runs.values() {
                        let _ = run.cast(RunMsg::Reconnected(connection.clone()));
                    }
                }
                if let Some(login) = login {
                    self.drain(myself, state, login).await;
                }
            }
            LinkOutcome::Admitted {
                generation,
                gate,
                login,
            } => {
                if state.admitting == Some(generation) {
                    state.admitting = None;
                }
                if let Some(link) = state.link.as_mut()
                    && link.generation == generation
                {
                    link.login = gate;
                    self.drain(myself, state, login).await;
                }
            }
            LinkOutcome::Failed {
                error,
                after_drop: true,
            } => {
                self.fail_runs(
                    state,
                    &format!("lost the app-server connection and could not reconnect: {error}"),
                );
            }
            LinkOutcome::Failed {
                error,
                after_drop: false,
            } => {
                let message = error.to_string();
                let mut first = Some(error);
                for queued in state.queue.take() {
                    let error = first
                        .take()
                        .unwrap_or_else(|| EngineError::Unreachable(message.clone()));
                    queued.fail(error);
                }
            }
            LinkOutcome::Gone { reason } => self.fail_runs(state, &reason),
            LinkOutcome::Idle => {}
        }
        self.kick(myself, state).await;
    }

    /// Makes a task's new connection the link.
    fn install(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        link: NewLink,
    ) -> AppServerConnection {
        state.generation += 1;
        let generation = state.generation;
        pump_events(myself, generation, link.events);
        if let Some(lines) = link.stderr {
            forward_stderr(myself, lines);
        }
        state.link = Some(Link {
            connection: link.connection.clone(),
            url: link.url,
            token_file: link.token_file,
            generation,
            login: link.gate,
        });
        link.connection
    }

    async fn start_run(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        connection: AppServerConnection,
        request: RunRequest,
        reply: StartReply,
    ) {
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
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_resume(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        connection: AppServerConnection,
        request: ResumeRequest,
        thread_id: String,
        cwd: PathBuf,
        reply: StartReply,
    ) {
        // Checked again: a run may have taken the thread while this waited.
        if state.routes.contains_key(&thread_id) {
            let target = request.target.to_string();
            let _ = reply.send(Err(EngineError::StillRunning { target }));
            return;
        }
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
    }

    async fn adopt_located(
        &self,
        myself: &SupervisorRef,
        state: &mut SupervisorState,
        connection: AppServerConnection,
        located: Located,
    ) -> Result<(), EngineError> {
        let Some(active) = located.active.clone() else {
            return Ok(());
        };
        if state.runs.contains_key(&located.run_id) {
            return Ok(());
        }
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
            reports: myself.get_derived(),
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
                // A login check on the dropped link reports a stale
                // generation; the queue waits for the reconnect instead.
                state.admitting = None;
                // `None`: a connect task is under way already, and its
                // report decides.
                if let Some(backend) = state.backend.take() {
                    link::recover(myself, backend, reason, !state.runs.is_empty());
                }
            }
        }
    }

    fn fail_runs(&self, state: &mut SupervisorState, reason: &str) {
        for run in state.runs.values() {
            let _ = run.cast(RunMsg::ServerGone(reason.to_string()));
        }
    }
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

fn forward_stderr(myself: &SupervisorRef, mut lines: tokio::sync::broadcast::Receiver<String>) {
    let supervisor = myself.clone();
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
