//! Which runs `codex-runs` shows, for the picker and `--json` alike.

use std::path::PathBuf;

use crate::store::catalog::{self, Catalog};

/// Which runs a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One project's run directory.
    Project { project: PathBuf, run_dir: PathBuf },
    /// Every project, through the pointer index.
    All { pointer_index: PathBuf },
}

impl Scope {
    /// Reads the runs (blocking: call it off the async executor).
    pub fn load(&self) -> Catalog {
        match self {
            Scope::Project { run_dir, .. } => catalog::load_project(run_dir),
            Scope::All { pointer_index } => catalog::load_all(pointer_index),
        }
    }
}
