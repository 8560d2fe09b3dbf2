//! The catalog of runs: what `codex_runs`, `codex-runs --json` and the picker
//! show, read from the run store by one piece of code. A row joins a run's
//! index records (start, end) with its live `active/<runId>.json` while it
//! goes.
//!
//! The shape of [`RunRow`] is `codex-runs --json`'s documented output:
//! fields are only ever added.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::{RunId, RunStatus};

/// One run as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    pub run_id: RunId,
    /// The run's name, or the first line of its prompt.
    pub title: String,
    /// `running` until the end record; a running run whose owner is gone and
    /// whose app-server no longer answers still reads `running` here: the
    /// next sidecar adopts and closes it.
    pub status: RunStatus,
    /// The project (the run's cwd).
    pub cwd: PathBuf,
    /// Absent when the run failed before Codex gave it a thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Total tokens so far (running) or in all (ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// A short line on what the turn is doing (running runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// An excerpt of the last agent message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    /// A request of the run waiting for the caller's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingRow>,
    /// The app-server that runs the thread, while the run goes: where a
    /// terminal UI attaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_server_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A pending approval as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRow {
    pub approval_id: String,
    /// `command`, `fileChange`, `permissions`, `userInput` or `mcpElicitation`.
    pub kind: String,
    /// The command, or the files, in short.
    pub summary: String,
}

/// What a catalog read found: the rows, newest first, and what could not be
/// read (a missing index, corrupt lines), said in words for the screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub rows: Vec<RunRow>,
    pub problems: Vec<String>,
}
