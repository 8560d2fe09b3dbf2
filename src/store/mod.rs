//! The audit trail of runs on disk: this module owns every file a run leaves
//! behind and the formats of those files. Nothing a run did may be lost, so
//! appends never interleave or tear a line that was acknowledged, whole files
//! are only ever replaced atomically, and readers survive a crash's torn tail.
//!
//! # Layout
//!
//! Under a run directory (`Config::run_dir`, `<cwd>/.codex/codex-mcp/runs/`):
//!
//! - `.gitignore` (`*`): the audit is never committed by accident.
//! - `<runId>.jsonl`: every event of the run, raw, with the time it arrived
//!   ([`AuditRecord`]).
//! - `<runId>.stderr.log`: app-server stderr and error notifications seen
//!   while the run was active, one timestamped line each.
//! - `<runId>.md`: a readable summary ([`RunSummary`], [`render_markdown`]).
//! - `active/<runId>.json`: present while the run goes, rewritten whole as
//!   it moves, with what a listing shows live ([`ActiveRecord`]). Not
//!   synced: after a power loss it may be empty, which reads as absent.
//! - `index.jsonl`: a start and an end record per run ([`IndexRecord`]);
//!   the end carries what a listing shows of a finished run. The start
//!   record is the one synced before the run's handle goes out.
//!
//! And per user, the pointer index (`Config::pointer_index`), so that a run id
//! resolves to its project from anywhere ([`PointerRecord`]).
//!
//! All IO is blocking `std::fs`: callers run it off the async executor.
//!
//! - [`run_id`]: run ids (timestamps are [`crate::timestamp`]'s).
//! - [`files`]: the primitives (private dirs, whole-line appends, atomic
//!   writes, a tolerant, streaming JSONL reader that can read a file in
//!   parts).
//! - [`group_sync`]: appends that wait for the disk share one sync (group
//!   commit).
//! - [`paths`]: where each file of a run directory lives.
//! - [`disk_records`]: the JSON records of those files.
//! - [`summary`]: the Markdown summary and titles (`markdown` holds the
//!   escaping it needs).
//! - [`audit`]: one run's files, the indexes, and their readers.
//! - [`catalog`]: runs as listings show them (`codex_runs`,
//!   `codex-runs --json`, the picker): the only reader of the indexes for
//!   listings.

use std::path::{Path, PathBuf};

pub mod audit;
pub mod catalog;
pub mod disk_records;
pub mod files;
pub(crate) mod group_sync;
mod markdown;
pub mod paths;
pub mod run_id;
pub mod run_slots;
pub mod summary;

pub use audit::{
    RunAudit, append_index, append_pointer, list_active, read_events, read_index, read_pointer,
};
pub use disk_records::{
    ActiveRecord, Answerer, AuditEvent, AuditRecord, IndexEvent, IndexRecord, PendingRow,
    PointerRecord, RunStatus,
};
pub use files::{append_json_line, write_atomic};
pub use paths::RunPaths;
pub use run_id::{RUN_ID_EXAMPLE, RunId};
pub use summary::{
    AnsweredRequest, CommandRun, Refusal, RefusedRequest, RunSummary, TokenUsage, render_markdown,
    title_for,
};

/// Everything that can go wrong at the store's boundary. IO errors name the
/// file, since a bare "permission denied" is useless in a log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode a record for {}: {source}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("bad run id {value:?}: {reason} (a run id looks like {RUN_ID_EXAMPLE})")]
    BadRunId { value: String, reason: &'static str },
    #[error(
        "{} is a symbolic link; the audit never writes through one (remove it, or point CODEX_MCP_WRAPPER_RUN_DIR elsewhere)",
        path.display()
    )]
    Symlink { path: PathBuf },
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
