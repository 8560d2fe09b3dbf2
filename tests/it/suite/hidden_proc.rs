//! The macOS path on Linux (issue 12): every sidecar runs in a mount
//! namespace of its own with a tmpfs laid over `/proc`, so the process
//! table has nothing to read, as on a Mac, and the fallback
//! (`kill(pid, 0)`, the keeper's lock) is all there is. The test itself runs
//! outside those namespaces and checks what happened on the real `/proc`.
//!
//! One link is kept, `/proc/self/exe`, pointing at the sidecar: Linux's
//! `current_exe()` needs it and macOS does not. Codex inside warns that it
//! cannot set up its PATH aliases; these runs need none.
//!
//! Needs root for `unshare --mount` and `mount`, as CI has; without them the
//! tests fail, never skip.

use std::collections::HashSet;
use std::process::{Output, Stdio};
use std::time::Duration;

use codex_mcp_sidecar::appserver::shared::{SharedPaths, SharedState};
use codex_mcp_sidecar::store::{self, AuditEvent, IndexEvent, RunId};
use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::EVENT_TIMEOUT;
use codex_mcp_sidecar_test_support::world::{
    ProcessInfo, SidecarWorld, live_process, processes_in_group, processes_naming,
};

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// Lays a tmpfs over `/proc` in the new namespace, keeping one link,
/// `/proc/self/exe`, to the sidecar: Linux's `current_exe()` reads it (macOS
/// asks the kernel instead), and Codex refuses to start without an answer.
/// Checks that the process table is really gone, then becomes the program
/// (`$0`): same pid, so the pid the test holds is the sidecar's.
const HIDE_PROC: &str = "mount -t tmpfs hidden-proc /proc \
    && mkdir /proc/self && ln -s \"$0\" /proc/self/exe \
    && test ! -e /proc/self/stat && test ! -e /proc/1 \
    && exec \"$0\" \"$@\"";

/// How long a process the test killed, or one `app-server stop` stopped,
/// may take to be gone from the real `/proc`: the kernel tears down a killed
/// process in milliseconds; the slack is for a host busy with other tests.
const GONE_TIMEOUT: Duration = Duration::from_secs(20);

/// A run that must stay live while two more sidecars start, ask about it and
/// end: 120 × 250 ms = 30 s, where they take a few seconds on an idle host,
/// so that a host busy with other tests does not end it first (the test
/// checks that it did not).
const LIVE_RUN_PARTS: usize = 120;
/// A run killed mid-way: 60 × 250 ms = 15 s leaves the new sidecar time to
/// adopt it while it streams.
const KILLED_RUN_PARTS: usize = 60;
const RUN_PART_MS: u64 = 250;

suite_world!();

impl World {
    async fn new() -> World {
        assert_hidden_proc_works().await;
        World(SidecarWorld::new().await)
    }

    /// The sidecar with `args`, in a mount namespace of its own with `/proc`
    /// hidden, on the fallback process table (`none`), in shared mode.
    fn hidden(&self, args: &[&str]) -> Command {
        let mut command = self.hidden_auto(args);
        command.env("CODEX_MCP_WRAPPER_PROCESS_TABLE", "none");
        command
    }

    /// [`World::hidden`] with no switch: the sidecar must notice by itself
    /// that `/proc` is not there.
    fn hidden_auto(&self, args: &[&str]) -> Command {
        let mut command = self.command("unshare");
        command
            .args(["--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", HIDE_PROC, SIDECAR])
            .args(args)
            .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "shared")
            .env_remove("CODEX_MCP_WRAPPER_PROCESS_TABLE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        command
    }

    /// `run` in a hidden-/proc sidecar, once it has printed its run handle.
    async fn start_run(&self, prompt: &str) -> LiveRun {
        let project = self.project.path().display().to_string();
        let mut child = self
            .hidden(&["run", "--cwd", &project, "--soft-timeout-ms", "0", prompt])
            .spawn()
            .expect("unshare runs (util-linux)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(EVENT_TIMEOUT, lines.next_line())
            .await
            .expect("the run handle in time")
            .unwrap()
            .expect("a run handle line (could the sidecar hide /proc? the drill needs root)");
        let handle: Value = serde_json::from_str(&first).unwrap();
        let run_id = RunId::parse(handle["runId"].as_str().unwrap()).unwrap();
        // Read on, so that the sidecar never blocks on a full pipe.
        let last_line = tokio::spawn(async move {
            let mut last = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                last = line;
            }
            last
        });
        LiveRun {
            child,
            run_id,
            last_line,
        }
    }

