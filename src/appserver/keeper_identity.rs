//! Who the keeper is, so that `app-server stop` never signals a stranger
//! that got the keeper's pid after it died.
//!
//! The keeper records two things in [`SharedState`] besides its pid: its
//! start time, where the process table has one (Linux, macOS), and that it
//! holds an exclusive flock on `app-server.keeper.lock` for its whole life
//! (every keeper since issue 12). A pid is our keeper when it runs, its
//! start time matches, and the lock is held. With no process table (the
//! fallback) the lock alone tells: it dies with the keeper, even on SIGKILL.
//!
//! The lock says "a keeper runs", not "this pid is it"; it names the pid in
//! the state file because a keeper is only ever started under the launch
//! lock, which `app-server stop` (`stop_keeper`) holds too, and a started keeper
//! writes its state before the launch lock is let go.

use std::fs::File;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::shared_files::{SharedError, SharedPaths, SharedState, lock_within};
use crate::process_table::{self, Backend};

/// The hidden CLI subcommand that runs the keeper (`keeper::run_keeper`);
/// on its command line, it is also what marks a keeper of an older sidecar.
pub const KEEPER_SUBCOMMAND: &str = "__app-server-keeper";

/// Someone else holds the keeper lock only for the instant of a
/// non-blocking check, or because another keeper runs on this pointer dir
/// (then waiting longer would not help: the launch lock keeps a second
/// keeper from being started on purpose).
const KEEPER_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the keeper holds for its whole life; dropping it lets the lock go.
#[derive(Debug)]
pub struct KeeperLock {
    _lock: Flock<File>,
}

/// Taken by the keeper first thing, before it starts the app-server. The
/// file is opened close-on-exec, so the app-server does not inherit it and
/// the lock goes with the keeper alone.
pub async fn hold_keeper_lock(paths: &SharedPaths) -> Result<KeeperLock, SharedError> {
    lock_within(
        &paths.keeper_lock(),
        FlockArg::LockExclusive,
        KEEPER_LOCK_TIMEOUT,
    )
    .await
    .map(|lock| KeeperLock { _lock: lock })
}

/// What identifies the calling process as the keeper, for its state file.
pub fn own_identity() -> (u32, Option<process_table::ProcessStart>) {
    let pid = std::process::id();
    (pid, process_table::start_time(pid))
}

/// Whether the state file's keeper still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeeperLiveness {
    Running,
    /// Gone, or its pid now belongs to another process.
    Gone,
    /// A state file of an older keeper (no start time, no lock), on a system
    /// whose process table cannot read command lines: the pid runs, but we
    /// cannot tell whether it is the keeper.
    Unknown,
}

/// Checks every mark of identity the state file and the process table have.
pub fn keeper_liveness(state: &SharedState, paths: &SharedPaths) -> KeeperLiveness {
    keeper_liveness_on(Backend::current(), state, paths)
}

/// [`keeper_liveness`] on a given process table: tests run each one.
pub fn keeper_liveness_on(
    table: Backend,
    state: &SharedState,
    paths: &SharedPaths,
) -> KeeperLiveness {
    let pid = state.keeper_pid;
    if !table.alive(pid) {
        return KeeperLiveness::Gone;
    }
    let mut verified = false;
    if let (Some(recorded), Some(now)) = (state.keeper_started, table.start_time(pid)) {
        if recorded != now {
            return KeeperLiveness::Gone;
        }
        verified = true;
    }
    if state.keeper_lock {
        match keeper_lock_held(paths) {
            Ok(true) => verified = true,
            Ok(false) => return KeeperLiveness::Gone,
            Err(error) => tracing::warn!(%error, "could not check the keeper lock"),
        }
    }
    if verified {
        return KeeperLiveness::Running;
    }
    // A state file from before the keeper recorded who it is: its command
    // line is all we can go by, where the table shows one.
    match table.has_argument(pid, KEEPER_SUBCOMMAND) {
        Some(true) => KeeperLiveness::Running,
        Some(false) => KeeperLiveness::Gone,
        None => KeeperLiveness::Unknown,
    }
}

