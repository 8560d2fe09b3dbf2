//! Sidecar processes that die: another one adopts their runs on the shared
//! app-server and completes the waits.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use codex_mcp_sidecar::store::{self, AuditEvent, RunId};
use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::EVENT_TIMEOUT;
use codex_mcp_sidecar_test_support::world::SidecarWorld;

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

// A shared-mode world: the model, CODEX_HOME, pointer dir and project, and
// a free port for the shared app-server.
suite_world!();

impl World {
    async fn new() -> World {
        World(SidecarWorld::new().await)
    }

    fn sidecar(&self, args: &[&str]) -> Command {
        let mut command = self.command(SIDECAR);
        command
            .args(args)
            .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "shared")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        command
    }

    /// Starts `run` and returns the process and its run id (the first line).
    async fn start_run(&self, prompt: &str) -> (Child, RunId) {
        let project = self.project.path().display().to_string();
        let mut child = self
            .sidecar(&["run", "--cwd", &project, "--soft-timeout-ms", "0", prompt])
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(EVENT_TIMEOUT, lines.next_line())
            .await
            .expect("the run handle in time")
            .unwrap()
            .expect("a run handle line");
        let handle: Value = serde_json::from_str(&first).unwrap();
        let run_id = RunId::parse(handle["runId"].as_str().unwrap()).unwrap();
        (child, run_id)
    }

    /// `wait RUN_ID` in a new sidecar process, to the end; its last line.
    async fn wait_in_new_sidecar(&self, run_id: &RunId) -> Value {
        let output = self
            .sidecar(&["wait", run_id.as_str(), "--soft-timeout-ms", "0"])
            .output();
        let output = tokio::time::timeout(EVENT_TIMEOUT, output)
            .await
            .expect("the wait ends in time")
            .unwrap();
        assert!(output.status.success(), "wait failed: {output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
    }

    async fn stop(self) {
        let _ = self.sidecar(&["app-server", "stop"]).output().await;
        self.0.shutdown().await;
    }
}

fn kill_hard(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
}

fn audit_has_turn_completed(run_dir: &Path, run_id: &RunId) -> bool {
    store::read_events(run_dir, run_id)
        .unwrap()
        .iter()
        .any(|record| {
            matches!(&record.event, AuditEvent::Notification { method, .. } if method == "turn/completed")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sidecar_completes_the_wait_of_one_killed_mid_run() {
    let world = World::new().await;
    let parts: Vec<String> = (0..10).map(|n| format!("k{n} ")).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let (mut child, run_id) = world.start_run(&Script::stream(&parts, 250).marker()).await;
    // Kill it mid-run: once the model is streaming the turn.
    world
        .model
        .wait_for_outcome(RequestOutcome::Streaming, Duration::from_secs(30))
        .await
        .unwrap();
    kill_hard(&child);
    child.wait().await.unwrap();

    let result = world.wait_in_new_sidecar(&run_id).await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["result"], parts.concat().as_str(), "{result}");
    assert!(audit_has_turn_completed(&world.run_dir(), &run_id));
    assert!(store::list_active(&world.run_dir()).unwrap().is_empty());
    let index = store::read_index(&world.run_dir()).unwrap();
    assert_eq!(
        index
            .iter()
            .filter(|record| record.run_id == run_id)
            .count(),
        2
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_finished_while_nobody_watched_is_closed_from_thread_read() {
    let world = World::new().await;
    let (mut child, run_id) = world
        .start_run(&Script::stream(&["quiet ", "end"], 300).marker())
        .await;
    kill_hard(&child);
    child.wait().await.unwrap();
    // Let the turn finish with no sidecar attached.
    world
        .model
        .wait_for_outcome(RequestOutcome::Completed, Duration::from_secs(30))
        .await
        .unwrap();

    let result = world.wait_in_new_sidecar(&run_id).await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["result"], "quiet end", "{result}");
    let closed_from_read = store::read_events(&world.run_dir(), &run_id)
        .unwrap()
        .iter()
        .any(|record| {
            matches!(&record.event,
            AuditEvent::Sidecar { message, .. } if message.starts_with("closed from thread/read"))
        });
    assert!(closed_from_read);
    world.stop().await;
}

/// `wait` with several ids, in a sidecar of its own: it prints each run's
/// result as the run ends (the short one first), and an unknown id on its
/// own line, then exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_waits_on_several_runs_and_prints_each_as_it_ends() {
    let world = World::new().await;
    let (_long_owner, long) = world
        .start_run(&Script::stream(&["long ", "turn ", "end"], 700).marker())
        .await;
    let (_short_owner, short) = world.start_run(&Script::text("short turn").marker()).await;
    let unknown = RunId::generate();
    let output = world
        .sidecar(&[
            "wait",
            long.as_str(),
            short.as_str(),
            unknown.as_str(),
            "--soft-timeout-ms",
            "0",
        ])
        .output();
    let output = tokio::time::timeout(EVENT_TIMEOUT, output)
        .await
        .expect("the wait ends in time")
        .unwrap();
    assert!(output.status.success(), "wait failed: {output:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let ended: Vec<(&str, &str)> = lines
        .iter()
        .map(|line| {
            (
                line["runId"].as_str().unwrap(),
                line["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ended,
        [
            (short.as_str(), "completed"),
            (unknown.as_str(), "unknown"),
            (long.as_str(), "completed"),
        ],
        "{lines:?}"
    );
    assert_eq!(lines[2]["result"], "long turn end");
    world.stop().await;
}
