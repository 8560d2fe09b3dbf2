//! What clients of the engine send and get back: requests to start or
//! resume a run, run status, progress and results, and the engine's errors.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::appserver::account::NotLoggedIn;
use crate::appserver::backend::BackendError;
use crate::appserver::shared::SharedError;
use crate::appserver::{AppServerError, ConnectionError};
use crate::codex_bin::CodexBinError;
use crate::config::Permissions;
use crate::protocol::ThreadId;
use crate::protocol::{ApprovalPolicy, SandboxMode, TokenCounts};
pub use crate::store::RunStatus;
use crate::store::{RunId, StoreError};

/// What a new thread may be given beyond the usual settings (the legacy
/// `codex` tool's fields).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThreadExtras {
    /// Codex config overrides (`config.toml` keys).
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    pub base_instructions: Option<String>,
    pub developer_instructions: Option<String>,
}

/// What a turn runs with, as the caller chose it: the same for a new run
/// and a resume, so both requests carry one and the MCP tools and the
/// command line fill it once. `None` leaves a setting to the configured
/// default (a new run) or to the thread (a resume).
#[derive(Debug, Clone, Default)]
pub struct TurnSettings {
    /// `None`: the configured default.
    pub permissions: Option<Permissions>,
    /// Overrides the sandbox the permissions imply.
    pub sandbox: Option<SandboxMode>,
    /// Overrides the approval policy the permissions imply.
    pub approval_policy: Option<ApprovalPolicy>,
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    /// `None`: the configured run timeout.
    pub timeout: Option<Duration>,
    /// The caller answers Codex's requests (`codex_approve`) instead of the
    /// sandbox rule; only a caller that can answer should ask for this.
    pub interactive: bool,
    /// With `interactive`: the person at the MCP client is asked first (an
    /// elicitation form); the caller answers what they hand back.
    pub person: Option<crate::actors::person::Person>,
    /// The run's place under `CODEX_MCP_WRAPPER_MAX_RUNS`, taken by the
    /// engine before the Supervisor sees the request; the run's actor holds
    /// it and gives it back when it stops.
    pub slot: Option<std::sync::Arc<crate::store::run_slots::RunSlot>>,
}

impl TurnSettings {
    /// Whether the caller chose permissions for this turn.
    pub fn chooses_access(&self) -> bool {
        self.permissions.is_some() || self.sandbox.is_some() || self.approval_policy.is_some()
    }
}

/// A new thread and its first turn.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub prompt: String,
    pub cwd: PathBuf,
    pub run_name: Option<String>,
    pub turn: TurnSettings,
    /// Config overrides and instructions for the new thread.
    pub extras: ThreadExtras,
    /// A named endpoint of `endpoints.toml` (`None`: the default); `cwd`
    /// is then a path on its host.
    pub endpoint: Option<String>,
}

impl RunRequest {
    pub fn new(prompt: impl Into<String>, cwd: impl Into<PathBuf>) -> RunRequest {
        RunRequest {
            prompt: prompt.into(),
            cwd: cwd.into(),
            run_name: None,
            turn: TurnSettings::default(),
            extras: ThreadExtras::default(),
            endpoint: None,
        }
    }
}

/// Which thread a new turn goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeTarget {
    /// The thread of an earlier run.
    Run(RunId),
    /// A Codex thread by id (a chat session).
    Thread(ThreadId),
}

impl std::fmt::Display for ResumeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeTarget::Run(run_id) => write!(f, "run {run_id}"),
            ResumeTarget::Thread(thread_id) => write!(f, "session {thread_id}"),
        }
    }
}

/// A new turn on an existing thread.
#[derive(Debug, Clone)]
pub struct ResumeRequest {
    pub target: ResumeTarget,
    pub prompt: String,
    /// `None`: the project the thread last ran in.
    pub cwd: Option<PathBuf>,
    /// With no permissions, sandbox or approval policy chosen the thread
    /// keeps the permissions it has; with any, the turn runs with what they
    /// come to (gaps filled from the configured default), even on a thread
    /// Codex still has loaded.
    pub turn: TurnSettings,
    /// Used only when no record says where the thread went (the run's own
    /// endpoint wins).
    pub endpoint: Option<String>,
}

