//! `RunActor`: one per turn. It starts (or recovers) its turn, receives the
//! turn's notifications and server requests from its router, answers
//! every request, keeps the run's audit, reports progress and the end to the
//! wait broker, and stops when the turn is over.

mod active;
mod lifecycle;
mod pending;
mod report;

pub use report::{RunReport, RunReportRef, StickySettings};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::Value;
use tracing::Instrument;

use crate::actors::approvals::Choice;
use crate::actors::audit_writer::{AuditOp, AuditWrite, AuditWriter};
use crate::actors::broker::BrokerMsg;
use crate::actors::person::{Person, PersonAnswer};
use crate::actors::run_state::{RunRecord, RunSettings};
use crate::actors::types::{EngineError, RunStarted, RunStatus};
use crate::appserver::{AppServerConnection, ConnectionError};
use crate::protocol::ThreadId;
use crate::protocol::{SandboxMode, ServerNotification, ServerRequest};
use crate::store::run_slots::RunSlot;
use crate::store::{ActiveRecord, AuditEvent, RunId};
use active::write_active;

/// After the hard timeout interrupts a turn, Codex confirms with
/// `turn/completed` at once; if it has not within this long, the run ends
/// `timed_out` anyway so that no run stays running forever.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// Codex answers `turn/start` before the turn is active, and refuses an
/// interrupt until it is ("no active turn to interrupt"): an interrupt sent
/// in the first milliseconds of a run is tried again this often, until the
/// turn ends or the grace period does. Short: the turn becomes active
/// within milliseconds, and each try is one small request.
const INTERRUPT_RETRY: Duration = Duration::from_millis(20);

/// The readable summary is rewritten at most this often while a run goes:
/// often enough to follow along, rarely enough that a flood of deltas does
/// not turn into a flood of fsyncs.
const SUMMARY_REFRESH: Duration = Duration::from_secs(2);

pub struct RunActor;

pub type RunRef = ActorRef<RunMsg>;

pub enum RunMsg {
    /// A notification of this run's thread (cast by the supervisor).
    Notification(ServerNotification),
    /// A server request of this run's thread; answered, never left hanging.
    Request(ServerRequest),
    /// An app-server stderr line seen while this run was active.
    Stderr(String),
    /// The run's hard timeout (sent to itself).
    HardTimeout,
    /// Someone asked to stop the turn (`codex_interrupt`).
    Interrupt,
    /// Call: the caller's answer to a pending request (`codex_approve`).
    Approve {
        approval_id: String,
        choice: Choice,
        reply: RpcReplyPort<Result<(), EngineError>>,
    },
    /// The person at the MCP client answered the form about a request (cast
    /// by the task that asked them).
    PersonAnswered {
        approval_id: String,
        answer: PersonAnswer,
    },
    InterruptGraceOver,
    /// Send `turn/interrupt` again: Codex refused the last one as its turn
    /// was not active yet (sent to itself, `INTERRUPT_RETRY` later).
    RetryInterrupt,
    /// The connection came back after a drop: subscribe again and catch up.
    Reconnected(AppServerConnection),
    /// The app-server is gone; the turn cannot finish.
    ServerGone(String),
    /// Write the active record's live fields if they changed since it was
    /// last written (sent to itself, `ACTIVE_REFRESH_INTERVAL` after a write).
    RefreshActive,
}

/// How the run begins.
pub enum Start {
    /// `thread/start`, then `turn/start`.
    New { settings: RunSettings },
    /// `thread/resume` of an earlier run's thread, then `turn/start`.
    Resume(ResumeStart),
    /// A run another sidecar started and left behind: subscribe again and
    /// catch up from `thread/read`.
    Recover(Box<ActiveRecord>),
}

/// A turn on an earlier run's thread.
pub struct ResumeStart {
    pub thread_id: ThreadId,
    pub settings: RunSettings,
    /// The caller chose permissions: they go on the turn too, since Codex
    /// ignores them in `thread/resume` of a loaded thread.
    pub chosen_access: bool,
    /// What the thread runs with, if an earlier run here left it so.
    pub known: Option<StickySettings>,
}

pub struct RunArgs {
    pub run_id: RunId,
    pub start: Start,
    pub prompt: String,
    pub title: String,
    pub cwd: PathBuf,
    pub connection: AppServerConnection,
    /// Where routing, thread defaults and the end are reported.
    pub reports: RunReportRef,
    pub broker: ActorRef<BrokerMsg>,
    pub run_dir: PathBuf,
    pub pointer_index: PathBuf,
    pub app_server_url: String,
    pub app_server_token_file: Option<PathBuf>,
    /// A named endpoint's name (`None`: the default), for its records.
    pub endpoint: Option<String>,
    pub timeout: Duration,
    /// Where the caller waits for the run handle (`None` when recovering).
    pub reply: Option<RpcReplyPort<Result<RunStarted, EngineError>>>,
    /// Its place under the cap on concurrent runs (`None`: uncounted, as a
    /// recovered run is).
    pub slot: Option<Arc<RunSlot>>,
}

