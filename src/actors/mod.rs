//! The engine every client talks to: a `Supervisor` that owns the app-server
//! and its connection, a `RunActor` per turn, and a `WaitBroker` for waits.
//! [`Engine`] is the handle; `actors.md` at the repository root draws the
//! tree and every message.

pub mod approvals;
mod audit_writer;
pub mod broker;
pub mod conversations;
mod link;
mod lookup;
pub mod record;
mod request_check;
pub mod resolve;
pub mod run;
mod start_queue;
pub mod supervisor;
pub mod types;

use std::time::Duration;

use ractor::{Actor, ActorRef};

pub use types::{
    ActiveRun, EngineError, Progress, ResumeRequest, ResumeTarget, RunListing, RunRequest,
    RunResult, RunStarted, RunStatus, ThreadExtras, WaitOutcome,
};

use crate::codex_bin::CodexBinary;
use crate::config::Config;
use crate::store::RunId;
use crate::store::catalog;
use broker::{BrokerMsg, WaitBroker};
pub use conversations::{ChatReply, ChatRequest};
use conversations::{ConversationMsg, Conversations, ConversationsArgs};
pub use supervisor::Interrupted;
use supervisor::{Adopted, Supervisor, SupervisorArgs, SupervisorMsg};

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
    supervisor: ActorRef<SupervisorMsg>,
    broker: ActorRef<BrokerMsg>,
    /// `None` in the copy the conversations actor itself holds.
    conversations: Option<ActorRef<ConversationMsg>>,
    config: Config,
}

impl Engine {
    pub async fn start(config: Config, codex: CodexBinary) -> Result<Engine, EngineError> {
        let (broker, _) = Actor::spawn(None, WaitBroker, ())
            .await
            .map_err(|error| EngineError::Actor(error.to_string()))?;
        let args = SupervisorArgs {
            config: config.clone(),
            codex,
            broker: broker.clone(),
        };
        let (supervisor, _) = Actor::spawn(None, Supervisor, args)
            .await
            .map_err(|error| EngineError::Actor(error.to_string()))?;
        let mut engine = Engine {
            supervisor,
            broker,
            conversations: None,
            config,
        };
        let args = ConversationsArgs {
            engine: engine.clone(),
            origin: engine.config.origin.clone(),
        };
        let (conversations, _) = Actor::spawn(None, Conversations, args)
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
        // The run's own hard timeout (the request's) ends it; the call only
        // guards against a stuck actor.
        let bound = request.timeout + START_CALL_TIMEOUT + WAIT_CALL_MARGIN;
        settle(
            conversations
                .call(|reply| ConversationMsg::Ask(request, reply), Some(bound))
                .await?,
        )?
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts a new thread and turn; returns as soon as the turn runs.
    pub async fn run(&self, request: RunRequest) -> Result<RunStarted, EngineError> {
        let (prompt, cwd) = (request.prompt.clone(), request.cwd.clone());
        request_check::check(prompt, Some(cwd)).await?;
        settle(
            self.supervisor
                .call(
                    |reply| SupervisorMsg::StartRun(request, reply),
                    Some(START_CALL_TIMEOUT),
                )
                .await?,
        )?
    }

    /// A new turn on the thread of an earlier run.
    pub async fn resume(&self, request: ResumeRequest) -> Result<RunStarted, EngineError> {
        request_check::check(request.prompt.clone(), request.cwd.clone()).await?;
        settle(
            self.supervisor
                .call(
                    |reply| SupervisorMsg::Resume(request, reply),
                    Some(START_CALL_TIMEOUT),
                )
                .await?,
        )?
    }

    /// One wait slice: the result once the run ends, or its progress when
    /// `soft_timeout` comes first (`None`: wait until the end, which the hard
    /// timeout bounds). A run no live actor has is answered from its audit,
    /// or adopted when the sidecar that started it died while it ran.
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
        let adopted = settle(
            self.supervisor
                .call(
                    |reply| SupervisorMsg::Adopt(id, reply),
                    Some(START_CALL_TIMEOUT),
                )
                .await?,
        )??;
        match adopted {
            Adopted::Finished(result) => Ok(WaitOutcome::Finished(result)),
            Adopted::Live => self.wait_broker(run_id, soft).await,
        }
    }

    async fn wait_broker(
        &self,
        run_id: &RunId,
        soft: Option<Duration>,
    ) -> Result<WaitOutcome, EngineError> {
        let id = run_id.clone();
        settle(
            self.broker
                .call(
                    |reply| BrokerMsg::Wait {
                        run_id: id,
                        soft_timeout: soft,
                        reply,
                    },
                    soft.map(|soft| soft + WAIT_CALL_MARGIN),
                )
                .await?,
        )?
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
        settle(
            self.supervisor
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
        settle(
            self.supervisor
                .call(
                    |reply| SupervisorMsg::Interrupt(id, reply),
                    Some(QUERY_CALL_TIMEOUT),
                )
                .await?,
        )?
    }

    /// Turns running in this engine, oldest first.
    pub async fn active_runs(&self) -> Result<Vec<ActiveRun>, EngineError> {
        settle(
            self.broker
                .call(BrokerMsg::Active, Some(QUERY_CALL_TIMEOUT))
                .await?,
        )
    }

    /// Stops the actors: conversations, runs (linked to the supervisor),
    /// the private app-server if there is one, the broker.
    pub async fn shutdown(self) {
        if let Some(conversations) = &self.conversations {
            let _ = conversations
                .stop_and_wait(None, Some(QUERY_CALL_TIMEOUT))
                .await;
        }
        let _ = self
            .supervisor
            .stop_and_wait(None, Some(QUERY_CALL_TIMEOUT))
            .await;
        let _ = self
            .broker
            .stop_and_wait(None, Some(QUERY_CALL_TIMEOUT))
            .await;
    }
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
