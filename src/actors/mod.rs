//! The engine every client talks to: a `Supervisor` that owns the app-server
//! and its connection, a `RunActor` per turn, a `WaitBroker` for waits, and
//! the `Watchdog` that notices when the broker or `Conversations` dies.
//! [`Engine`] is the handle; `actors.md` at the repository root draws the
//! tree and every message.

pub mod approvals;
mod audit_writer;
pub mod broker;
pub mod conversations;
mod endpoints;
mod follow;
pub mod news;
pub mod person;
mod request_check;
pub mod resolve;
pub mod run;
pub mod run_state;
pub mod supervisor;
pub mod types;
pub mod wait_many;
pub mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef, ActorStatus};
use tokio::sync::watch;

pub use types::{
    ActiveRun, EngineError, Progress, ResumeRequest, ResumeTarget, RunListing, RunRequest,
    RunResult, RunStarted, RunStatus, ThreadExtras, TurnSettings, WaitOutcome,
};

use crate::codex_bin::CodexBinary;
use crate::config::Config;
use crate::store::RunId;
use crate::store::catalog;
use crate::store::run_slots::{RunSlot, RunSlots};
use broker::{BrokerMsg, WaitBroker};
pub use conversations::{ChatReply, ChatRequest};
use conversations::{ConversationMsg, Conversations, ConversationsArgs};
pub use supervisor::Interrupted;
use supervisor::{Adopted, Supervisor, SupervisorArgs, SupervisorMsg};
pub use watchdog::Watched;
use watchdog::{Casualties, Watchdog, WatchdogRef};

/// Starting a run may first start the app-server (30 s at worst, see
/// `process::STARTUP_TIMEOUT`) and then makes two requests of at most
/// `connection::REQUEST_TIMEOUT` each.
const START_CALL_TIMEOUT: Duration = Duration::from_secs(100);

/// Calls that only read actor state.
const QUERY_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A wait's call outlives its slice by this much, so the slice (not the
/// call) is what ends it.
const WAIT_CALL_MARGIN: Duration = Duration::from_secs(10);

/// The running actor system. Cheap to clone: it holds actor references.
#[derive(Clone)]
pub struct Engine {
    /// The supervisor of each endpoint, and where each run went.
    endpoints: endpoints::Endpoints,
    broker: ActorRef<BrokerMsg>,
    /// `None` in the copy the conversations actor itself holds.
    conversations: Option<ActorRef<ConversationMsg>>,
    /// Owns the broker and the conversations actor (linked to it).
    watchdog: WatchdogRef,
    /// Which of those died, as the watchdog heard it.
    casualties: watch::Receiver<Casualties>,
    /// The account's rate limits and the connection's warnings, as the
    /// Supervisor last heard them.
    news: news::AccountNews,
    /// This sidecar's share of the cap on runs going at once.
    slots: RunSlots,
    config: Config,
}

impl Engine {
    pub async fn start(config: Config, codex: CodexBinary) -> Result<Engine, EngineError> {
        let (casualties_tx, casualties) = watch::channel(Casualties::new());
        let news = news::AccountNews::default();
        let (watchdog, _) = Actor::spawn(None, Watchdog, casualties_tx)
            .await
            .map_err(|error| EngineError::Actor(error.to_string()))?;
        let (broker, _) = Actor::spawn_linked(None, WaitBroker, (), watchdog.get_cell())
            .await
            .map_err(|error| EngineError::Actor(error.to_string()))?;
        let args = SupervisorArgs {
            config: config.clone(),
            codex: codex.clone(),
            broker: broker.clone(),
            news: news.clone(),
        };
        let (supervisor, _) = Actor::spawn(None, Supervisor, args)
            .await
            .map_err(|error| EngineError::Actor(error.to_string()))?;
        let endpoints = endpoints::Endpoints::start(supervisor, &config, &codex, &broker).await?;
        let mut engine = Engine {
            endpoints,
            broker,
            conversations: None,
            watchdog,
            casualties,
            news,
            slots: RunSlots::new(&config.pointer_dir, config.max_runs),
            config,
        };
        let args = ConversationsArgs {
            engine: engine.clone(),
            origin: engine.config.origin.clone(),
        };
        let (conversations, _) =
            Actor::spawn_linked(None, Conversations, args, engine.watchdog.get_cell())
                .await
                .map_err(|error| EngineError::Actor(error.to_string()))?;
        engine.conversations = Some(conversations);
        Ok(engine)
    }

