//! How a run begins and ends. Three ways to begin, each its own path: a new
//! thread (`thread/start`), a resumed one (`thread/resume`, skipped when this
//! connection still has the thread), and a run recovered from a sidecar that
//! stopped (no `turn/start`: catch up from `thread/read`). One way to end.

use std::time::{Duration, Instant};

use serde_json::json;

use super::active::write_active;
use super::{
    ResumeStart, RunActor, RunArgs, RunMsg, RunRef, RunReport, RunState, Start, StickySettings,
    note, write,
};
use crate::actors::audit_writer::{AuditOp, AuditWrite, AuditWriter};
use crate::actors::broker::BrokerMsg;
use crate::actors::run_state::{RunRecord, RunSettings, effective_differences};
use crate::actors::types::{EngineError, RunStarted, RunStatus};
use crate::appserver::ConnectionError;
use crate::protocol::ThreadId;
use crate::protocol::{
    ThreadResponse, ThreadResumeParams, ThreadSettings, TurnStartParams, TurnStatus,
};
use crate::store::{ActiveRecord, AuditEvent, IndexEvent, IndexRecord, PointerRecord, RunId};
use crate::timestamp::now_rfc3339;

/// What every way of beginning needs besides how it begins.
struct TurnArgs {
    run_id: RunId,
    prompt: String,
    title: String,
    cwd: std::path::PathBuf,
    timeout: Duration,
}

/// How this connection came to get the thread's events.
enum Subscribed {
    /// `thread/start`.
    NewThread,
    /// `thread/resume`, or skipped (`deferred`) as the thread was loaded.
    Resumed {
        deferred: Option<ThreadResumeParams>,
        chosen_access: bool,
        known: Option<Box<StickySettings>>,
    },
}

impl RunActor {
    /// Starts or recovers the turn; the run handle on success. Each way of
    /// beginning has its own path: a new thread, a resumed thread, a run
    /// recovered from another sidecar.
    pub(super) async fn begin(
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
        let turn = TurnArgs {
            run_id: args.run_id,
            prompt: args.prompt,
            title: args.title,
            cwd: args.cwd,
            timeout: args.timeout,
        };
        match args.start {
            Start::New { settings } => self.start_new(myself, state, turn, settings).await,
            Start::Resume(resume) => self.resume(myself, state, turn, resume).await,
            Start::Recover(active) => self.recover(myself, state, turn, *active).await,
        }
    }

    /// `thread/start`, then the turn.
    async fn start_new(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        turn: TurnArgs,
        settings: RunSettings,
    ) -> Result<RunStarted, EngineError> {
        let params = ThreadSettings {
            cwd: Some(turn.cwd.display().to_string()),
            approval_policy: Some(settings.approval_policy),
            sandbox: Some(settings.sandbox),
            model: settings.model.clone(),
            config: settings.extras.config.clone(),
            base_instructions: settings.extras.base_instructions.clone(),
            developer_instructions: settings.extras.developer_instructions.clone(),
        };
        let response = state.connection.thread_start(&params).await?;
        // What a later turn without overrides should go back to.
        let thread_id = response.thread.id.clone();
        state.reports.send_message(RunReport::ThreadDefaults {
            thread_id: thread_id.clone(),
            model: response.model(),
            reasoning_effort: response.reasoning_effort(),
        })?;
        self.open_record(myself, state, &turn, &settings, thread_id.clone())?;
        note_effective(state, &settings, &response);
        self.write_early_records(state);
        let how = Subscribed::NewThread;
        self.start_turn(myself, state, turn, &settings, thread_id, how)
            .await
    }

    /// `thread/resume` of an earlier run's thread (unless this connection
    /// still has it), then the turn.
    async fn resume(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        turn: TurnArgs,
        resume: ResumeStart,
    ) -> Result<RunStarted, EngineError> {
        let ResumeStart {
            thread_id,
            settings,
            chosen_access,
            known,
        } = resume;
        let params = ThreadResumeParams {
            thread_id: thread_id.clone(),
            settings: ThreadSettings {
                cwd: Some(turn.cwd.display().to_string()),
                approval_policy: Some(settings.approval_policy),
                sandbox: Some(settings.sandbox),
                model: settings.model.clone(),
                config: settings.extras.config.clone(),
                ..ThreadSettings::default()
            },
        };
        // Subscribed means loaded, and Codex ignores these settings on a
        // loaded thread: the turn carries what must change. The skipped
        // resume is kept in case `turn/start` says the thread is gone after
        // all.
        let (deferred, resumed) = if state.connection.is_subscribed(&thread_id) {
            (Some(params), None)
        } else {
            (None, Some(state.connection.thread_resume(&params).await?))
        };
        self.open_record(myself, state, &turn, &settings, thread_id.clone())?;
        if let Some(response) = &resumed {
            note_effective(state, &settings, response);
        }
        self.write_early_records(state);
        let how = Subscribed::Resumed {
            deferred,
            chosen_access,
            known: known.map(Box::new),
        };
        self.start_turn(myself, state, turn, &settings, thread_id, how)
            .await
    }