pub struct RunState {
    /// Every log of this run's actor is inside it, so it carries the run id.
    span: tracing::Span,
    args: Option<RunArgs>,
    connection: AppServerConnection,
    reports: RunReportRef,
    broker: ActorRef<BrokerMsg>,
    run_dir: PathBuf,
    /// `None` until the thread is known (the start can fail before that).
    record: Option<RunRecord>,
    audit: Option<AuditWriter>,
    summary_written: Instant,
    /// Where a terminal UI attaches: written into the active record.
    app_server_url: String,
    app_server_token_file: Option<PathBuf>,
    /// A named endpoint's name (`None`: the default), for its records.
    endpoint: Option<String>,
    /// The run owns `active/<runId>.json` (written at the start, or found
    /// when recovering) and keeps it current until the end removes it.
    active_owned: bool,
    active_written: Instant,
    /// A live change is not on disk yet.
    active_stale: bool,
    /// A `RefreshActive` is on its way.
    active_refresh_queued: bool,
    /// What the thread keeps from this turn, once `turn/start` took it.
    sticky: Option<StickySettings>,
    /// Decides approvals: a request may only have what this sandbox allows.
    sandbox: Option<SandboxMode>,
    /// The caller answers requests (it asked for an approval policy that
    /// asks); otherwise the sandbox does.
    interactive: bool,
    /// Who is asked first when the caller answers: the person at the MCP
    /// client (`None`: the caller itself).
    person: Option<Person>,
    /// Requests waiting for an answer, oldest first.
    pending: Vec<pending::Held>,
    next_approval: u64,
    /// The paths of each file-change item seen starting, by item id: its
    /// approval request names only the item, and the caller wants the files.
    file_changes: HashMap<String, Vec<String>>,
    /// Held until the run ends (or the actor stops): dropping it gives the
    /// place back.
    slot: Option<Arc<RunSlot>>,
}

impl Actor for RunActor {
    type Msg = RunMsg;
    type State = RunState;
    type Arguments = RunArgs;

    async fn pre_start(
        &self,
        _myself: RunRef,
        args: RunArgs,
    ) -> Result<RunState, ActorProcessingErr> {
        // Network and disk work happens in post_start, so that spawning does
        // not hold up the supervisor.
        let mut args = args;
        let slot = args.slot.take();
        Ok(RunState {
            slot,
            span: tracing::info_span!("run", run_id = %args.run_id),
            connection: args.connection.clone(),
            reports: args.reports.clone(),
            broker: args.broker.clone(),
            run_dir: args.run_dir.clone(),
            endpoint: args.endpoint.clone(),
            args: Some(args),
            record: None,
            audit: None,
            summary_written: Instant::now(),
            app_server_url: String::new(),
            app_server_token_file: None,
            active_owned: false,
            active_written: Instant::now(),
            active_stale: false,
            active_refresh_queued: false,
            sticky: None,
            sandbox: None,
            interactive: false,
            person: None,
            pending: Vec::new(),
            next_approval: 0,
            file_changes: HashMap::new(),
        })
    }

    async fn post_start(
        &self,
        myself: RunRef,
        state: &mut RunState,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        self.start(myself, state).instrument(span).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: RunRef,
        message: RunMsg,
        state: &mut RunState,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        self.on_message(myself, message, state)
            .instrument(span)
            .await;
        Ok(())
    }
}