    /// One message in a persistent conversation; answers when Codex has.
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatReply, EngineError> {
        let conversations = self
            .conversations
            .as_ref()
            .ok_or_else(|| EngineError::Actor("conversations are not running".to_string()))?;
        // A request is a run and a wait: without the broker it could start
        // a turn nobody hears end.
        self.needs(Watched::WaitBroker)?;
        self.needs(Watched::Conversations)?;
        // The run's own hard timeout (the request's) ends it; the call only
        // guards against a stuck actor.
        let bound = request.timeout + START_CALL_TIMEOUT + WAIT_CALL_MARGIN;
        let outcome = conversations
            .call(|reply| ConversationMsg::Ask(request, reply), Some(bound))
            .await;
        self.blame(Watched::Conversations, outcome)?
    }

    /// A place under `CODEX_MCP_WRAPPER_MAX_RUNS` for one more run, or
    /// `Busy` at once; a lock and a directory read, on the blocking pool.
    async fn take_slot(&self) -> Result<Option<Arc<RunSlot>>, EngineError> {
        let slots = self.slots.clone();
        let taken = tokio::task::spawn_blocking(move || slots.take())
            .await
            .map_err(|error| EngineError::Actor(error.to_string()))??;
        Ok(taken.map(Arc::new))
    }

