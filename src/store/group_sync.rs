//! Group commit for the appends that must survive a power loss (a run's
//! start line in the project index): each writer appends its own line, then
//! waits until a `sync_data` that began after its write has finished. Runs
//! that start together share one sync: while one writer's sync is under
//! way, the others append behind it and the next sync covers them all. A
//! sync is a journal commit, 0.1 ms on an idle disk and several on a busy
//! one, so sharing it is what keeps many starts at once from queuing behind
//! each other's syncs.
//!
//! `fdatasync` works on the file, not on the descriptor: any descriptor of
//! the same file makes every write made before it durable. Writers are
//! therefore grouped by the file's identity (device and inode), never by
//! its path, which a rename could point elsewhere.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};

use super::StoreError;

/// Whether a write (an append, an atomic replace) waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    ToDisk,
    No,
}

/// A file's identity: its device and inode.
type FileKey = (u64, u64);

/// Every file synced by this process so far, each with its own group. An
/// entry is a few words and the files are the project indexes this
/// process wrote to, so the map is never pruned.
static GROUPS: LazyLock<Mutex<HashMap<FileKey, Arc<Group>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The writers of one file.
#[derive(Default)]
struct Group {
    state: Mutex<Progress>,
    /// Woken when a sync finishes.
    synced: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    /// Writes made so far, each numbered by [`write_done`].
    written: u64,
    /// Every write numbered up to this one is durable.
    synced: u64,
    /// A writer is syncing now (its own write and those before it).
    syncing: bool,
    /// `sync_data` calls made, for tests.
    syncs: u64,
}

/// The lock, whatever a panicking holder left: the counters are only ever
/// moved forward, so they stay meaningful.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn group_of(file: &File) -> io::Result<Arc<Group>> {
    let meta = file.metadata()?;
    let key = (meta.dev(), meta.ino());
    Ok(lock(&GROUPS).entry(key).or_default().clone())
}

/// Makes everything written to `file` so far durable, sharing the sync with
/// other writers of the same file: returns once a `sync_data` that began
/// after this call finished. Called right after the write, with the file
/// still open.
pub fn sync_written(file: &File) -> io::Result<()> {
    let group = group_of(file)?;
    let mut state = lock(&group.state);
    state.written += 1;
    let mine = state.written;
    loop {
        if state.synced >= mine {
            return Ok(());
        }
        if state.syncing {
            // A sync is under way; it may have begun before this write, so
            // wait for it, then look again: the next one covers this write.
            state = group
                .synced
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        // This writer syncs for everyone who has written so far.
        state.syncing = true;
        state.syncs += 1;
        let covers = state.written;
        drop(state);
        let outcome = file.sync_data();
        state = lock(&group.state);
        state.syncing = false;
        if outcome.is_ok() {
            state.synced = state.synced.max(covers);
        }
        group.synced.notify_all();
        // A failed sync is this writer's error; the writers waiting behind
        // it try again themselves.
        outcome?;
    }
}

/// What an append asked for once its lines are written to `file`: nothing,
/// or [`sync_written`] (with `path` named in the error).
pub(super) fn sync_appended(file: &File, path: &Path, sync: Sync) -> Result<(), StoreError> {
    match sync {
        Sync::ToDisk => sync_written(file).map_err(|source| StoreError::io(path, source)),
        Sync::No => Ok(()),
    }
}

/// How many `sync_data` calls this process made for `file` (the same file,
/// by any path or descriptor).
#[cfg(test)]
pub fn syncs_of(file: &File) -> io::Result<u64> {
    Ok(lock(&group_of(file)?.state).syncs)
}

/// The syncs made so far for the file at `path`, for tests of the writers
/// above this module; a file not there yet is created empty (so that its
/// later syncs count from this one).
#[cfg(test)]
pub fn syncs_at(path: &std::path::Path) -> u64 {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    syncs_of(&file).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    /// How long a test waits for its threads to reach the point it needs:
    /// far more than they take on a loaded machine; only a hang trips it.
    const THREADS_REACH: Duration = Duration::from_secs(30);

    fn appender(path: &std::path::Path) -> File {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap()
    }

    #[test]
    fn each_write_alone_gets_its_own_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.jsonl");
        // An inode of a removed file may come back with its old group:
        // counted from here.
        let before = syncs_of(&appender(&path)).unwrap();
        for n in 1..=3 {
            let mut file = appender(&path);
            writeln!(file, "{n}").unwrap();
            sync_written(&file).unwrap();
            assert_eq!(syncs_of(&file).unwrap() - before, n);
        }
    }

    /// Writers who write while a sync is under way wait for it and then
    /// share the next one: three writes, one sync for them.
    #[test]
    fn writes_made_during_a_sync_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.jsonl");
        let probe = appender(&path);
        let group = group_of(&probe).unwrap();
        // Stands for a writer whose sync began before the three wrote.
        let before = {
            let mut state = lock(&group.state);
            state.syncing = true;
            *state
        };
        let writers: Vec<_> = (0..3)
            .map(|n| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut file = appender(&path);
                    writeln!(file, "{n}").unwrap();
                    sync_written(&file).unwrap();
                })
            })
            .collect();
        let deadline = Instant::now() + THREADS_REACH;
        while lock(&group.state).written < before.written + 3 {
            assert!(Instant::now() < deadline, "the writers never wrote");
            std::thread::sleep(Duration::from_millis(1));
        }
        // The stand-in's sync ends without covering them.
        lock(&group.state).syncing = false;
        group.synced.notify_all();
        for writer in writers {
            writer.join().unwrap();
        }
        let state = *lock(&group.state);
        assert_eq!(
            (state.syncs - before.syncs, state.synced - before.written),
            (1, 3),
            "{state:?}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }
}