impl ResumeRequest {
    /// A turn with every setting left to the thread.
    pub fn new(target: ResumeTarget, prompt: impl Into<String>) -> ResumeRequest {
        ResumeRequest {
            target,
            prompt: prompt.into(),
            cwd: None,
            turn: TurnSettings::default(),
            endpoint: None,
        }
    }

    /// Whether the caller chose permissions for this turn.
    pub fn chooses_access(&self) -> bool {
        self.turn.chooses_access()
    }
}

/// The handle a started run returns at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub turn_id: String,
}

/// How far a running turn has got, for a wait slice that ends early.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub events: u64,
    pub total_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// RFC 3339 time of the last event.
    pub last_activity: Option<String>,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub status: RunStatus,
    /// Codex's final message.
    pub result: Option<String>,
    pub usage: TokenCounts,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// What of the run's audit could not be written (a read-only or full
    /// disk): the run itself went on.
    pub audit_error: Option<String>,
    /// The account's rate limits as Codex last reported them during the
    /// turn; empty when it reported none.
    #[serde(skip_serializing_if = "crate::protocol::limits::RateLimits::is_empty")]
    pub rate_limits: crate::protocol::limits::RateLimits,
    /// What Codex warned about on the thread, and errors it retried past;
    /// replies carry the first few, cut.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What one wait slice ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    StillRunning {
        run_id: RunId,
        thread_id: ThreadId,
        progress: Progress,
        waited: Duration,
    },
    Finished(RunResult),
    /// The run waits for the caller to answer a request (`codex_approve`).
    NeedsApproval {
        run_id: RunId,
        thread_id: ThreadId,
        approval: crate::actors::approvals::PendingApproval,
    },
}

impl WaitOutcome {
    /// One word for logs: `still_running`, `finished`, `needs_approval`.
    pub fn kind(&self) -> &'static str {
        match self {
            WaitOutcome::StillRunning { .. } => "still_running",
            WaitOutcome::Finished(_) => "finished",
            WaitOutcome::NeedsApproval { .. } => "needs_approval",
        }
    }
}

/// A run of any project, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunListing {
    pub run_id: RunId,
    pub status: RunStatus,
    pub title: String,
}

/// A running turn, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRun {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub title: String,
    pub cwd: PathBuf,
    pub elapsed_ms: u64,
}

/// Everything the engine can refuse or fail with. Messages say what happened
/// and, where there is something to do, what.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown run id {0}: no live run, index record or audit file has it")]
    UnknownRun(String),
    #[error("{0}")]
    BadRequest(String),
    /// `codex_approve` on a request the person at the MCP client is asked.
    #[error(
        "approval {0} is being asked of the person in the MCP client, and the calling model must not answer in their place: call codex_wait, which shows the run going on once they answer (or the approval back as yours if they dismiss the form)"
    )]
    PersonAsked(String),
    #[error("{target} is still running; wait for it before starting another turn on its thread")]
    StillRunning { target: String },
    /// A run over `CODEX_MCP_WRAPPER_MAX_RUNS`: refused at once, never queued.
    #[error("busy: {0}; wait for one of them to end (codex_wait), or raise the cap")]
    Busy(#[from] crate::store::run_slots::OverCap),
    #[error(
        "unknown session {0}: no run of this sidecar's index used that thread; start a new session with a cwd"
    )]
    UnknownSession(ThreadId),
    #[error("the turn in session {session_id} ended {status}: {error}")]
    TurnEnded {
        session_id: ThreadId,
        status: RunStatus,
        error: String,
    },
    #[error(transparent)]
    Codex(#[from] CodexBinError),
    #[error(transparent)]
    AppServer(#[from] AppServerError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A request queued behind a connect that failed (the first one queued
    /// gets the failure itself).
    #[error("could not reach the app-server: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Shared(#[from] SharedError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    NotLoggedIn(#[from] NotLoggedIn),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine is shutting down or an actor stopped: {0}")]
    Actor(String),
    /// One of the engine's own actors died; it is not restarted.
    #[error(
        "{actor} died ({reason}); it is not restarted: restart the sidecar (the audit of every run is on disk)"
    )]
    ActorDied { actor: &'static str, reason: String },
    #[error("the run store could not be read: {0}")]
    Unreadable(String),
}

impl<T> From<ractor::MessagingErr<T>> for EngineError {
    fn from(error: ractor::MessagingErr<T>) -> EngineError {
        EngineError::Actor(error.to_string())
    }
}