impl RunActor {
    /// Begins the run and answers whoever waits for its handle.
    async fn start(&self, myself: RunRef, state: &mut RunState) {
        let Some(mut args) = state.args.take() else {
            return;
        };
        let reply = args.reply.take();
        match self.begin(&myself, state, args).await {
            Ok(started) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(started));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "run failed to start");
                let message = error.to_string();
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error));
                }
                self.end(&myself, state, RunStatus::Failed, Some(message))
                    .await;
            }
        }
    }

    async fn on_message(&self, myself: RunRef, message: RunMsg, state: &mut RunState) {
        match message {
            RunMsg::Notification(note) => self.on_notification(&myself, state, note).await,
            RunMsg::Request(request) => self.on_request(&myself, state, request).await,
            RunMsg::Stderr(line) => write(state, AuditWrite::Stderr(line)),
            RunMsg::HardTimeout => self.interrupt(&myself, state, true).await,
            RunMsg::Interrupt => self.interrupt(&myself, state, false).await,
            RunMsg::Approve {
                approval_id,
                choice,
                reply,
            } => {
                let outcome = self.on_approve(&myself, state, &approval_id, choice).await;
                let _ = reply.send(outcome);
            }
            RunMsg::PersonAnswered {
                approval_id,
                answer,
            } => {
                self.on_person_answered(&myself, state, &approval_id, answer)
                    .await;
            }
            RunMsg::RetryInterrupt => self.send_interrupt(&myself, state).await,
            RunMsg::InterruptGraceOver => {
                let reason =
                    format!("the turn did not stop within {INTERRUPT_GRACE:?} of the interrupt");
                let timed_out = state.record.as_ref().is_some_and(|record| record.timed_out);
                let status = if timed_out {
                    RunStatus::TimedOut
                } else {
                    RunStatus::Interrupted
                };
                self.end(&myself, state, status, Some(reason)).await;
            }
            RunMsg::Reconnected(connection) => {
                // The audit says the link broke and came back, so that a
                // gap in the stream reads as one, not as a quiet model.
                note(
                    state,
                    "reconnected: the app-server connection dropped and came back; catching up",
                    Value::Null,
                );
                state.connection = connection;
                self.catch_up(&myself, state).await;
            }
            RunMsg::ServerGone(reason) => {
                note(state, &format!("app-server gone: {reason}"), Value::Null);
                self.end(&myself, state, RunStatus::Failed, Some(reason))
                    .await;
            }
            RunMsg::RefreshActive => {
                state.active_refresh_queued = false;
                if state.active_stale {
                    write_active(state);
                }
            }
        }
    }

    async fn on_notification(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        mut note: ServerNotification,
    ) {
        let credit = note.take_credit();
        write(
            state,
            AuditOp::credited(
                AuditEvent::Notification {
                    method: note.method.clone(),
                    params: note.params.clone(),
                },
                credit,
            ),
        );
        if note.is_error() {
            write(
                state,
                AuditWrite::Stderr(format!("error notification: {}", note.params)),
            );
        }
        if let Some(request_id) = note.resolved_request()
            && self.answered_elsewhere(state, &request_id, &note.params)
        {
            self.live_changed(myself, state, true);
        }
        if let Some(started) = note.file_change_started() {
            state.file_changes.insert(started.item_id, started.paths);
        }
        let Some(record) = state.record.as_mut() else {
            return;
        };
        let finished = record.apply(&note);
        let progress = record.progress();
        let run_id = record.run_id.clone();
        let _ = state.broker.cast(BrokerMsg::Progress { run_id, progress });
        if finished.is_some() {
            self.end(myself, state, RunStatus::Completed, None).await;
            return;
        }
        if state.summary_written.elapsed() >= SUMMARY_REFRESH {
            let summary = record.summary();
            write(state, AuditWrite::Summary(Box::new(summary)));
            state.summary_written = Instant::now();
        }
        if state
            .record
            .as_mut()
            .is_some_and(RunRecord::take_live_change)
        {
            self.live_changed(myself, state, false);
        }
    }

    /// Asks Codex to stop the turn; it confirms with `turn/completed`
    /// (`interrupted`), or the grace period ends the run anyway.
    async fn interrupt(&self, myself: &RunRef, state: &mut RunState, timed_out: bool) {
        let Some(record) = state.record.as_mut() else {
            return;
        };
        if record.status != RunStatus::Running {
            return;
        }
        record.timed_out |= timed_out;
        record.set_doing("interrupting".to_string());
        if timed_out {
            self.decline_pending(state, "declined at the hard timeout: nobody answered it")
                .await;
        }
        self.live_changed(myself, state, true);
        let why = if timed_out {
            "hard timeout"
        } else {
            "interrupt requested"
        };
        note(state, &format!("{why}: interrupting the turn"), Value::Null);
        myself.send_after(INTERRUPT_GRACE, || RunMsg::InterruptGraceOver);
        self.send_interrupt(myself, state).await;
    }

    /// `turn/interrupt` for the run's turn while it runs; refused because
    /// the turn is not active yet, tried again shortly (`INTERRUPT_RETRY`).
    async fn send_interrupt(&self, myself: &RunRef, state: &mut RunState) {
        let Some(record) = state.record.as_ref() else {
            return;
        };
        let Some(turn_id) = record
            .turn_id
            .clone()
            .filter(|_| record.status == RunStatus::Running)
        else {
            return;
        };
        let thread_id = record.thread_id.clone();
        match state.connection.turn_interrupt(&thread_id, &turn_id).await {
            Ok(_) => {}
            Err(ConnectionError::Rpc { .. }) => {
                myself.send_after(INTERRUPT_RETRY, || RunMsg::RetryInterrupt);
            }
            Err(error) => tracing::warn!(%error, "turn/interrupt failed"),
        }
    }
}

fn write(state: &RunState, op: impl Into<AuditOp>) {
    if let Some(audit) = &state.audit {
        audit.send(op);
    }
}

/// A note of our own in the run's event stream.
fn note(state: &RunState, message: &str, data: Value) {
    write(
        state,
        AuditOp::event(AuditEvent::sidecar(
            message,
            (!data.is_null()).then_some(data),
        )),
    );
}