    /// A hidden-/proc sidecar with `args`, to its end.
    async fn hidden_output(&self, command: &mut Command) -> Output {
        tokio::time::timeout(EVENT_TIMEOUT, command.output())
            .await
            .expect("the sidecar ends in time")
            .expect("unshare runs (util-linux)")
    }

    fn state(&self) -> Option<SharedState> {
        SharedState::read(&SharedPaths::new(&self.pointer_dir).state()).unwrap()
    }

    /// Distinct process groups of app-servers on our URL, from the real /proc.
    fn app_server_groups(&self) -> HashSet<i32> {
        processes_naming(&self.url)
            .into_iter()
            .filter(|process| {
                process.args.iter().any(|arg| arg == "app-server")
                    && !process.args.iter().any(|arg| arg.starts_with("__"))
            })
            .map(|process| process.pgid)
            .collect()
    }

    /// `app-server stop` from yet another hidden-/proc namespace, without the
    /// switch; then nothing of ours may be left on the real /proc.
    async fn stop_and_assert_nothing_left(self) {
        let state = self.state().expect("the keeper's state file");
        let output = self
            .hidden_output(&mut self.hidden_auto(&["app-server", "stop"]))
            .await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "app-server stop: {output:?}");
        assert!(
            stdout.contains(&format!(
                "stopped the shared app-server (keeper pid {})",
                state.keeper_pid
            )),
            "{stdout}"
        );
        assert!(self.state().is_none(), "the keeper removed its state file");
        let left = wait_until_gone(|| {
            // The test runs outside the namespaces: this is the real /proc.
            let mut left = processes_naming(&self.url);
            left.extend(processes_in_group(state.app_server_pgid));
            left.extend(live_process(state.keeper_pid as i32));
            left
        })
        .await;
        assert!(left.is_empty(), "orphaned: {left:#?}");
        self.0.shutdown().await;
    }
}

