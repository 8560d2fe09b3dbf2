//! The keeper's idle clock, and `app-server stop` against every process
//! table this platform has.

use super::*;
use std::os::unix::process::CommandExt;

#[test]
fn idle_check_interval_is_a_quarter_within_bounds() {
    let ms = Duration::from_millis;
    for (idle, check) in [(ms(100), MIN_IDLE_CHECK), (ms(4000), ms(1000))] {
        assert_eq!(idle_check_interval(idle), check);
    }
    assert_eq!(idle_check_interval(ms(600_000)), MAX_IDLE_CHECK);
}

/// Every process table this platform has.
const TABLES: &[Backend] = &[
    #[cfg(target_os = "linux")]
    Backend::Procfs,
    #[cfg(target_os = "macos")]
    Backend::Darwin,
    Backend::Signals,
];

/// The keeper died and its pid went to another process: `app-server
/// stop` cleans up after the keeper and never signals that process, on
/// every process table. A state file of an older keeper, which left no
/// mark to check, is refused where the command line cannot be read.
#[tokio::test]
async fn stop_never_signals_a_process_that_got_the_keepers_pid() {
    for &table in TABLES {
        let dir = tempfile::tempdir().unwrap();
        let paths = SharedPaths::new(dir.path());
        // Another pointer dir's keeper, say: its command line looks
        // like a keeper's, so only the start time or the lock tell.
        let mut stranger = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :", KEEPER_SUBCOMMAND])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = stranger.id();
        // The dead keeper held the lock; nobody does now. Where the
        // table has start times, they alone must tell: there the lock is
        // held, as by a keeper that has not written its state yet.
        let lock = hold_keeper_lock(&paths).await.unwrap();
        let _held = table.start_time(pid).map(|_| lock);
        let dead_keeper = SharedState {
            url: "ws://127.0.0.1:1".into(),
            keeper_pid: pid,
            // No such group: nothing of the keeper's is left.
            app_server_pgid: i32::MAX,
            started_at: String::new(),
            // The keeper started at another time than the stranger.
            keeper_started: table.start_time(pid).map(|start| start + 1),
            keeper_lock: true,
        };
        dead_keeper.write(&paths.state()).unwrap();
        let outcome = stop_keeper_on(table, dir.path()).await.unwrap();
        assert_eq!(outcome, StopOutcome::Stale(pid), "{table:?}");
        assert!(!paths.state().exists(), "{table:?}: cleaned up");
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "{table:?}: signalled"
        );
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        stranger.wait().unwrap();

        let mut stranger = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = stranger.id();
        let older_keeper = SharedState {
            keeper_pid: pid,
            keeper_started: None,
            keeper_lock: false,
            ..dead_keeper
        };
        older_keeper.write(&paths.state()).unwrap();
        match (table, stop_keeper_on(table, dir.path()).await) {
            (Backend::Signals, Err(KeeperError::Unidentified { pid: named })) => {
                assert_eq!(named, pid);
                assert!(paths.state().exists(), "kept for when it can be told");
            }
            (Backend::Signals, other) => panic!("{other:?}"),
            // The command line shows it is no keeper.
            (_, outcome) => assert_eq!(outcome.unwrap(), StopOutcome::Stale(pid)),
        }
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "{table:?}: signalled"
        );
        stranger.kill().unwrap();
        stranger.wait().unwrap();
    }
}
