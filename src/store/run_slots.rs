//! The cap on runs going at once (`CODEX_MCP_WRAPPER_MAX_RUNS`), counted
//! across every sidecar on one pointer directory, so across the sidecars of
//! one user on the shared app-server.
//!
//! Each sidecar that has runs going keeps one file,
//! `run-slots/<pid>-<n>.runs` (`n` tells apart the engines of one process),
//! holding how many: replaced whole by rename, so a crash leaves the old
//! number or the new, never a torn one. A run is admitted under an
//! exclusive `flock` on `run-slots/.lock` (held for a directory read and
//! one small write): the files of live sidecars are summed, a dead
//! sidecar's file is removed (its runs died with it, or a sidecar adopting
//! them runs them uncounted until they end), and one more than the cap is
//! refused at once. Nothing here is awaited in an actor: the engine takes
//! a slot on the blocking pool before it asks the Supervisor, and a slot
//! is given back when the last holder drops it (the run's actor, or the
//! request that never became one).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nix::fcntl::{Flock, FlockArg};

use super::files::write_atomic;
use crate::process_table;

/// The folder under the pointer directory.
const SLOTS_DIR: &str = "run-slots";
const LOCK_FILE: &str = ".lock";
const SLOT_SUFFIX: &str = ".runs";

/// A run over the cap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{running} runs are going (the cap, {cap}, is CODEX_MCP_WRAPPER_MAX_RUNS)")]
pub struct OverCap {
    pub running: usize,
    pub cap: usize,
}

/// This sidecar's share of the count. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RunSlots {
    dir: PathBuf,
    /// `None`: no cap, nothing counted.
    cap: Option<usize>,
    /// This process's runs holding a slot; written to its file under the lock.
    mine: Arc<Mutex<usize>>,
    /// This engine's file.
    own_file: PathBuf,
}

/// Tells apart the engines of one process (tests run several).
static ENGINES: AtomicU64 = AtomicU64::new(0);

/// One admitted run's place; given back when dropped.
#[derive(Debug)]
pub struct RunSlot {
    slots: RunSlots,
}

impl RunSlots {
    pub fn new(pointer_dir: &Path, cap: Option<usize>) -> RunSlots {
        let dir = pointer_dir.join(SLOTS_DIR);
        let engine = ENGINES.fetch_add(1, Ordering::Relaxed);
        RunSlots {
            own_file: dir.join(format!("{}-{engine}{SLOT_SUFFIX}", std::process::id())),
            dir,
            cap,
            mine: Arc::new(Mutex::new(0)),
        }
    }

    /// Blocking (a lock and a directory read): call it off the async
    /// threads. `Ok(None)` with no cap, or when the count cannot be kept
    /// (an unwritable pointer directory): the cap is a guard, not a reason
    /// to stop work; that is logged.
    pub fn take(&self) -> Result<Option<RunSlot>, OverCap> {
        let Some(cap) = self.cap else {
            return Ok(None);
        };
        match self.admit(cap) {
            Ok(admitted) => admitted.map(|()| {
                Some(RunSlot {
                    slots: self.clone(),
                })
            }),
            Err(error) => {
                tracing::warn!(%error, dir = %self.dir.display(), "could not count the runs going; this one goes uncounted");
                Ok(None)
            }
        }
    }

    fn admit(&self, cap: usize) -> std::io::Result<Result<(), OverCap>> {
        let _lock = self.lock()?;
        let mut mine = self.mine.lock().unwrap_or_else(PoisonError::into_inner);
        let running = *mine + self.others()?;
        if running >= cap {
            return Ok(Err(OverCap { running, cap }));
        }
        self.write_mine(*mine + 1)?;
        *mine += 1;
        Ok(Ok(()))
    }

    /// In memory at once (this sidecar's next run sees the place free);
    /// the file follows in [`RunSlots::write_back`].
    fn give_back(&self) {
        let mut mine = self.mine.lock().unwrap_or_else(PoisonError::into_inner);
        *mine = mine.saturating_sub(1);
    }

    /// Writes this sidecar's count as it is now, under the lock.
    fn write_back(&self) {
        let given = self.lock().and_then(|_lock| {
            let mine = *self.mine.lock().unwrap_or_else(PoisonError::into_inner);
            self.write_mine(mine)
        });
        if let Err(error) = given {
            tracing::warn!(%error, "could not give a run's slot back; it frees when this sidecar exits");
        }
    }

    fn lock(&self) -> std::io::Result<Flock<File>> {
        // Owner-only, as everything under the pointer dir.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(LOCK_FILE))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| errno.into())
    }

    /// The runs of the other live sidecars; the files of dead ones go.
    fn others(&self) -> std::io::Result<usize> {
        let mut total = 0;
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(pid) = slot_pid(&path) else { continue };
            if path == self.own_file {
                continue;
            }
            if !process_table::alive(pid) {
                let _ = fs::remove_file(path);
                continue;
            }
            total += fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse::<usize>().ok())
                .unwrap_or(0);
        }
        Ok(total)
    }

    fn write_mine(&self, count: usize) -> std::io::Result<()> {
        let path = &self.own_file;
        if count == 0 {
            return match fs::remove_file(path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            };
        }
        write_atomic(path, count.to_string().as_bytes()).map_err(std::io::Error::other)
    }
}

/// The pid in a slot file's name; `None` for anything else there (the
/// lock, a temp file of a replace under way).
fn slot_pid(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?.strip_suffix(SLOT_SUFFIX)?;
    name.split_once('-')?.0.parse().ok()
}

impl Drop for RunSlot {
    /// The file is written on the blocking pool when a runtime is there (a
    /// run actor's state drops on an async thread), else here.
    fn drop(&mut self) {
        self.slots.give_back();
        let slots = self.slots.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || slots.write_back());
            }
            Err(_) => slots.write_back(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_live_sidecars_and_forgets_dead_ones() {
        let dir = tempfile::tempdir().unwrap();
        let slots = RunSlots::new(dir.path(), Some(2));
        let first = slots.take().unwrap().unwrap();
        let _second = slots.take().unwrap().unwrap();
        assert_eq!(slots.take().unwrap_err(), OverCap { running: 2, cap: 2 });
        drop(first);
        let third = slots.take().unwrap();
        assert!(third.is_some());
        // Another live sidecar's runs count (our parent runs); a dead
        // one's file is removed.
        let parent = nix::unistd::getppid().as_raw() as u32;
        fs::write(
            dir.path().join(SLOTS_DIR).join(format!("{parent}-0.runs")),
            "1",
        )
        .unwrap();
        let dead = dir.path().join(SLOTS_DIR).join("999999999-0.runs");
        fs::write(&dead, "5").unwrap();
        // A second engine counts the first one's two runs and the
        // parent's one, as another sidecar's would be.
        let other = RunSlots::new(dir.path(), Some(3));
        assert_eq!(other.take().unwrap_err(), OverCap { running: 3, cap: 3 });
        assert!(!dead.exists());
        assert!(RunSlots::new(dir.path(), None).take().unwrap().is_none());
    }
}
