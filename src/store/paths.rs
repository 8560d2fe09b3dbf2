//! Where each file of a run directory lives, decided here and nowhere else.
//! Only names: computing a path creates nothing, so writers and readers
//! (the audit, the catalog) share these without depending on each other.

use std::path::{Path, PathBuf};

use super::run_id::RunId;

pub(super) const ACTIVE_DIR: &str = "active";
pub(super) const INDEX_FILE: &str = "index.jsonl";
const EVENTS_SUFFIX: &str = ".jsonl";
const STDERR_SUFFIX: &str = ".stderr.log";
const SUMMARY_SUFFIX: &str = ".md";
pub(super) const ACTIVE_SUFFIX: &str = ".json";

/// Where one run's files are. Computing them creates nothing, so readers can
/// use this too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    pub events: PathBuf,
    pub stderr: PathBuf,
    pub summary: PathBuf,
    pub active: PathBuf,
}

impl RunPaths {
    pub fn new(run_dir: &Path, run_id: &RunId) -> RunPaths {
        let file = |suffix: &str| run_dir.join(format!("{run_id}{suffix}"));
        RunPaths {
            events: file(EVENTS_SUFFIX),
            stderr: file(STDERR_SUFFIX),
            summary: file(SUMMARY_SUFFIX),
            active: active_path(run_dir, run_id),
        }
    }
}

/// `active/<runId>.json` alone, for readers that need nothing else.
pub(crate) fn active_path(run_dir: &Path, run_id: &RunId) -> PathBuf {
    let mut path = run_dir.join(ACTIVE_DIR);
    path.push(format!("{run_id}{ACTIVE_SUFFIX}"));
    path
}

/// The project's `index.jsonl`.
pub(crate) fn index_path(run_dir: &Path) -> PathBuf {
    run_dir.join(INDEX_FILE)
}
