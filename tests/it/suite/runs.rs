//! The run catalog as `codex-runs --json` and the picker read it: runs of
//! the real Codex listed with their tokens and final message, a fixture run
//! directory written here byte for byte, and the live fields of a running
//! run (progress, message, pending approval) while its turn goes.

use std::path::Path;
use std::time::{Duration, Instant};

use codex_mcp_sidecar::actors::approvals::Choice;
use codex_mcp_sidecar::actors::{RunStatus, WaitOutcome};
use codex_mcp_sidecar::config::Permissions;
use codex_mcp_sidecar::protocol::ApprovalPolicy;
use codex_mcp_sidecar::store::catalog::{self, RunRow};
use codex_mcp_sidecar_test_support::scripted_model::Script;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::common::EVENT_TIMEOUT;
use crate::common::engine::{EngineRig, SLICE};

const CODEX_RUNS: &str = env!("CARGO_BIN_EXE_codex-runs");

/// How often a test looks at the active record while it waits for a change.
const POLL: Duration = Duration::from_millis(50);

/// `codex-runs` with `args`, in a world of its own: this CODEX_HOME and
/// pointer directory, nothing from the environment the tests run in.
async fn codex_runs(args: &[&str], codex_home: &Path, pointer_dir: &Path) -> (Value, String) {
    let output = tokio::process::Command::new(CODEX_RUNS)
        .args(args)
        .env("CODEX_HOME", codex_home)
        .env("CODEX_MCP_WRAPPER_POINTER_DIR", pointer_dir)
        .env_remove("CODEX_MCP_WRAPPER_RUN_DIR")
        .env_remove("CODEX_MCP_WRAPPER_CODEX_HOME")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{args:?}: {stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    (serde_json::from_str(&stdout).unwrap(), stderr)
}

/// Reads the project's catalog until `pick` finds what it waits for in
/// the run's row; fails after `EVENT_TIMEOUT`.
async fn row_until(run_dir: &Path, run_id: &str, pick: impl Fn(&RunRow) -> bool) -> RunRow {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let dir = run_dir.to_path_buf();
        let catalog = tokio::task::spawn_blocking(move || catalog::load_project(&dir))
            .await
            .unwrap();
        assert_eq!(catalog.problems, Vec::<String>::new());
        let row = catalog
            .rows
            .into_iter()
            .find(|row| row.run_id.as_str() == run_id);
        if let Some(row) = row.filter(|row| pick(row)) {
            return row;
        }
        assert!(Instant::now() < deadline, "the run's row never showed it");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_is_listed_with_its_tokens_and_final_message() {
    let rig = EngineRig::start(&[]).await;
    let message = "Wrote the notes. Everything else was already in place.";
    let started = rig.run(Script::text(message).marker()).await;
    let result = rig.finish(&started).await;
    assert_eq!(result.status, RunStatus::Completed);
    let project = rig.project.path().to_str().unwrap().to_string();

    let (listing, _) = codex_runs(
        &["--json", "--project", &project],
        rig.codex_home.path(),
        rig.pointer_dir.path(),
    )
    .await;
    assert_eq!(listing["problems"], json!([]));
    let runs = listing["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{listing}");
    let run = &runs[0];
    assert_eq!(run["runId"], started.run_id.as_str());
    assert_eq!(run["status"], "completed");
    assert_eq!(run["threadId"], started.thread_id.as_str());
    assert_eq!(run["cwd"], project.as_str());
    assert_eq!(run["lastMessage"], message);
    assert!(run["totalTokens"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(run["totalTokens"], result.usage.total_tokens);
    assert!(run["durationMs"].is_u64() && run["startedAt"].is_string());
    assert!(run["endedAt"].is_string());
    for live in ["progress", "pendingApproval", "appServerUrl"] {
        assert!(run.get(live).is_none(), "{live} of an ended run: {run}");
    }

    // Every project: the same run through the pointer index, with what it
    // carries (no message excerpt).
    let (all, _) = codex_runs(
        &["--json", "--all", "--no-watch"],
        rig.codex_home.path(),
        rig.pointer_dir.path(),
    )
    .await;
    let run = &all["runs"][0];
    assert_eq!(run["runId"], started.run_id.as_str());
    assert_eq!(run["status"], "completed");
    assert_eq!(run["totalTokens"], result.usage.total_tokens);
    assert!(run["durationMs"].is_u64(), "{run}");
    rig.stop().await;
}

/// A run directory as the sidecar writes it, byte for byte, so that a
/// change of the format shows here: a run of an older version (no tokens,
/// no excerpt), one of this version, a line torn by a crash, and a run
/// still going whose active record shows an approval waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_of_a_run_directory_written_by_hand() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let runs = project.path().join(".codex/codex-mcp/runs");
    std::fs::create_dir_all(runs.join("active")).unwrap();
    let cwd = project.path().to_str().unwrap();
    let index = [
        json!({"event": "start", "runId": "20261121-052301-482-7f3a9c", "threadId": "th-old",
               "turnId": "tu-old", "title": "An older run", "cwd": cwd, "status": "running",
               "at": "2026-11-21T05:23:01.500Z"}),
        json!({"event": "start", "runId": "20261121-060000-000-0000aa", "threadId": "th-new",
               "turnId": "tu-new", "title": "Fix the tests", "cwd": cwd, "status": "running",
               "at": "2026-11-21T06:00:00.100Z"}),
        json!({"event": "end", "runId": "20261121-052301-482-7f3a9c", "threadId": "th-old",
               "turnId": "tu-old", "title": "An older run", "cwd": cwd, "status": "failed",
               "at": "2026-11-21T05:24:00.000Z", "durationMs": 58500,
               "error": "the app-server went away"}),
        json!({"event": "start", "runId": "20261121-061500-250-0000bb", "threadId": "th-live",
               "turnId": "tu-live", "title": "Touch a file", "cwd": cwd, "status": "running",
               "at": "2026-11-21T06:15:00.300Z"}),
        json!({"event": "end", "runId": "20261121-060000-000-0000aa", "threadId": "th-new",
               "turnId": "tu-new", "title": "Fix the tests", "cwd": cwd, "status": "completed",
               "at": "2026-11-21T06:01:00.000Z", "durationMs": 59900, "totalTokens": 48213,
               "lastMessage": "All tests pass.\nI fixed the flaky one."}),
    ];
    let mut lines: Vec<String> = index.iter().map(Value::to_string).collect();
    // Torn by a power loss, then appended after.
    lines.insert(3, "{\"event\":\"end\",\"runId\":\"2026112".into());
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(runs.join("index.jsonl"), text).unwrap();
    let active = json!({
        "runId": "20261121-061500-250-0000bb", "threadId": "th-live", "turnId": "tu-live",
        "cwd": cwd, "title": "Touch a file", "startedAt": "2026-11-21T06:15:00.200Z",
        "appServerUrl": "ws://127.0.0.1:4500", "pid": 4242, "totalTokens": 1200,
        "progress": "waiting for approval: command", "lastMessage": "I will create it.",
        "pendingApproval": {"approvalId": "a1", "kind": "command", "summary": "touch made.txt"},
        "updatedAt": "2026-11-21T06:15:03.000Z"
    });
    std::fs::write(
        runs.join("active/20261121-061500-250-0000bb.json"),
        serde_json::to_vec_pretty(&active).unwrap(),
    )
    .unwrap();
    // Left behind by a crash after the run's end: not read.
    std::fs::write(
        runs.join("active/20261121-060000-000-0000aa.json"),
        "{\"runId\":\"20261121-060000-000-0000aa\",\"progress\":\"stale\"",
    )
    .unwrap();

    let (listing, stderr) = codex_runs(
        &["--json", "--project", cwd],
        home.path(),
        &home.path().join("pointers"),
    )
    .await;
    assert_eq!(stderr, "");
    let index_path = runs.join("index.jsonl");
    assert_eq!(
        listing,
        json!({
            "runs": [
                {"runId": "20261121-061500-250-0000bb", "title": "Touch a file",
                 "status": "running", "cwd": cwd, "threadId": "th-live",
                 "startedAt": "2026-11-21T06:15:00.300Z", "totalTokens": 1200,
                 "progress": "waiting for approval: command",
                 "lastMessage": "I will create it.",
                 "pendingApproval": {"approvalId": "a1", "kind": "command",
                                     "summary": "touch made.txt"},
                 "appServerUrl": "ws://127.0.0.1:4500"},
                {"runId": "20261121-060000-000-0000aa", "title": "Fix the tests",
                 "status": "completed", "cwd": cwd, "threadId": "th-new",
                 "startedAt": "2026-11-21T06:00:00.100Z", "endedAt": "2026-11-21T06:01:00.000Z",
                 "durationMs": 59900, "totalTokens": 48213,
                 "lastMessage": "All tests pass.\nI fixed the flaky one."},
                {"runId": "20261121-052301-482-7f3a9c", "title": "An older run",
                 "status": "failed", "cwd": cwd, "threadId": "th-old",
                 "startedAt": "2026-11-21T05:23:01.500Z", "endedAt": "2026-11-21T05:24:00.000Z",
                 "durationMs": 58500, "error": "the app-server went away"},
            ],
            "problems": [format!("{}: 1 line could not be read", index_path.display())],
        })
    );

    // A project without runs: an empty listing, nothing wrong.
    let empty = tempfile::tempdir().unwrap();
    let (listing, _) = codex_runs(
        &["--json", "--project", empty.path().to_str().unwrap()],
        home.path(),
        &home.path().join("pointers"),
    )
    .await;
    assert_eq!(listing, json!({"runs": [], "problems": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_turn_shows_its_progress_and_words_as_they_come() {
    let rig = EngineRig::start(&[]).await;
    let parts = [
        "Reading ", "the ", "code ", "first, ", "then ", "fixing ", "it.",
    ];
    let started = rig.run(Script::stream(&parts, 400).marker()).await;
    let run_id = started.run_id.as_str();

    let row = row_until(&rig.run_dir(), run_id, |row| {
        row.last_message
            .as_deref()
            .is_some_and(|text| text.starts_with("Reading the"))
    })
    .await;
    assert_eq!(row.status, RunStatus::Running);
    assert_eq!(row.progress.as_deref(), Some("writing"), "{row:?}");
    assert_eq!(row.thread_id.as_deref(), Some(started.thread_id.as_str()));
    assert!(row.app_server_url.is_some(), "{row:?}");
    assert_eq!(row.pending_approval, None);
    // Later words replace earlier ones while the turn goes.
    row_until(&rig.run_dir(), run_id, |row| {
        row.last_message
            .as_deref()
            .is_some_and(|text| text.contains("fixing"))
    })
    .await;

    let result = rig.finish(&started).await;
    assert_eq!(result.status, RunStatus::Completed);
    let done = row_until(&rig.run_dir(), run_id, |row| row.status.is_final()).await;
    assert_eq!(
        done.last_message.as_deref(),
        Some("Reading the code first, then fixing it.")
    );
    assert_eq!((done.progress, done.app_server_url), (None, None));
    assert!(!rig.run_dir().join(format!("active/{run_id}.json")).exists());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_approval_shows_at_once_and_goes_when_answered() {
    let rig = EngineRig::start(&[]).await;
    // Policy `untrusted` asks before a command not known to be read-only,
    // and the caller (this test) answers.
    let mut request = rig.request(Script::exec("touch approved.txt", "Touched it.").marker());
    request.turn.permissions = Some(Permissions::WorkspaceWrite);
    request.turn.approval_policy = Some(ApprovalPolicy::Untrusted);
    request.turn.interactive = true;
    let started = rig.engine.run(request).await.unwrap();
    let run_id = started.run_id.as_str();

    let approval = loop {
        let waited =
            tokio::time::timeout(EVENT_TIMEOUT, rig.engine.wait(&started.run_id, Some(SLICE)))
                .await
                .unwrap()
                .unwrap();
        match waited {
            WaitOutcome::NeedsApproval { approval, .. } => break approval,
            WaitOutcome::StillRunning { .. } => continue,
            WaitOutcome::Finished(result) => panic!("ended without asking: {result:?}"),
        }
    };
    let row = row_until(&rig.run_dir(), run_id, |row| row.pending_approval.is_some()).await;
    let pending = row.pending_approval.unwrap();
    assert_eq!(pending.approval_id, approval.approval_id);
    assert_eq!(pending.kind, "command");
    assert!(
        pending.summary.contains("touch approved.txt"),
        "{pending:?}"
    );
    assert_eq!(
        row.progress.as_deref(),
        Some("waiting for approval: command")
    );

    rig.engine
        .approve(&started.run_id, &approval.approval_id, Choice::Accept)
        .await
        .unwrap();
    row_until(&rig.run_dir(), run_id, |row| row.pending_approval.is_none()).await;
    let result = rig.finish(&started).await;
    assert_eq!(result.status, RunStatus::Completed);
    assert!(rig.project.path().join("approved.txt").exists());
    let done = row_until(&rig.run_dir(), run_id, |row| row.status.is_final()).await;
    assert_eq!(done.pending_approval, None);
    assert_eq!(done.last_message.as_deref(), Some("Touched it."));
    rig.stop().await;
}