    /// A run another sidecar started and left behind: no `turn/start`;
    /// subscribe again and catch up from `thread/read`.
    async fn recover(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        turn: TurnArgs,
        active: ActiveRecord,
    ) -> Result<RunStarted, EngineError> {
        // Unknown after a crash: approve nothing.
        let settings = RunSettings::unknown();
        let thread_id = ThreadId::from(active.thread_id.clone());
        self.open_record(myself, state, &turn, &settings, thread_id.clone())?;
        if let Some(record) = state.record.as_mut() {
            record.turn_id = active.turn_id.clone();
            record.started_at = active.started_at.clone();
        }
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
        self.schedule_timeout(myself, turn.timeout);
        self.catch_up(myself, state).await;
        let turn_id = active.turn_id.unwrap_or_default();
        Ok(RunStarted {
            run_id: turn.run_id,
            thread_id,
            turn_id,
        })
    }

    /// The thread is known: the run's record, and the route of the thread's
    /// events to this run, before its turn starts, so none of them is missed.
    fn open_record(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        turn: &TurnArgs,
        settings: &RunSettings,
        thread_id: ThreadId,
    ) -> Result<(), EngineError> {
        state.sandbox = Some(settings.sandbox);
        state.interactive = settings.interactive;
        state.person = settings.person.clone();
        let mut record = RunRecord::new(
            turn.run_id.clone(),
            turn.title.clone(),
            turn.prompt.clone(),
            turn.cwd.clone(),
            settings.clone(),
            thread_id.clone(),
        );
        record.endpoint = state.endpoint.clone();
        state.reports.send_message(RunReport::Route {
            thread_id,
            run: myself.clone(),
        })?;
        // Recorded before turn/start, so a failure is audited with it.
        state.record = Some(record);
        Ok(())
    }