/// Fails, loudly, when this host cannot hide /proc from a child.
async fn assert_hidden_proc_works() {
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .args(["sh", "-c", HIDE_PROC, "/bin/true"])
        .output()
        .await
        .expect("unshare runs (util-linux)");
    assert!(
        output.status.success(),
        "cannot hide /proc in a mount namespace (the drill needs root, as CI has): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A `run` sidecar and the run it started.
struct LiveRun {
    child: Child,
    run_id: RunId,
    last_line: tokio::task::JoinHandle<String>,
}

impl LiveRun {
    fn pid(&self) -> u32 {
        self.child.id().expect("not reaped yet")
    }

    fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the sidecar to print the result and exit; the result.
    async fn result(mut self) -> Value {
        let status = tokio::time::timeout(EVENT_TIMEOUT, self.child.wait())
            .await
            .expect("the run ends in time")
            .unwrap();
        assert!(status.success(), "run exited with {status}");
        let last = self.last_line.await.unwrap();
        serde_json::from_str(&last).unwrap_or_else(|error| panic!("{error}: {last:?}"))
    }

    /// kill -9, and reaped: `kill(pid, 0)` sees an unreaped zombie as alive,
    /// which is a fact of the fallback, not what this drill is about.
    async fn kill_hard(mut self) -> RunId {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        self.child.wait().await.unwrap();
        self.run_id
    }
}

/// A streamed answer of `count` parts: the prompt and the whole text.
fn streamed_run(count: usize) -> (String, String) {
    let parts: Vec<String> = (0..count).map(|n| format!("p{n} ")).collect();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    (Script::stream(&refs, RUN_PART_MS).marker(), parts.concat())
}

/// The project index's start and end records of `run_id`.
fn index_records(world: &World, run_id: &RunId) -> (usize, usize) {
    let index = store::read_index(&world.run_dir()).unwrap();
    let of_run = index.iter().filter(|record| &record.run_id == run_id);
    let starts = of_run
        .clone()
        .filter(|record| record.event == IndexEvent::Start)
        .count();
    (starts, of_run.count() - starts)
}

fn audit_has_turn_completed(world: &World, run_id: &RunId) -> bool {
    store::read_events(&world.run_dir(), run_id)
        .unwrap()
        .iter()
        .any(|record| {
            matches!(&record.event, AuditEvent::Notification { method, .. } if method == "turn/completed")
        })
}

fn stdout_and_stderr(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Polls `left` (what should be gone) until it is empty or [`GONE_TIMEOUT`]
/// passes; what is left then.
async fn wait_until_gone(left: impl Fn() -> Vec<ProcessInfo>) -> Vec<ProcessInfo> {
    let deadline = tokio::time::Instant::now() + GONE_TIMEOUT;
    loop {
        let now = left();
        if now.is_empty() || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A second sidecar, on a system with no process table, leaves the live run
/// of the first alone: it neither adopts it at start-up nor takes it over
/// when asked to wait for it (it follows it instead); the run ends once, in
/// its own sidecar. The second sidecar
/// runs its own turn on the same shared app-server and keeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sidecar_leaves_a_live_run_of_the_first_alone() {
    let world = World::new().await;
    let (prompt, text) = streamed_run(LIVE_RUN_PARTS);
    let mut first = world.start_run(&prompt).await;
    let run_id = first.run_id.clone();
    world
        .model
        .wait_for_outcome(RequestOutcome::Streaming, EVENT_TIMEOUT)
        .await
        .unwrap();
    let keeper = world.state().expect("the first sidecar started the keeper");
    // It ran with no process table too: no start time, only its lock.
    assert_eq!((keeper.keeper_started, keeper.keeper_lock), (None, true));
    assert_eq!(world.app_server_groups().len(), 1);

    // Another sidecar asked to wait for it: at start-up it looks for runs
    // whose sidecar died, and must not count this one among them; then it
    // follows the run, which the first sidecar still owns.
    let output = world
        .hidden_output(&mut world.hidden(&[
            "wait",
            run_id.as_str(),
            "--soft-timeout-ms",
            "1000",
            "--once",
        ]))
        .await;
    let said = stdout_and_stderr(&output);
    assert!(output.status.success(), "{said}");
    let slice: Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default(),
    )
    .unwrap_or_else(|error| panic!("{error}: {said}"));
    assert_eq!(slice["status"], "still_running", "{said}");
    let owners: Vec<u32> = store::list_active(&world.run_dir())
        .unwrap()
        .into_iter()
        .filter(|active| active.run_id == run_id)
        .map(|active| active.pid)
        .collect();
    assert_eq!(owners, vec![first.pid()], "it took the run over: {said}");

    // And one that runs a turn of its own, on the same server.
    let project = world.project.path().display().to_string();
    let own = Script::text("second sidecar's own").marker();
    let output = world
        .hidden_output(&mut world.hidden(&[
            "run",
            "--cwd",
            &project,
            "--soft-timeout-ms",
            "0",
            &own,
        ]))
        .await;
    let said = stdout_and_stderr(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("second sidecar's own"), "{said}");

    assert!(
        first.still_running(),
        "the first run ended before the others were done: the checks above proved nothing"
    );

    // Found and reused: the same keeper, one app-server group.
    assert_eq!(world.state().as_ref(), Some(&keeper));
    assert_eq!(world.app_server_groups().len(), 1);

    let result = first.result().await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["result"], text.as_str());
    assert_eq!(
        index_records(&world, &run_id),
        (1, 1),
        "one start and one end record"
    );
    world.stop_and_assert_nothing_left().await;
}

/// A sidecar killed with kill -9 mid-run, on a system with no process
/// table: a new one finds the run orphaned, adopts it and completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_killed_hard_has_its_run_completed_by_a_new_one() {
    let world = World::new().await;
    let (prompt, text) = streamed_run(KILLED_RUN_PARTS);
    let first = world.start_run(&prompt).await;
    world
        .model
        .wait_for_outcome(RequestOutcome::Streaming, EVENT_TIMEOUT)
        .await
        .unwrap();
    let run_id = first.kill_hard().await;

    let output = world
        .hidden_output(&mut world.hidden(&["wait", run_id.as_str(), "--soft-timeout-ms", "0"]))
        .await;
    let said = stdout_and_stderr(&output);
    assert!(output.status.success(), "{said}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["result"], text.as_str(), "{result}");
    assert!(audit_has_turn_completed(&world, &run_id));
    assert!(store::list_active(&world.run_dir()).unwrap().is_empty());
    assert_eq!(index_records(&world, &run_id), (1, 1));
    assert_eq!(world.app_server_groups().len(), 1, "the server lived on");
    world.stop_and_assert_nothing_left().await;
}
