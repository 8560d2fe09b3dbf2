//! The catalog of runs: what `codex_runs`, `codex-runs --json` and the picker
//! show, read from the run store by one piece of code. A row joins a run's
//! index records (start, end) with its live `active/<runId>.json` while it
//! goes.
//!
//! The shape of [`RunRow`] is `codex-runs --json`'s documented output:
//! fields are only ever added.
//!
//! The loaders are blocking `std::fs` (callers run them off the async
//! executor) and never fail: what they cannot read becomes a line in
//! [`Catalog::problems`] and the rest is still listed. They read one index
//! file, streaming, and an active record per running run; never a run's
//! `.md` or `.jsonl`. Each row costs its own strings and nothing else, so
//! 100,000 runs load in a fraction of a second.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::audit::{active_path, index_path};
use super::files::{Skipped, scan_jsonl};
use super::records::ActiveRecord;
use crate::store::{RunId, RunStatus};
use lines::PointerLine;
use rows::Rows;

mod lines;
mod rows;

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

/// The runs of one project (one run directory), newest first: each run's
/// index lines joined, and for a run with no end line yet, its active
/// record's live fields.
///
/// A run directory or index that does not exist is an empty catalog with no
/// problem: no run has been here yet, which the screen says its own way.
pub fn load_project(run_dir: &Path) -> Catalog {
    let mut problems = Vec::new();
    let mut rows = Rows::default();
    let index = index_path(run_dir);
    let scanned = scan_jsonl(&index, |line| rows.add_index(serde_json::from_slice(line)?));
    report(&index, scanned, &mut problems);
    for row in rows.rows.iter_mut() {
        if row.status == RunStatus::Running {
            let path = active_path(run_dir, &row.run_id);
            overlay_active(row, &path, &mut problems);
        }
    }
    Catalog {
        rows: rows.newest_first(),
        problems,
    }
}

/// The runs of every project, newest first, through the per-user pointer
/// index (each run's latest line wins), and for a run still running, its
/// active record's live fields from its run directory.
///
/// The pointer index carries no message excerpt (it is every project's, so
/// it stays small); [`load_project`] has them.
pub fn load_all(pointer_index: &Path) -> Catalog {
    let mut problems = Vec::new();
    let mut rows = Rows::default();
    // Run directories repeat (one per project): each is kept once, and each
    // row holds its number.
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut dir_numbers: HashMap<PathBuf, usize> = HashMap::new();
    let mut dir_of: Vec<usize> = Vec::new();
    let scanned = scan_jsonl(pointer_index, |line| {
        let line: PointerLine<'_> = serde_json::from_slice(line)?;
        let run_dir = Path::new(line.run_dir.as_str());
        let number = match dir_numbers.get(run_dir) {
            Some(&number) => number,
            None => {
                dirs.push(run_dir.to_path_buf());
                dir_numbers.insert(run_dir.to_path_buf(), dirs.len() - 1);
                dirs.len() - 1
            }
        };
        let at = rows.add_pointer(line)?;
        match dir_of.get_mut(at) {
            Some(slot) => *slot = number,
            None => dir_of.push(number),
        }
        Ok(())
    });
    report(pointer_index, scanned, &mut problems);
    for (row, &number) in rows.rows.iter_mut().zip(&dir_of) {
        if row.status != RunStatus::Running {
            continue;
        }
        if let Some(run_dir) = dirs.get(number) {
            let path = active_path(run_dir, &row.run_id);
            overlay_active(row, &path, &mut problems);
        }
    }
    Catalog {
        rows: rows.newest_first(),
        problems,
    }
}

/// Adds a running run's live fields from its active record. A record that
/// is missing (the run ended between the two reads, or its sidecar died
/// before writing it) adds nothing; one that cannot be read is a problem,
/// and the row still shows what the index says.
fn overlay_active(row: &mut RunRow, path: &Path, problems: &mut Vec<String>) {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return,
        Err(error) => {
            problems.push(format!("{}: cannot be read: {error}", path.display()));
            return;
        }
    };
    let active: ActiveRecord = match serde_json::from_slice(&bytes) {
        Ok(active) => active,
        Err(error) => {
            problems.push(format!(
                "{}: not an active record ({error}); the run is listed from its index",
                path.display()
            ));
            return;
        }
    };
    if active.run_id != row.run_id {
        problems.push(format!(
            "{}: names run {}, not {}",
            path.display(),
            active.run_id,
            row.run_id
        ));
        return;
    }
    if row.thread_id.is_none() {
        row.thread_id = Some(active.thread_id);
    }
    row.started_at.get_or_insert(active.started_at);
    if active.total_tokens.is_some() {
        row.total_tokens = active.total_tokens;
    }
    row.progress = active.progress;
    if active.last_message.is_some() {
        row.last_message = active.last_message;
    }
    row.pending_approval = active.pending_approval;
    row.app_server_url = Some(active.app_server_url);
}

/// Says in words what a scan of `path` could not read. A last line still
/// being written is not a problem: a listing taken mid-append sees one.
fn report(path: &Path, scanned: Result<Skipped, super::StoreError>, problems: &mut Vec<String>) {
    match scanned {
        Ok(skipped) if skipped.bad_lines > 0 => {
            let lines = match skipped.bad_lines {
                1 => "1 line".to_string(),
                count => format!("{count} lines"),
            };
            problems.push(format!("{}: {lines} could not be read", path.display()));
        }
        Ok(_) => {}
        Err(error) => problems.push(error.to_string()),
    }
}

#[cfg(test)]
mod tests;