    /// `turn/start` on a thread this connection is subscribed to, then the
    /// start records, flushed before the caller hears of the run.
    async fn start_turn(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        args: TurnArgs,
        settings: &RunSettings,
        thread_id: ThreadId,
        how: Subscribed,
    ) -> Result<RunStarted, EngineError> {
        let connection = state.connection.clone();
        let (is_new, chosen_access, deferred_resume, known) = match how {
            Subscribed::NewThread => (true, false, None, None),
            Subscribed::Resumed {
                deferred,
                chosen_access,
                known,
            } => (false, chosen_access, deferred, known),
        };
        let sticky = StickySettings {
            model: settings.model.clone(),
            reasoning_effort: settings.reasoning_effort.clone(),
            cwd: args.cwd.display().to_string(),
        };
        let mut turn = TurnStartParams::text(thread_id.clone(), &args.prompt);
        // A thread this connection kept loaded since a run here left it
        // with some settings has them still.
        let kept = known.as_deref().filter(|_| deferred_resume.is_some());
        sticky.put_on(&mut turn, !is_new, kept);
        if chosen_access {
            // `thread/resume` of a thread Codex still has loaded keeps the
            // thread's old approval policy and sandbox: a resume asking for
            // read-only would run with whatever the last turn had. The turn's
            // own overrides always apply.
            turn.approval_policy = Some(settings.approval_policy);
            turn.sandbox_policy = Some(settings.sandbox.into());
        }
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
        state.sticky = Some(sticky);
        tracing::debug!(turn_id = %turn.id, subscription, "turn started");
        note(
            state,
            "run started",
            json!({"prompt": args.prompt, "turnId": turn.id, "subscription": subscription}),
        );
        self.write_start_records(state);
        if let Some(audit) = &state.audit {
            audit.flush().await;
        }
        // The active record, written before the turn, gets the turn's id
        // with its next refresh; until then readers take it from the index.
        self.live_changed(myself, state, false);
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

    pub(super) fn schedule_timeout(&self, myself: &RunRef, timeout: Duration) {
        myself.send_after(timeout, || RunMsg::HardTimeout);
    }

    /// The thread is known, the turn not yet: the run's active record and
    /// summary, queued now so that the audit writer creates them while
    /// `turn/start` is on its way (each a file created and renamed, 0.1 to
    /// 0.7 ms here), not after it. Neither names the turn until its next
    /// rewrite. Nobody can find the run before its index start line exists
    /// (every look-up and listing starts from an index), and that line has
    /// the turn.
    fn write_early_records(&self, state: &mut RunState) {
        state.active_owned = true;
        write_active(state);
        self.write_summary(state);
    }

    /// What must be on disk before the caller hears of the run, besides the
    /// active record written before the turn: its index start line (synced:
    /// the record a crash cannot lose) and its pointer line.
    pub(super) fn write_start_records(&self, state: &mut RunState) {
        let Some(record) = &state.record else { return };
        let ops = [
            AuditWrite::Index(Box::new(index_record(record, IndexEvent::Start))),
            AuditWrite::Pointer(Box::new(pointer_record(record, &state.run_dir))),
        ];
        for op in ops {
            write(state, op);
        }
    }

    fn write_summary(&self, state: &mut RunState) {
        let Some(record) = &state.record else { return };
        let summary = AuditWrite::Summary(Box::new(record.summary()));
        write(state, summary);
        state.summary_written = Instant::now();
    }

    /// After a reconnect or a recovery: subscribe to the thread again and,
    /// when the turn ended while nobody watched, close the run from the
    /// thread's record.
    pub(super) async fn catch_up(&self, myself: &RunRef, state: &mut RunState) {
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
    pub(super) async fn end(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        status: RunStatus,
        error: Option<String>,
    ) {
        tracing::debug!(?status, "run ending");
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
        // Its place under the cap first: a caller woken by the broker may
        // start another run at once.
        state.slot = None;
        if let Some(record) = &state.record {
            // The router first: a caller woken by the broker may resume
            // at once, and must find the thread free and the run known.
            let _ = state.reports.send_message(RunReport::Ended {
                run_id: record.run_id.clone(),
                thread_id: record.thread_id.clone(),
                cwd: record.cwd.clone(),
                sticky: state.sticky.clone(),
            });
            let mut result = record.result();
            result.audit_error = audit_error;
            let _ = state.broker.cast(BrokerMsg::Ended(result));
        }
        myself.stop(None);
    }
}

pub(super) fn index_record(record: &RunRecord, event: IndexEvent) -> IndexRecord {
    let ended = event == IndexEvent::End;
    IndexRecord {
        event,
        run_id: record.run_id.clone(),
        thread_id: Some(record.thread_id.to_string()),
        turn_id: record.turn_id.clone(),
        title: record.title.clone(),
        cwd: record.cwd.clone(),
        status: record.status,
        at: now_rfc3339(),
        endpoint: record.endpoint.clone(),
        duration_ms: record.duration_ms,
        error: record.error.clone(),
        total_tokens: ended.then(|| record.total_tokens()),
        last_message: ended.then(|| record.final_excerpt()).flatten(),
    }
}

pub(super) fn pointer_record(record: &RunRecord, run_dir: &std::path::Path) -> PointerRecord {
    let ended = record.status.is_final();
    PointerRecord {
        run_id: record.run_id.clone(),
        project_root: record.cwd.clone(),
        run_dir: run_dir.to_path_buf(),
        thread_id: Some(record.thread_id.to_string()),
        title: Some(record.title.clone()),
        status: record.status,
        at: now_rfc3339(),
        total_tokens: ended.then(|| record.total_tokens()),
        duration_ms: record.duration_ms,
        endpoint: record.endpoint.clone(),
    }
}

/// Warns in the run's result where the thread did not get the model or
/// sandbox that was asked (what `thread/start` / `thread/resume` report).
fn note_effective(state: &mut RunState, settings: &RunSettings, response: &ThreadResponse) {
    let lines = effective_differences(
        settings.model.as_deref(),
        settings.sandbox,
        response.model().as_deref(),
        response.sandbox(),
    );
    if let Some(record) = state.record.as_mut() {
        for line in &lines {
            record.warn(line);
        }
    }
}
