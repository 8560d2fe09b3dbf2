//! Fault drills (issue 8) with the built binary over stdio, the real Codex
//! and the scripted model: a sidecar killed in the middle of many runs,
//! model errors and cut streams, many sidecars at once, a run directory that
//! cannot be written, and a client that goes away.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use codex_mcp_sidecar::appserver::keeper::KEEPER_SUBCOMMAND;
use codex_mcp_sidecar::store::{self, AuditEvent, IndexEvent, RunId};
use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::common::EVENT_TIMEOUT;
use crate::common::tools::{call, structured};
use codex_mcp_sidecar_test_support::world::{
    ProcessInfo, SidecarWorld, children_of, processes_naming,
};

type Client = RunningService<RoleClient, ()>;

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

// A shared-mode world: one app-server on a free port for every sidecar.
suite_world!();

impl World {
    async fn new() -> World {
        World(SidecarWorld::new().await)
    }

    async fn shutdown(self) {
        self.0.shutdown().await;
    }

    /// A sidecar over stdio, its stderr into `stderr`; and its pid.
    async fn sidecar(&self, extra: &[(&str, &str)], stderr: Stdio) -> (Client, u32) {
        let mut command = self.command(SIDECAR);
        command
            .env("CODEX_MCP_WRAPPER_APP_SERVER_IDLE_MS", "5000")
            .env("CODEX_MCP_WRAPPER_WAIT_SOFT_TIMEOUT_MS", "300")
            .env_remove("CODEX_MCP_WRAPPER_APP_SERVER_MODE")
            .current_dir(self.project.path());
        for (name, value) in extra {
            command.env(name, value);
        }
        let (transport, _) = TokioChildProcess::builder(command)
            .stderr(stderr)
            .spawn()
            .unwrap();
        let pid = transport.id().unwrap();
        (().serve(transport).await.unwrap(), pid)
    }

    /// Distinct process groups of app-servers on our URL.
    fn app_servers(&self) -> usize {
        let groups: HashSet<i32> = processes_naming(&self.url)
            .into_iter()
            .filter(|process| {
                process.args.iter().any(|arg| arg == "app-server")
                    && !process.args.iter().any(|arg| arg.starts_with("__"))
            })
            .map(|process| process.pgid)
            .collect();
        groups.len()
    }
}

async fn start(client: &Client, prompt: String) -> String {
    let handle = structured(&call(client, "codex_run", json!({"prompt": prompt})).await);
    handle["runId"].as_str().unwrap().to_string()
}

/// Blocks until the run ends.
async fn finish(client: &Client, run_id: &str) -> Value {
    structured(
        &call(
            client,
            "codex_wait",
            json!({"run_id": run_id, "soft_timeout_ms": 0}),
        )
        .await,
    )
}