    /// What Codex last said about the account and the connection.
    pub fn news(&self) -> news::News {
        self.news.snapshot()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts a new thread and turn; returns as soon as the turn runs.
    pub async fn run(&self, mut request: RunRequest) -> Result<RunStarted, EngineError> {
        // The run's actor tells the broker it started (its start fails
        // otherwise, after the turn began): refuse before anything runs.
        self.needs(Watched::WaitBroker)?;
        let served = self.endpoints.named(request.endpoint.as_deref())?;
        let (prompt, cwd) = (request.prompt.clone(), request.cwd.clone());
        request_check::check(prompt, Some(cwd), remote_of(&served.config)).await?;
        request.turn.slot = self.take_slot().await?;
        let started = settle(
            served
                .supervisor
                .call(
                    |reply| SupervisorMsg::StartRun(request, reply),
                    Some(START_CALL_TIMEOUT),
                )
                .await?,
        )??;
        let endpoint = served.config.endpoint_name();
        self.endpoints
            .place(&started.run_id, &started.thread_id, endpoint);
        Ok(started)
    }

    /// A new turn on the thread of an earlier run.
    pub async fn resume(&self, mut request: ResumeRequest) -> Result<RunStarted, EngineError> {
        self.needs(Watched::WaitBroker)?;
        let served = self
            .endpoints
            .of_target(&request.target, request.endpoint.as_deref())
            .await?;
        let remote = remote_of(&served.config);
        request_check::check(request.prompt.clone(), request.cwd.clone(), remote).await?;
        request.turn.slot = self.take_slot().await?;
        let started = settle(
            served
                .supervisor
                .call(
                    |reply| SupervisorMsg::Resume(request, reply),
                    Some(START_CALL_TIMEOUT),
                )
                .await?,
        )??;
        let endpoint = served.config.endpoint_name();
        self.endpoints
            .place(&started.run_id, &started.thread_id, endpoint);
        Ok(started)
    }

    /// One wait slice: the result once the run ends, or its progress when
    /// `soft_timeout` comes first (`None`: wait until the end, which the hard
    /// timeout bounds). A run no live actor has is answered from its audit,
    /// adopted when the sidecar that started it died while it ran, or
    /// followed through its audit while that sidecar still runs it.
    pub async fn wait(
        &self,
        run_id: &RunId,
        soft_timeout: Option<Duration>,
    ) -> Result<WaitOutcome, EngineError> {
        let soft = soft_timeout;
        match self.wait_broker(run_id, soft).await {
            Err(EngineError::UnknownRun(_)) => {}
            other => return other,
        }
        let id = run_id.clone();
        let supervisor = &self.endpoints.of_run(run_id).await?.supervisor;
        let adopted = settle(
            supervisor
                .call(
                    |reply| SupervisorMsg::Adopt(id, reply),
                    Some(START_CALL_TIMEOUT),
                )
                .await?,
        )??;
        match adopted {
            Adopted::Finished(result) => Ok(WaitOutcome::Finished(*result)),
            Adopted::Live => self.wait_broker(run_id, soft).await,
            // Live in another sidecar: followed through its audit.
            Adopted::Followed(located) => {
                self.needs(Watched::WaitBroker)?;
                follow::follow(&self.broker, supervisor, *located).await?;
                self.wait_broker(run_id, soft).await
            }
        }
    }

    async fn wait_broker(
        &self,
        run_id: &RunId,
        soft: Option<Duration>,
    ) -> Result<WaitOutcome, EngineError> {
        self.needs(Watched::WaitBroker)?;
        let id = run_id.clone();
        let outcome = self
            .broker
            .call(
                |reply| BrokerMsg::Wait {
                    run_id: id,
                    soft_timeout: soft,
                    reply,
                },
                soft.map(|soft| soft + WAIT_CALL_MARGIN),
            )
            .await;
        // A broker that dies while the call waits drops its reply port: the
        // waiter hears at once, and hears which actor it was.
        self.blame(Watched::WaitBroker, outcome)?
    }

    /// The most recent runs of every project, newest first: the catalog
    /// `codex-runs --all` and the picker show (`store::catalog::load_all`),
    /// cut to `limit`. What could not be read is logged; only when nothing
    /// could be is it an error, so that an unreadable index is not mistaken
    /// for one without runs.
    pub async fn recent_runs(&self, limit: usize) -> Result<Vec<RunListing>, EngineError> {
        let pointer_index = self.config.pointer_index();
        let catalog = tokio::task::spawn_blocking(move || catalog::load_all(&pointer_index))
            .await
            .map_err(|error| EngineError::Actor(error.to_string()))?;
        if catalog.rows.is_empty() && !catalog.problems.is_empty() {
            return Err(EngineError::Unreadable(catalog.problems.join("; ")));
        }
        for problem in &catalog.problems {
            tracing::warn!(%problem, "listing runs");
        }
        Ok(catalog
            .rows
            .into_iter()
            .take(limit)
            .map(|row| RunListing {
                run_id: row.run_id,
                status: row.status,
                title: row.title,
            })
            .collect())
    }

    /// Answers a request the run holds for the caller; the run goes on.
    pub async fn approve(
        &self,
        run_id: &RunId,
        approval_id: &str,
        choice: approvals::Choice,
    ) -> Result<(), EngineError> {
        let (id, approval_id) = (run_id.clone(), approval_id.to_string());
        let supervisor = &self.endpoints.of_run(run_id).await?.supervisor;
        settle(
            supervisor
                .call(
                    |reply| SupervisorMsg::Approve {
                        run_id: id,
                        approval_id,
                        choice,
                        reply,
                    },
                    Some(QUERY_CALL_TIMEOUT),
                )
                .await?,
        )?
    }

    /// Stops a run's turn; the run then ends `interrupted` and its waiters
    /// wake. A run that has ended is left alone.
    pub async fn interrupt(&self, run_id: &RunId) -> Result<Interrupted, EngineError> {
        let id = run_id.clone();
        let supervisor = &self.endpoints.of_run(run_id).await?.supervisor;
        settle(
            supervisor
                .call(
                    |reply| SupervisorMsg::Interrupt(id, reply),
                    Some(QUERY_CALL_TIMEOUT),
                )
                .await?,
        )?
    }

    /// Turns running in this engine, oldest first.
    pub async fn active_runs(&self) -> Result<Vec<ActiveRun>, EngineError> {
        self.needs(Watched::WaitBroker)?;
        let outcome = self
            .broker
            .call(BrokerMsg::Active, Some(QUERY_CALL_TIMEOUT))
            .await;
        self.blame(Watched::WaitBroker, outcome)
    }

    /// What is wrong with the engine itself: one sentence for each of its
    /// actors that died (empty while they all live). `codex_wrapper_check`
    /// reports them.
    pub fn problems(&self) -> Vec<String> {
        [Watched::WaitBroker, Watched::Conversations]
            .into_iter()
            .filter_map(|actor| self.casualty(actor))
            .map(|error| error.to_string())
            .collect()
    }

    /// Why `actor` cannot serve: the death the watchdog recorded, or, when
    /// its event is still on the way, the status ractor already shows.
    fn casualty(&self, actor: Watched) -> Option<EngineError> {
        let recorded = self.casualties.borrow().get(&actor).cloned();
        let reason = recorded.or_else(|| {
            let status = match actor {
                Watched::WaitBroker => self.broker.get_status(),
                Watched::Conversations => self.conversations.as_ref()?.get_status(),
            };
            (status >= ActorStatus::Stopping).then(|| "it stopped".to_string())
        })?;
        Some(EngineError::ActorDied {
            actor: actor.describe(),
            reason,
        })
    }

    fn needs(&self, actor: Watched) -> Result<(), EngineError> {
        self.casualty(actor).map_or(Ok(()), Err)
    }

    /// A call's outcome; when it failed because `actor` died, that death is
    /// the error (rather than "the actor dropped the reply").
    fn blame<T>(
        &self,
        actor: Watched,
        outcome: Result<ractor::rpc::CallResult<T>, ractor::MessagingErr<impl Sized>>,
    ) -> Result<T, EngineError> {
        outcome
            .map_err(EngineError::from)
            .and_then(settle)
            .map_err(|error| self.casualty(actor).unwrap_or(error))
    }

    /// Test hook: kills one of the actors the watchdog owns, as a crash
    /// would end it, and returns once it is gone; a test then shows what
    /// callers see. Nothing in the sidecar calls it.
    #[doc(hidden)]
    pub async fn kill_for_test(&self, actor: Watched) {
        let cell = match actor {
            Watched::WaitBroker => Some(self.broker.get_cell()),
            Watched::Conversations => self.conversations.as_ref().map(ActorRef::get_cell),
        };
        if let Some(cell) = cell {
            let _ = cell.kill_and_wait(Some(QUERY_CALL_TIMEOUT)).await;
        }
    }

    /// Stops the actors: conversations, runs (linked to the supervisor),
    /// the private app-server if there is one, the broker, the watchdog.
    pub async fn shutdown(self) {
        // Stopped on purpose: unlinked first, so the watchdog records no death.
        let watchdog = self.watchdog.get_cell();
        if let Some(conversations) = &self.conversations {
            conversations.get_cell().unlink(watchdog.clone());
            let _ = conversations
                .stop_and_wait(None, Some(QUERY_CALL_TIMEOUT))
                .await;
        }
        for served in self.endpoints.all() {
            let _ = served
                .supervisor
                .stop_and_wait(None, Some(QUERY_CALL_TIMEOUT))
                .await;
        }
        self.broker.get_cell().unlink(watchdog);
        let _ = self
            .broker
            .stop_and_wait(None, Some(QUERY_CALL_TIMEOUT))
            .await;
        let _ = self
            .watchdog
            .stop_and_wait(None, Some(QUERY_CALL_TIMEOUT))
            .await;
    }
}

/// A run's `cwd` is on another host: the endpoint's name, for the checks
/// that then skip this machine's disk.
fn remote_of(config: &Config) -> Option<&str> {
    config.is_remote().then(|| config.endpoint_name())
}

/// A call's outcome as our error: the reply, or why there was none.
fn settle<T>(outcome: ractor::rpc::CallResult<T>) -> Result<T, EngineError> {
    match outcome {
        ractor::rpc::CallResult::Success(value) => Ok(value),
        ractor::rpc::CallResult::Timeout => Err(EngineError::Actor("the call timed out".into())),
        ractor::rpc::CallResult::SenderError => {
            Err(EngineError::Actor("the actor dropped the reply".into()))
        }
    }
}
