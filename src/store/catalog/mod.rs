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
//! `.md` or `.jsonl`.
//!
//! Speed: a row costs its own strings and nothing else (lines are read
//! through borrowed views, `lines`), and a large index is folded in parts
//! on a few threads (`rows`). 100,000 runs (200,000 lines, 90 MB with full
//! message excerpts) load in about 110–150 ms in release builds on two
//! cores, holding about 85 MB of rows (`timing_of_100k_runs` measures it).

use std::io;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::disk_records::{ActiveRecord, PendingRow};
use super::files::{Skipped, WHOLE_FILE, scan_jsonl_range, split_jsonl};
use super::paths::{active_path, index_path};
use crate::store::{RunId, RunStatus};
use rows::{IndexRows, PointerRows};

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
    /// Boxed: only a waiting run has one, and a row is kept per run, so the
    /// common row stays small (100 000 rows must fit the picker's memory).
    pub pending_approval: Option<Box<PendingRow>>,
    /// The app-server that runs the thread, while the run goes: where a
    /// terminal UI attaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_server_url: Option<String>,
    /// Where that server's token is (never the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_server_token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The named endpoint (`endpoints.toml`) the run went to; absent: the
    /// default. `cwd` is then a path on that endpoint's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// What a catalog read found: the rows, newest first, and what could not be
/// read (a missing index, corrupt lines), said in words for the screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub rows: Vec<RunRow>,
    pub problems: Vec<String>,
}

/// Files smaller than this are folded by one thread: a part this size
/// parses in under 10 ms, and every extra thread brings its own allocator
/// arena, memory that a long-running sidecar keeps after the listing.
const PART_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// At most this many threads fold one file. One, for memory: the picker's
/// first frame with 100 000 runs must stay under 100 MB, and joining parts
/// holds a later part's rows beside the joined ones for a moment. Measured
/// by `benches/picker_first_frame.rs` on 2 cores: one thread 177 ms and
/// 88 MB; two, 117 ms and 107 MB; four, 117 ms and 116 MB. The split
/// reading stays (tested) for a larger value when memory allows.
const FOLD_THREADS_MAX: usize = 1;

/// The runs of one project (one run directory), newest first: each run's
/// index lines joined, and for a run with no end line yet, its active
/// record's live fields.
///
/// A run directory or index that does not exist is an empty catalog with no
/// problem: no run has been here yet, which the screen says its own way.
pub fn load_project(run_dir: &Path) -> Catalog {
    load_project_in_parts(run_dir, PART_MIN_BYTES)
}

fn load_project_in_parts(run_dir: &Path, part_min_bytes: u64) -> Catalog {
    let mut problems = Vec::new();
    let index = index_path(run_dir);
    let (parts, scanned) = fold_parts(&index, part_min_bytes, |rows: &mut IndexRows, line| {
        rows.add_index(serde_json::from_slice(line)?)
    });
    report(&index, scanned, &mut problems);
    let mut parts = parts.into_iter();
    let mut rows = parts.next().unwrap_or_default();
    for later in parts {
        rows.absorb_index(later);
    }
    for (row, ()) in rows.iter_mut() {
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
    load_all_in_parts(pointer_index, PART_MIN_BYTES)
}

fn load_all_in_parts(pointer_index: &Path, part_min_bytes: u64) -> Catalog {
    let mut problems = Vec::new();
    let (parts, scanned) = fold_parts(
        pointer_index,
        part_min_bytes,
        |rows: &mut PointerRows, line| rows.add_pointer(serde_json::from_slice(line)?),
    );
    report(pointer_index, scanned, &mut problems);
    let mut parts = parts.into_iter();
    let mut rows = parts.next().unwrap_or_default();
    for later in parts {
        rows.absorb_pointer(later);
    }
    let mut rows = rows.rows;
    for (row, run_dir) in rows.iter_mut() {
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

/// Folds the lines of `path` into one `R` per part of the file, the parts
/// side by side on up to [`FOLD_THREADS_MAX`] threads, and returns them in
/// file order with what the scans skipped, summed. A part that cannot be
/// read makes the result an error; the other parts are still returned.
fn fold_parts<R: Default + Send>(
    path: &Path,
    part_min_bytes: u64,
    fold: impl Fn(&mut R, &[u8]) -> Result<(), serde_json::Error> + Sync,
) -> (Vec<R>, Result<Skipped, StoreError>) {
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(FOLD_THREADS_MAX);
    let len = std::fs::metadata(path).map_or(0, |metadata| metadata.len());
    let wanted = usize::try_from(len / part_min_bytes.max(1)).unwrap_or(usize::MAX);
    let ranges = match wanted.clamp(1, threads) {
        1 => vec![WHOLE_FILE],
        parts => match split_jsonl(path, parts) {
            Ok(ranges) => ranges,
            Err(error) => return (Vec::new(), Err(error)),
        },
    };
    let scan = |range: Range<u64>| {
        let mut part = R::default();
        let skipped = scan_jsonl_range(path, range, |line| fold(&mut part, line));
        (part, skipped)
    };
    let scanned: Vec<(R, Result<Skipped, StoreError>)> = std::thread::scope(|scope| {
        let mut ranges = ranges.into_iter();
        let first = ranges.next();
        let others: Vec<_> = ranges
            .map(|range| {
                let (scan, part) = (&scan, range.clone());
                std::thread::Builder::new()
                    .name("catalog-fold".into())
                    .spawn_scoped(scope, move || scan(part))
                    .map_err(|_| range)
            })
            .collect();
        let mut scanned: Vec<_> = first.into_iter().map(scan).collect();
        for other in others {
            scanned.push(match other {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                // No thread to be had: this one does the part.
                Err(range) => scan(range),
            });
        }
        scanned
    });
    let mut total = Skipped::default();
    let mut failed = None;
    let mut parts = Vec::with_capacity(scanned.len());
    for (part, skipped) in scanned {
        match skipped {
            Ok(skipped) => {
                total.bad_lines += skipped.bad_lines;
                total.unfinished_tail = skipped.unfinished_tail;
                if total.first_error.is_none() {
                    total.first_error = skipped.first_error;
                }
            }
            Err(error) => {
                failed.get_or_insert(error);
            }
        }
        parts.push(part);
    }
    (parts, failed.map_or(Ok(total), Err))
}

/// Adds a running run's live fields from its active record. A record that
/// is missing (the run ended between the two reads, or its sidecar died
/// before writing it) or empty (a power loss took its unsynced bytes: see
/// [`super::RunAudit::write_active`]) adds nothing; one that cannot be read
/// is a problem, and the row still shows what the index says.
fn overlay_active(row: &mut RunRow, path: &Path, problems: &mut Vec<String>) {
    let bytes = match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => return,
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
    row.pending_approval = active.pending_approval.map(Box::new);
    row.app_server_url = Some(active.app_server_url);
    row.app_server_token_file = active.app_server_token_file;
    if active.endpoint.is_some() {
        row.endpoint = active.endpoint;
    }
}

/// Says in words what a scan of `path` could not read. A last line still
/// being written is not a problem: a listing taken mid-append sees one.
fn report(path: &Path, scanned: Result<Skipped, StoreError>, problems: &mut Vec<String>) {
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
