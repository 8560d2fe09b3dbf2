//! `RunActor`: one per turn. It starts (or recovers) its turn, receives the
//! turn's notifications and server requests from its router, answers
//! every request, keeps the run's audit, reports progress and the end to the
//! wait broker, and stops when the turn is over.

mod report;

pub use report::{RunReport, RunReportRef};

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Value, json};

use crate::actors::approvals::{self, Choice, PendingApproval};
use crate::actors::audit_writer::{AuditOp, AuditWrite, AuditWriter};
use crate::actors::broker::BrokerMsg;
use crate::actors::record::{RunRecord, RunSettings};
use crate::actors::types::{EngineError, RunStarted, RunStatus};
use crate::appserver::{AppServerConnection, ConnectionError};
use crate::protocol::jsonrpc::RpcError;
use crate::protocol::{
    RequestId, SandboxMode, ServerNotification, ServerRequest, ServerRequestKind,
    ThreadResumeParams, ThreadSettings, TurnStartParams, TurnStatus,
};
use crate::store::catalog::PendingRow;
use crate::store::{
    self, ActiveRecord, AuditEvent, IndexEvent, IndexRecord, PointerRecord, Refusal,
    RefusedRequest, RunId,
};

/// After the hard timeout interrupts a turn, Codex confirms with
/// `turn/completed` at once; if it has not within this long, the run ends
/// `timed_out` anyway so that no run stays running forever.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// The readable summary is rewritten at most this often while a run goes:
/// often enough to follow along, rarely enough that a flood of deltas does
/// not turn into a flood of fsyncs.
const SUMMARY_REFRESH: Duration = Duration::from_secs(2);

/// The active record's live fields (progress, message excerpt, tokens) are
/// rewritten at most this often: a person watching a listing sees a change
/// within half a second, which reads as live, while a stream of hundreds of
/// deltas a second costs at most two fsync'd atomic replaces. A pending
/// approval appearing or going away is written at once: someone may be
/// waiting to answer it.
const ACTIVE_REFRESH_INTERVAL: Duration = Duration::from_millis(500);

/// JSON-RPC code for a server request we will not serve.
const DECLINED_REQUEST: i64 = -32000;

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
    InterruptGraceOver,
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
    Resume {
        thread_id: String,
        settings: RunSettings,
        /// The caller chose permissions: they go on the turn too, since
        /// Codex ignores them in `thread/resume` of a loaded thread.
        chosen_access: bool,
    },
    /// A run another sidecar started and left behind: subscribe again and
    /// catch up from `thread/read`.
    Recover(Box<ActiveRecord>),
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
    pub timeout: Duration,
    /// Where the caller waits for the run handle (`None` when recovering).
    pub reply: Option<RpcReplyPort<Result<RunStarted, EngineError>>>,
}