/// A keeper that runs, as far as we can tell: see [`keeper_liveness`].
pub fn is_keeper(state: &SharedState, paths: &SharedPaths) -> bool {
    keeper_liveness(state, paths) == KeeperLiveness::Running
}

/// Whether some process holds the keeper lock: a non-blocking exclusive try
/// fails exactly then. A missing file means no keeper of ours ever ran here.
fn keeper_lock_held(paths: &SharedPaths) -> std::io::Result<bool> {
    let path = paths.keeper_lock();
    let file = match File::options().read(true).open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        // Ours for an instant, released on drop: nobody held it.
        Ok(_free) => Ok(false),
        Err((_, Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, errno)) => Err(errno.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn state(pid: u32, started: Option<u64>, lock: bool) -> SharedState {
        SharedState {
            url: "ws://127.0.0.1:1".into(),
            keeper_pid: pid,
            app_server_pgid: i32::MAX,
            started_at: String::new(),
            keeper_started: started,
            keeper_lock: lock,
        }
    }

    /// A process that is certainly not a keeper, standing in for whatever
    /// got the dead keeper's pid.
    fn stranger() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    #[tokio::test]
    async fn a_reused_pid_with_another_start_time_is_not_the_keeper() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SharedPaths::new(dir.path());
        let mut stranger = stranger();
        let pid = stranger.id();
        let started = process_table::start_time(pid).expect("Linux and macOS have start times");
        // Even while a keeper lock is held (a new keeper that has not yet
        // written its state): the start time says this pid is someone else.
        let _lock = hold_keeper_lock(&paths).await.unwrap();
        let reused = state(pid, Some(started + 1), true);
        assert_eq!(keeper_liveness(&reused, &paths), KeeperLiveness::Gone);
        assert!(!is_keeper(&reused, &paths));
        // Same start and the lock held: the recorded keeper itself.
        assert!(is_keeper(&state(pid, Some(started), true), &paths));
        stranger.kill().unwrap();
        stranger.wait().unwrap();
        assert!(
            !is_keeper(&state(pid, Some(started), true), &paths),
            "it died"
        );
    }

    #[tokio::test]
    async fn without_start_times_the_lock_decides() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SharedPaths::new(dir.path());
        let mut stranger = stranger();
        let pid = stranger.id();
        // What a keeper on the fallback records: no start time.
        let recorded = state(pid, None, true);
        assert!(
            !is_keeper(&recorded, &paths),
            "no lock file: no keeper ran here"
        );
        let lock = hold_keeper_lock(&paths).await.unwrap();
        assert!(is_keeper(&recorded, &paths));
        drop(lock);
        assert!(
            !is_keeper(&recorded, &paths),
            "the lock died with the keeper"
        );
        // The check's own instant of holding the lock did not keep it.
        let _again = hold_keeper_lock(&paths).await.unwrap();
        stranger.kill().unwrap();
        stranger.wait().unwrap();
    }

    #[test]
    fn an_old_state_file_is_judged_by_the_command_line_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SharedPaths::new(dir.path());
        let old: SharedState = serde_json::from_value(serde_json::json!({
            "url": "ws://127.0.0.1:1",
            "keeper_pid": std::process::id(),
            "app_server_pgid": i32::MAX,
            "started_at": "2026-11-01T00:00:00Z",
        }))
        .unwrap();
        assert_eq!((old.keeper_started, old.keeper_lock), (None, false));
        // We run, but we are no keeper: the command line says so.
        let expected = match Backend::current() {
            Backend::Signals => KeeperLiveness::Unknown,
            _ => KeeperLiveness::Gone,
        };
        assert_eq!(keeper_liveness(&old, &paths), expected);
        assert!(!is_keeper(&old, &paths));
    }
}