fn kill_hard(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn audit_has_turn_completed(run_dir: &Path, run_id: &str) -> bool {
    let run_id = RunId::parse(run_id).unwrap();
    store::read_events(run_dir, &run_id)
        .unwrap()
        .iter()
        .any(|record| {
            matches!(&record.event, AuditEvent::Notification { method, .. } if method == "turn/completed")
        })
}

/// Each run id once with a start and once with an end in the project's
/// index, and every line of it whole.
fn assert_index_complete(run_dir: &Path, run_ids: &[String]) {
    let text = std::fs::read_to_string(run_dir.join("index.jsonl")).unwrap();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for line in text.lines() {
        let record: store::IndexRecord =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
        match record.event {
            IndexEvent::Start => starts.push(record.run_id.as_str().to_string()),
            IndexEvent::End => ends.push(record.run_id.as_str().to_string()),
        }
    }
    for (what, list) in [("start", &starts), ("end", &ends)] {
        let unique: HashSet<&String> = list.iter().collect();
        assert_eq!(unique.len(), list.len(), "a run with two {what} records");
        for run_id in run_ids {
            assert!(list.contains(run_id), "no {what} record for {run_id}");
        }
    }
}

fn words(tag: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{tag}{n} ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_sidecar_in_the_middle_of_twenty_runs_loses_none() {
    let world = World::new().await;
    let (client, pid) = world.sidecar(&[], Stdio::null()).await;
    let mut runs = Vec::new();
    for n in 0..20 {
        let parts = words(&format!("r{n}w"), 8);
        let text = parts.concat();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let run_id = start(&client, Script::stream(&parts, 400).marker()).await;
        runs.push((run_id, text));
    }
    world
        .model
        .wait_for_outcome(RequestOutcome::Streaming, Duration::from_secs(30))
        .await
        .unwrap();
    kill_hard(pid);
    drop(client);

    let (client, _) = world.sidecar(&[], Stdio::null()).await;
    for (run_id, text) in &runs {
        let done = finish(&client, run_id).await;
        assert_eq!(done["status"], "completed", "{run_id}: {done}");
        assert_eq!(done["result"], text.as_str(), "{run_id}");
        assert!(
            audit_has_turn_completed(&world.run_dir(), run_id),
            "{run_id}"
        );
    }
    let ids: Vec<String> = runs.iter().map(|(run_id, _)| run_id.clone()).collect();
    assert_index_complete(&world.run_dir(), &ids);
    client.cancel().await.unwrap();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_errors_and_cut_streams_fail_the_run_with_codexs_error() {
    let world = World::new().await;
    let (client, _) = world.sidecar(&[], Stdio::null()).await;
    for script in [Script::http_error(500), Script::cut("half an ans")] {
        let run_id = start(&client, script.marker()).await;
        let started = Instant::now();
        let done = finish(&client, &run_id).await;
        assert_eq!(done["status"], "failed", "{script:?}: {done}");
        let error = done["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{script:?}: no reason: {done}");
        assert!(
            started.elapsed() < EVENT_TIMEOUT,
            "{script:?} took {:?}",
            started.elapsed()
        );
    }
    client.cancel().await.unwrap();
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_sidecars_of_twenty_five_runs_share_one_app_server() {
    const SIDECARS: usize = 8;
    const RUNS_EACH: usize = 25;
    // 200 runs go at once, past the default cap of 32 runs per user.
    let uncapped = [("CODEX_MCP_WRAPPER_MAX_RUNS", "0")];
    let world = World::new().await;
    let mut sidecars = Vec::new();
    for _ in 0..SIDECARS {
        sidecars.push(world.sidecar(&uncapped, Stdio::null()));
    }
    let clients: Vec<Client> = futures_util::future::join_all(sidecars)
        .await
        .into_iter()
        .map(|(client, _)| client)
        .collect();
    let batches = clients.iter().enumerate().map(|(n, client)| async move {
        let mut ids = Vec::new();
        for k in 0..RUNS_EACH {
            ids.push(start(client, Script::text(format!("s{n}r{k}")).marker()).await);
        }
        for (k, run_id) in ids.iter().enumerate() {
            let done = finish(client, run_id).await;
            assert_eq!(done["status"], "completed", "{done}");
            assert_eq!(done["result"], format!("s{n}r{k}"));
        }
        ids
    });
    let ids: Vec<String> = futures_util::future::join_all(batches)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ids.len(), SIDECARS * RUNS_EACH);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "duplicate run ids"
    );
    assert_eq!(world.app_servers(), 1, "one shared app-server");
    assert_index_complete(&world.run_dir(), &ids);
    for client in clients {
        client.cancel().await.unwrap();
    }
    world.shutdown().await;
}

/// Runs the directory can't be written into still complete for the caller;
/// the reply says what was lost and the log says it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_or_full_run_directory_costs_the_audit_not_the_run() {
    let world = World::new().await;
    let place = tempfile::tempdir().unwrap();
    // Read-only even for root: an immutable directory (ext4's chattr +i).
    let read_only = place.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    run_tool("chattr", &["+i", &read_only.display().to_string()]);
    // Full: a 16 KiB tmpfs, filled up while the run streams.
    let full = place.path().join("full");
    std::fs::create_dir(&full).unwrap();
    run_tool(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=16k",
            "tmpfs",
            &full.display().to_string(),
        ],
    );
    let cases = [
        (&read_only, "Operation not permitted"),
        (&full, "No space left on device"),
    ];
    for (dir, reason) in cases {
        let log = place.path().join("stderr.log");
        let (client, _) = world
            .sidecar(
                &[("CODEX_MCP_WRAPPER_RUN_DIR", &dir.display().to_string())],
                Stdio::from(std::fs::File::create(&log).unwrap()),
            )
            .await;
        let parts = words("full-disk-word-", 200);
        let text = parts.concat();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let run_id = start(&client, Script::stream(&parts, 1).marker()).await;
        let done = finish(&client, &run_id).await;
        assert_eq!(done["status"], "completed", "{reason}: {done}");
        assert_eq!(done["result"], text.as_str());
        let audit_error = done["auditError"].as_str().unwrap_or_default();
        assert!(
            audit_error.contains("could not be written") && audit_error.contains(reason),
            "{reason}: {done}"
        );
        client.cancel().await.unwrap();
        let logged = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            logged.matches("audit cannot be written").count(),
            1,
            "{reason}: logged once:\n{logged}"
        );
    }
    run_tool("chattr", &["-i", &read_only.display().to_string()]);
    run_tool("umount", &[&full.display().to_string()]);
    world.shutdown().await;
}

fn run_tool(program: &str, args: &[&str]) {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?} (the drill needs root, as CI has): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The client goes away mid-call: the sidecar exits by itself, leaves no
/// process behind, and the turn goes on on the shared app-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_ends_the_sidecar_not_its_runs() {
    let world = World::new().await;
    let (client, pid) = world.sidecar(&[], Stdio::null()).await;
    let parts = words("gone", 10);
    let text = parts.concat();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let run_id = start(&client, Script::stream(&parts, 300).marker()).await;
    // A blocking wait in flight when stdin closes.
    let waiting = {
        let params = CallToolRequestParams::new("codex_wait".to_string()).with_arguments(
            json!({"run_id": run_id, "soft_timeout_ms": 0})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let peer = client.peer().clone();
        tokio::spawn(async move { peer.call_tool(params).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let children = children_of(pid as i32);
    // Dropping the service closes the child's stdin.
    drop(client);
    let _ = waiting.await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while codex_mcp_sidecar::actors::resolve::process_alive(pid) {
        assert!(Instant::now() < deadline, "the sidecar outlived its client");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Of what it started, only the shared server's keeper may live on.
    for ProcessInfo {
        pid: child, args, ..
    } in children
    {
        if codex_mcp_sidecar::actors::resolve::process_alive(child as u32) {
            assert!(
                args.iter().any(|arg| arg == KEEPER_SUBCOMMAND),
                "left behind: {child} {args:?}"
            );
        }
    }
    assert_eq!(world.app_servers(), 1, "the shared app-server goes on");

    let (client, _) = world.sidecar(&[], Stdio::null()).await;
    let done = finish(&client, &run_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"], text.as_str());
    assert!(audit_has_turn_completed(&world.run_dir(), &run_id));
    client.cancel().await.unwrap();
    world.shutdown().await;
}
