//! What the Supervisor is sent and answers: its message enum, its
//! reference, the replies of its calls, and the reports its connect tasks
//! hand back. The lowest part of the supervisor: its tasks and helpers
//! depend on this, never on the actor itself.

use std::path::PathBuf;

use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::mpsc;

use crate::actors::approvals::Choice;
use crate::actors::broker::BrokerRef;
use crate::actors::resolve::Located;
use crate::actors::run::RunReport;
use crate::actors::types::{EngineError, ResumeRequest, RunRequest, RunResult, RunStarted};
use crate::appserver::account::{LoginGate, NotLoggedIn};
use crate::appserver::backend::Backend;
use crate::appserver::{AppServerConnection, ServerEvent};
use crate::codex_bin::CodexBinary;
use crate::config::Config;
use crate::protocol::ThreadId;
use crate::store::RunId;

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

/// Whether a waited-on run that no actor had was finished, is now adopted,
/// or is live in another sidecar, which still owns it: to be followed.
pub enum Adopted {
    Finished(Box<RunResult>),
    Live,
    Followed(Box<Located>),
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
    /// From a look-up task: an interrupt of a run live in another sidecar,
    /// sent from our own connection once the link is up.
    InterruptElsewhere {
        thread_id: ThreadId,
        turn_id: String,
        reply: RpcReplyPort<Result<Interrupted, EngineError>>,
    },
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
        thread_id: ThreadId,
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

pub type StartReply = RpcReplyPort<Result<RunStarted, EngineError>>;
pub type AdoptReply = RpcReplyPort<Result<Adopted, EngineError>>;

pub struct SupervisorArgs {
    pub config: Config,
    pub codex: CodexBinary,
    pub broker: BrokerRef,
    /// Where the account's rate limits and connection warnings go.
    pub news: crate::actors::news::AccountNews,
}

/// What a connect task found, sent back to the Supervisor.
pub struct LinkReport {
    /// The backend, when the task took it.
    pub backend: Option<Backend>,
    pub outcome: LinkOutcome,
}

pub enum LinkOutcome {
    /// A new connection, for queued requests or after a drop.
    Connected {
        link: NewLink,
        /// The login check, when requests that start turns were queued.
        login: Option<Result<(), NotLoggedIn>>,
        /// A reconnect after a drop: the live runs re-subscribe.
        after_drop: bool,
    },
    /// The login check on the live connection of this generation.
    Admitted {
        generation: u64,
        gate: LoginGate,
        login: Result<(), NotLoggedIn>,
    },
    /// No connection. `after_drop`: the live runs fail; else the queued
    /// requests do.
    Failed {
        error: EngineError,
        after_drop: bool,
    },
    /// After a drop: the server itself is gone; the live runs fail with this.
    Gone { reason: String },
    /// After a drop, with no live run to reconnect for: the next request
    /// connects.
    Idle,
}

/// A connection made by a task, not yet the Supervisor's.
pub struct NewLink {
    pub connection: AppServerConnection,
    pub events: mpsc::Receiver<ServerEvent>,
    pub url: String,
    pub token_file: Option<PathBuf>,
    pub gate: LoginGate,
    /// A private server this task started: its stderr.
    pub stderr: Option<tokio::sync::broadcast::Receiver<String>>,
}
