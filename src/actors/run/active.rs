//! The active-record projection: `active/<runId>.json` as a listing shows
//! it (the record's live view and the oldest pending approval), rewritten
//! whole by the audit writer, at most every `ACTIVE_REFRESH_INTERVAL` unless
//! something urgent changed.

use std::time::{Duration, Instant};

use super::{RunActor, RunMsg, RunRef, RunState, write};
use crate::actors::audit_writer::AuditWrite;
use crate::store::ActiveRecord;
use crate::store::PendingRow;
use crate::timestamp::now_rfc3339;

/// The active record's live fields (progress, message excerpt, tokens) are
/// rewritten at most this often: a person watching a listing sees a change
/// within half a second, which reads as live, while a stream of hundreds of
/// deltas a second costs at most two atomic replaces. A pending
/// approval appearing or going away is written at once: someone may be
/// waiting to answer it.
const ACTIVE_REFRESH_INTERVAL: Duration = Duration::from_millis(500);

impl RunActor {
    /// Something a listing shows changed: rewrite the active record now when
    /// `urgent` (a pending approval came or went) or when the last write is
    /// `ACTIVE_REFRESH_INTERVAL` old; otherwise once that interval is over.
    pub(super) fn live_changed(&self, myself: &RunRef, state: &mut RunState, urgent: bool) {
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
}

/// Queues the whole active record as it stands now: fields from the start,
/// the live view, and the oldest pending approval.
pub(super) fn write_active(state: &mut RunState) {
    let Some(record) = &state.record else { return };
    if !state.active_owned {
        return;
    }
    let live = record.live();
    let oldest = state.pending.first().map(|held| &held.approval);
    let pending = oldest.map(|approval| PendingRow {
        approval_id: approval.approval_id.clone(),
        kind: approval.kind.to_string(),
        summary: approval.summary.clone(),
    });
    let progress = match oldest {
        Some(approval) if approval.asked_person => {
            format!(
                "waiting for approval: {} (the person is asked)",
                approval.kind
            )
        }
        Some(approval) => format!("waiting for approval: {}", approval.kind),
        None => live.progress,
    };
    let active = ActiveRecord {
        run_id: record.run_id.clone(),
        thread_id: record.thread_id.to_string(),
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
        updated_at: Some(now_rfc3339()),
        endpoint: record.endpoint.clone(),
    };
    write(state, AuditWrite::Active(Box::new(active)));
    state.active_written = Instant::now();
    state.active_stale = false;
}