pub struct RunState {
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
    /// The run owns `active/<runId>.json` (written at the start, or found
    /// when recovering) and keeps it current until the end removes it.
    active_owned: bool,
    active_written: Instant,
    /// A live change is not on disk yet.
    active_stale: bool,
    /// A `RefreshActive` is on its way.
    active_refresh_queued: bool,
    /// Decides approvals: a request may only have what this sandbox allows.
    sandbox: Option<SandboxMode>,
    /// The caller answers requests (it asked for an approval policy that
    /// asks); otherwise the sandbox does.
    interactive: bool,
    /// Requests waiting for the caller, oldest first.
    pending: Vec<(PendingApproval, ServerRequest)>,
    next_approval: u64,
    /// The paths of each file-change item seen starting, by item id: its
    /// approval request names only the item, and the caller wants the files.
    file_changes: HashMap<String, Vec<String>>,
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
        Ok(RunState {
            connection: args.connection.clone(),
            reports: args.reports.clone(),
            broker: args.broker.clone(),
            run_dir: args.run_dir.clone(),
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
            sandbox: None,
            interactive: false,
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
        let Some(mut args) = state.args.take() else {
            return Ok(());
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
        Ok(())
    }

    async fn handle(
        &self,
        myself: RunRef,
        message: RunMsg,
        state: &mut RunState,
    ) -> Result<(), ActorProcessingErr> {
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
        Ok(())
    }
}

impl RunActor {
    /// Starts or recovers the turn; the run handle on success.
    async fn begin(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        args: RunArgs,
    ) -> Result<RunStarted, EngineError> {
        let audit =
            AuditWriter::open(&args.run_dir, &args.run_id, args.pointer_index.clone()).await?;
        state.audit = Some(audit);
        state.app_server_url = args.app_server_url.clone();
        state.app_server_token_file = args.app_server_token_file.clone();
        let connection = state.connection.clone();
        let chosen_access = matches!(
            args.start,
            Start::Resume {
                chosen_access: true,
                ..
            }
        );
        // A resume whose thread this connection is already subscribed to
        // skips `thread/resume`; kept here in case `turn/start` says the
        // thread is gone after all.
        let mut deferred_resume = None;
        let is_new = matches!(args.start, Start::New { .. });
        let (settings, thread_id, recovered) = match args.start {
            Start::New { settings } => {
                let params = ThreadSettings {
                    cwd: Some(args.cwd.display().to_string()),
                    approval_policy: Some(settings.approval_policy),
                    sandbox: Some(settings.sandbox),
                    model: settings.model.clone(),
                    config: settings.extras.config.clone(),
                    base_instructions: settings.extras.base_instructions.clone(),
                    developer_instructions: settings.extras.developer_instructions.clone(),
                };
                let response = connection.thread_start(&params).await?;
                // What a later turn without overrides should go back to.
                let text = |key: &str| {
                    response
                        .extra
                        .get(key)
                        .and_then(|value| value.as_str())
                        .map(str::to_string)
                };
                state.reports.send_message(RunReport::ThreadDefaults {
                    thread_id: response.thread.id.clone(),
                    model: text("model"),
                    reasoning_effort: text("reasoningEffort"),
                })?;
                (settings, response.thread.id, None)
            }
            Start::Resume {
                thread_id,
                settings,
                ..
            } => {
                let params = ThreadResumeParams {
                    thread_id: thread_id.clone(),
                    settings: ThreadSettings {
                        cwd: Some(args.cwd.display().to_string()),
                        approval_policy: Some(settings.approval_policy),
                        sandbox: Some(settings.sandbox),
                        model: settings.model.clone(),
                        config: settings.extras.config.clone(),
                        ..ThreadSettings::default()
                    },
                };
                // Subscribed means loaded, and Codex ignores these settings
                // on a loaded thread: the turn carries what must change.
                if connection.is_subscribed(&thread_id) {
                    deferred_resume = Some(params);
                } else {
                    connection.thread_resume(&params).await?;
                }
                (settings, thread_id, None)
            }
            Start::Recover(active) => {
                // Unknown after a crash: approve nothing.
                let settings = RunSettings::unknown();
                let thread_id = active.thread_id.clone();
                (settings, thread_id, Some(active))
            }
        };
        state.sandbox = Some(settings.sandbox);
        state.interactive = settings.interactive;
        let mut record = RunRecord::new(
            args.run_id.clone(),
            args.title.clone(),
            args.prompt.clone(),
            args.cwd.clone(),
            settings.clone(),
            thread_id.clone(),
        );
        // Routed before our turn starts, so none of its events is missed.
        state.reports.send_message(RunReport::Route {
            thread_id: thread_id.clone(),
            run: myself.clone(),
        })?;

        if let Some(active) = recovered {
            record.turn_id = active.turn_id.clone();
            record.started_at = active.started_at.clone();
            state.record = Some(record);
            // Ours now: the next rewrite names this sidecar's pid, so no
            // other sidecar adopts the run again while we follow it.
            state.app_server_url = active.app_server_url.clone();
            state.app_server_token_file = active.app_server_token_file.clone();
            state.active_owned = true;
            if let Some(record) = state.record.as_mut() {
                record.set_doing("recovered".to_string());
            }
            self.live_changed(myself, state, true);
            note(
                state,
                "recovered by a new sidecar after its owner stopped",
                json!({"pid": std::process::id()}),
            );
            self.schedule_timeout(myself, args.timeout);
            self.catch_up(myself, state).await;
            let turn_id = active.turn_id.unwrap_or_default();
            return Ok(RunStarted {
                run_id: args.run_id,
                thread_id,
                turn_id,
            });
        }

        let mut turn = TurnStartParams::text(&thread_id, &args.prompt);
        turn.model = settings.model.clone();
        turn.effort = settings.reasoning_effort.clone();
        if !is_new {
            // Like the permissions below: a loaded thread keeps its cwd
            // through `thread/resume` (or that request was skipped), so the
            // resume's own directory goes on the turn.
            turn.cwd = Some(args.cwd.display().to_string());
        }
        if chosen_access {
            // `thread/resume` of a thread Codex still has loaded keeps the
            // thread's old approval policy and sandbox: a resume asking for
            // read-only would run with whatever the last turn had. The turn's
            // own overrides always apply.
            turn.approval_policy = Some(settings.approval_policy);
            turn.sandbox_policy = Some(settings.sandbox.into());
        }
        // Record the thread before turn/start, so a failure is audited with it.
        state.record = Some(record);
        // How this connection came to get the thread's events, for the audit.
        let mut subscription = match (&deferred_resume, is_new) {
            (_, true) => "thread/start",
            (None, false) => "thread/resume",
            (Some(_), false) => "already subscribed",
        };
        let turn = match (connection.turn_start(&turn).await, deferred_resume) {
            (Ok(started), _) => started.turn,
            // Closed between our check and the turn: subscribe, then again.
            (Err(ConnectionError::Rpc { .. }), Some(resume)) => {
                connection.thread_resume(&resume).await?;
                subscription = "thread/resume after turn/start failed";
                connection.turn_start(&turn).await?.turn
            }
            (Err(error), _) => return Err(error.into()),
        };
        let started = RunStarted {
            run_id: args.run_id.clone(),
            thread_id: thread_id.clone(),
            turn_id: turn.id.clone(),
        };
        if let Some(record) = state.record.as_mut() {
            record.turn_id = Some(turn.id.clone());
        }
        note(
            state,
            "run started",
            json!({"prompt": args.prompt, "turnId": turn.id, "subscription": subscription}),
        );
        self.write_start_records(state);
        if let Some(audit) = &state.audit {
            audit.flush().await;
        }
        if let Some(record) = &state.record {
            state.broker.cast(BrokerMsg::Started {
                run_id: record.run_id.clone(),
                thread_id: thread_id.clone(),
                title: record.title.clone(),
                cwd: record.cwd.clone(),
            })?;
        }
        self.schedule_timeout(myself, args.timeout);
        Ok(started)
    }

    fn schedule_timeout(&self, myself: &RunRef, timeout: Duration) {
        myself.send_after(timeout, || RunMsg::HardTimeout);
    }

    fn write_start_records(&self, state: &mut RunState) {
        state.active_owned = true;
        write_active(state);
        let Some(record) = &state.record else { return };
        let ops = [
            AuditWrite::Index(Box::new(index_record(record, IndexEvent::Start))),
            AuditWrite::Pointer(Box::new(pointer_record(record, &state.run_dir))),
            AuditWrite::Summary(Box::new(record.summary())),
        ];
        for op in ops {
            write(state, op);
        }
        state.summary_written = Instant::now();
    }

    /// Something a listing shows changed: rewrite the active record now when
    /// `urgent` (a pending approval came or went) or when the last write is
    /// `ACTIVE_REFRESH_INTERVAL` old; otherwise once that interval is over.
    fn live_changed(&self, myself: &RunRef, state: &mut RunState, urgent: bool) {
        if !state.active_owned {
            return;
        }
        state.active_stale = true;
        let since = state.active_written.elapsed();
        if urgent || since >= ACTIVE_REFRESH_INTERVAL {
            write_active(state);
        } else if !state.active_refresh_queued {
            state.active_refresh_queued = true;
            myself.send_after(ACTIVE_REFRESH_INTERVAL - since, || RunMsg::RefreshActive);
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
        if note.method == "error" {
            write(
                state,
                AuditWrite::Stderr(format!("error notification: {}", note.params)),
            );
        }
        if note.method == "serverRequest/resolved" && self.answered_elsewhere(state, &note.params) {
            self.live_changed(myself, state, true);
        }
        if note.method == "item/started" && note.params["item"]["type"] == "fileChange" {
            let item = &note.params["item"];
            let paths = item["changes"]
                .as_array()
                .map(|changes| {
                    changes
                        .iter()
                        .filter_map(|change| change["path"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(id) = item["id"].as_str() {
                state.file_changes.insert(id.to_string(), paths);
            }
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

    /// Every request gets an answer. When the caller asked for an approval
    /// policy that asks, it decides (`Approve`) and the request waits;
    /// otherwise the sandbox decides at once (see `approvals::automatic`).
    async fn on_request(&self, myself: &RunRef, state: &mut RunState, mut request: ServerRequest) {
        let credit = request.take_credit();
        write(
            state,
            AuditOp::credited(
                AuditEvent::ServerRequest {
                    id: request.id.clone(),
                    method: request.method.clone(),
                    params: request.params.clone(),
                },
                credit,
            ),
        );
        if state.interactive {
            state.next_approval += 1;
            let id = format!("a{}", state.next_approval);
            let files = match &request.kind {
                ServerRequestKind::FileChangeApproval(params) => {
                    state.file_changes.get(&params.item_id).cloned()
                }
                _ => None,
            };
            if let Some(approval) = approvals::pending(&request, id, files.as_deref())
                && let Some(record) = &state.record
            {
                let message = format!("waiting for the caller: approval {}", approval.approval_id);
                note(state, &message, request.params.clone());
                let _ = state.broker.cast(BrokerMsg::Pending {
                    run_id: record.run_id.clone(),
                    approval: approval.clone(),
                });
                state.pending.push((approval, request));
                self.live_changed(myself, state, true);
                return;
            }
        }
        let (answer, refused) = approvals::automatic(&request, state.sandbox);
        if let Some(reason) = refused {
            refuse(state, &request, Refusal::Declined, &reason);
        }
        respond(state, &request, answer).await;
    }

    /// The caller's answer to a pending request.
    async fn on_approve(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        approval_id: &str,
        choice: Choice,
    ) -> Result<(), EngineError> {
        let Some(index) = state
            .pending
            .iter()
            .position(|(approval, _)| approval.approval_id == approval_id)
        else {
            return Err(EngineError::BadRequest(format!(
                "no pending approval {approval_id} on this run"
            )));
        };
        let answer = approvals::answer(&state.pending[index].1, choice).ok_or_else(|| {
            EngineError::BadRequest(
                "a question without options needs a free answer, which codex_approve cannot give; decline or cancel it"
                    .to_string(),
            )
        })?;
        let (approval, request) = state.pending.remove(index);
        let message = format!(
            "the caller chose {} for approval {}",
            choice.as_str(),
            approval.approval_id
        );
        note(state, &message, Value::Null);
        if choice != Choice::Accept {
            let refusal = if choice == Choice::Cancel {
                Refusal::Cancelled
            } else {
                Refusal::Declined
            };
            refuse(state, &request, refusal, &message);
        }
        respond(state, &request, answer).await;
        self.resolved(state, &approval.approval_id);
        self.live_changed(myself, state, true);
        Ok(())
    }

    /// Declines every request still waiting for the caller, with `reason`.
    async fn decline_pending(&self, state: &mut RunState, reason: &str) {
        for (approval, request) in std::mem::take(&mut state.pending) {
            refuse(state, &request, Refusal::Declined, reason);
            let answer = approvals::answer(&request, Choice::Decline)
                .unwrap_or_else(|| Err(reason.to_string()));
            respond(state, &request, answer).await;
            self.resolved(state, &approval.approval_id);
        }
    }

    /// Another client of the thread (a person in the Codex terminal UI)
    /// answered a request we hold for the caller: it is no longer pending,
    /// and the caller can no longer answer it.
    /// Whether it was one of ours.
    fn answered_elsewhere(&self, state: &mut RunState, params: &Value) -> bool {
        let Some(id) = params
            .get("requestId")
            .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok())
        else {
            return false;
        };
        let Some(index) = state
            .pending
            .iter()
            .position(|(_, request)| request.id == id)
        else {
            return false;
        };
        let (approval, _) = state.pending.remove(index);
        let message = format!(
            "approval {} was answered in another client of the thread",
            approval.approval_id
        );
        note(state, &message, params.clone());
        self.resolved(state, &approval.approval_id);
        true
    }

    fn resolved(&self, state: &RunState, approval_id: &str) {
        if let Some(record) = &state.record {
            let _ = state.broker.cast(BrokerMsg::Resolved {
                run_id: record.run_id.clone(),
                approval_id: approval_id.to_string(),
            });
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
        let Some(record) = state.record.as_ref() else {
            return;
        };
        let (thread_id, turn_id) = (record.thread_id.clone(), record.turn_id.clone());
        let why = if timed_out {
            "hard timeout"
        } else {
            "interrupt requested"
        };
        note(state, &format!("{why}: interrupting the turn"), Value::Null);
        if let Some(turn_id) = turn_id
            && let Err(error) = state.connection.turn_interrupt(&thread_id, &turn_id).await
        {
            tracing::warn!(%error, "turn/interrupt failed");
        }
        myself.send_after(INTERRUPT_GRACE, || RunMsg::InterruptGraceOver);
    }

    /// After a reconnect or a recovery: subscribe to the thread again and,
    /// when the turn ended while nobody watched, close the run from the
    /// thread's record.
    async fn catch_up(&self, myself: &RunRef, state: &mut RunState) {
        let Some(record) = &state.record else { return };
        let (thread_id, turn_id) = (record.thread_id.clone(), record.turn_id.clone());
        let resume = ThreadResumeParams {
            thread_id: thread_id.clone(),
            settings: ThreadSettings::default(),
        };
        if let Err(error) = state.connection.thread_resume(&resume).await {
            let reason = format!("the thread is gone: {error}");
            self.end(myself, state, RunStatus::Failed, Some(reason))
                .await;
            return;
        }
        let turns = match state.connection.thread_read(&thread_id, true).await {
            Ok(response) => response.thread.turns,
            Err(error) => {
                tracing::warn!(%error, "thread/read after catching up failed");
                return;
            }
        };
        let turn = match &turn_id {
            Some(turn_id) => turns.iter().find(|turn| &turn.id == turn_id),
            None => turns.last(),
        };
        if let Some(turn) = turn
            && turn.status != TurnStatus::InProgress
        {
            if let Some(record) = state.record.as_mut() {
                record.turn_id = Some(turn.id.clone());
                record.finish_with_turn(turn);
            }
            // The audit holds every turn's end: this one as thread/read
            // gave it, marked so, since no notification was received.
            write(
                state,
                AuditOp::event(AuditEvent::Notification {
                    method: "turn/completed".to_string(),
                    params: json!({
                        "threadId": thread_id,
                        "turn": turn,
                        "recoveredFrom": "thread/read",
                    }),
                }),
            );
            note(
                state,
                "closed from thread/read: the turn ended while nobody watched",
                json!({"turnId": turn.id}),
            );
            self.end(myself, state, RunStatus::Completed, None).await;
        }
    }

    /// Ends the run (if it is not over yet, with `status` and `error`),
    /// writes the end records, flushes the audit, tells the broker and the
    /// router of its thread, and stops.
    async fn end(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        status: RunStatus,
        error: Option<String>,
    ) {
        self.decline_pending(state, "declined: the turn ended before anyone answered")
            .await;
        if let Some(record) = state.record.as_mut() {
            record.finish(status, error);
            let record = &*record;
            let ops = [
                AuditWrite::Summary(Box::new(record.summary())),
                AuditWrite::Index(Box::new(index_record(record, IndexEvent::End))),
                AuditWrite::Pointer(Box::new(pointer_record(record, &state.run_dir))),
                AuditWrite::RemoveActive,
            ];
            for op in ops {
                write(state, op);
            }
        }
        // Removed: a refresh still on its way must not write it back.
        state.active_owned = false;
        let audit_error = match state.audit.take() {
            Some(audit) => audit.close().await,
            None => None,
        };
        if let Some(record) = &state.record {
            // The router first: a caller woken by the broker may resume
            // at once, and must find the thread free and the run known.
            let _ = state.reports.send_message(RunReport::Ended {
                run_id: record.run_id.clone(),
                thread_id: record.thread_id.clone(),
                cwd: record.cwd.clone(),
            });
            let mut result = record.result();
            result.audit_error = audit_error;
            let _ = state.broker.cast(BrokerMsg::Ended(result));
        }
        myself.stop(None);
    }
}

/// Sends the answer to a server request and audits it.
async fn respond(state: &RunState, request: &ServerRequest, answer: Result<Value, String>) {
    let (sent, response) = match answer {
        Ok(result) => (
            state.connection.respond(&request.id, &result).await,
            AuditEvent::Response {
                id: request.id.clone(),
                result: Some(result),
                error: None,
            },
        ),
        Err(message) => {
            let error = RpcError {
                code: DECLINED_REQUEST,
                message,
                data: None,
            };
            let sent = state.connection.respond_error(&request.id, &error).await;
            let response = AuditEvent::Response {
                id: request.id.clone(),
                result: None,
                error: Some(error),
            };
            (sent, response)
        }
    };
    if let Err(error) = sent {
        tracing::warn!(%error, method = %request.method, "could not answer a server request");
    }
    write(state, AuditOp::event(response));
}

/// Queues the whole active record as it stands now: fields from the start,
/// the live view, and the oldest pending approval.
fn write_active(state: &mut RunState) {
    let Some(record) = &state.record else { return };
    if !state.active_owned {
        return;
    }
    let live = record.live();
    let pending = state.pending.first().map(|(approval, _)| PendingRow {
        approval_id: approval.approval_id.clone(),
        kind: approval.kind.to_string(),
        summary: approval.summary.clone(),
    });
    let progress = match &pending {
        Some(pending) => format!("waiting for approval: {}", pending.kind),
        None => live.progress,
    };
    let active = ActiveRecord {
        run_id: record.run_id.clone(),
        thread_id: record.thread_id.clone(),
        turn_id: record.turn_id.clone(),
        cwd: record.cwd.clone(),
        title: record.title.clone(),
        started_at: record.started_at.clone(),
        app_server_url: state.app_server_url.clone(),
        app_server_token_file: state.app_server_token_file.clone(),
        pid: std::process::id(),
        total_tokens: Some(live.total_tokens),
        progress: Some(progress),
        last_message: live.last_message,
        pending_approval: pending,
        updated_at: Some(store::now_rfc3339()),
    };
    write(state, AuditWrite::Active(Box::new(active)));
    state.active_written = Instant::now();
    state.active_stale = false;
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

/// Records a request we did not grant: in the event stream and the summary.
fn refuse(state: &mut RunState, request: &ServerRequest, refusal: Refusal, reason: &str) {
    note(state, reason, request.params.clone());
    if let Some(record) = state.record.as_mut() {
        record.note_refused(RefusedRequest {
            method: request.method.clone(),
            detail: request
                .params
                .get("command")
                .and_then(Value::as_str)
                .map(str::to_string),
            refusal,
            reason: reason.to_string(),
        });
    }
}

fn index_record(record: &RunRecord, event: IndexEvent) -> IndexRecord {
    let ended = event == IndexEvent::End;
    IndexRecord {
        event,
        run_id: record.run_id.clone(),
        thread_id: Some(record.thread_id.clone()),
        turn_id: record.turn_id.clone(),
        title: record.title.clone(),
        cwd: record.cwd.clone(),
        status: record.status,
        at: store::now_rfc3339(),
        duration_ms: record.duration_ms,
        error: record.error.clone(),
        total_tokens: ended.then(|| record.total_tokens()),
        last_message: ended.then(|| record.final_excerpt()).flatten(),
    }
}

fn pointer_record(record: &RunRecord, run_dir: &std::path::Path) -> PointerRecord {
    let ended = record.status.is_final();
    PointerRecord {
        run_id: record.run_id.clone(),
        project_root: record.cwd.clone(),
        run_dir: run_dir.to_path_buf(),
        thread_id: Some(record.thread_id.clone()),
        title: Some(record.title.clone()),
        status: record.status,
        at: store::now_rfc3339(),
        total_tokens: ended.then(|| record.total_tokens()),
        duration_ms: record.duration_ms,
    }
}
