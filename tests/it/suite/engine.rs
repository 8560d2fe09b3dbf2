//! The actor core end to end, on the real Codex app-server: runs, audit
//! files, wait slices, timeouts, resume, approvals and concurrency.

use std::time::{Duration, Instant};

use codex_mcp_sidecar::actors::{
    EngineError, ResumeRequest, ResumeTarget, RunRequest, RunStatus, WaitOutcome,
};
use codex_mcp_sidecar::config::Permissions;
use codex_mcp_sidecar::protocol::ApprovalPolicy;
use codex_mcp_sidecar::store::{self, AuditEvent, IndexEvent, RunId};
use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script};
use pretty_assertions::assert_eq;

use crate::common::engine::{EngineRig, SLICE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_completes_and_leaves_every_audit_file() {
    let rig = EngineRig::start(&[]).await;
    let prompt = format!(
        "Create notes.txt\nthen report. {}",
        Script::exec("echo noted > notes.txt", "Wrote notes.txt.").marker()
    );
    let started = rig.run(&prompt).await;
    let result = rig.finish(&started).await;
    assert_eq!(result.status, RunStatus::Completed);
    assert_eq!(result.result.as_deref(), Some("Wrote notes.txt."));
    assert!(result.usage.total_tokens > 0, "{result:?}");
    assert!(rig.project.path().join("notes.txt").exists());

    let dir = rig.run_dir();
    let id = started.run_id.as_str();
    // <runId>.jsonl: every event, raw, stamped, ending with turn/completed.
    let events = store::read_events(&dir, &started.run_id).unwrap();
    let methods: Vec<&str> = events
        .iter()
        .filter_map(|record| match &record.event {
            AuditEvent::Notification { method, .. } => Some(method.as_str()),
            _ => None,
        })
        .collect();
    for expected in [
        "turn/started",
        "item/completed",
        "thread/tokenUsage/updated",
        "turn/completed",
    ] {
        assert!(
            methods.contains(&expected),
            "{expected} missing from {methods:?}"
        );
    }
    assert!(
        events
            .iter()
            .all(|record| record.received_at.ends_with('Z'))
    );
    // <runId>.md: the readable summary.
    let summary = std::fs::read_to_string(dir.join(format!("{id}.md"))).unwrap();
    for expected in [
        "Create notes.txt",
        "completed",
        "echo noted > notes.txt",
        "Wrote notes.txt.",
    ] {
        assert!(
            summary.contains(expected),
            "{expected} missing from the summary:\n{summary}"
        );
    }
    // <runId>.stderr.log exists (empty is fine for a clean run).
    assert!(dir.join(format!("{id}.stderr.log")).exists());
    // active/<runId>.json is gone once the run ended.
    assert!(!dir.join("active").join(format!("{id}.json")).exists());
    // index.jsonl: one start, one end.
    let index = store::read_index(&dir).unwrap();
    let events: Vec<IndexEvent> = index.iter().map(|record| record.event).collect();
    assert_eq!(events, vec![IndexEvent::Start, IndexEvent::End]);
    assert_eq!(index[1].status, RunStatus::Completed);
    assert_eq!(index[0].title, "Create notes.txt");
    // The pointer index resolves the run across projects.
    let pointer = store::read_pointer(&rig.pointer_dir.path().join("runs.index.jsonl")).unwrap();
    assert!(pointer.iter().any(|record| record.run_id == started.run_id
        && record.run_dir == dir
        && record.status == RunStatus::Completed));
    // Private by default, and never committed by accident.
    assert_eq!(
        std::fs::read_to_string(dir.join(".gitignore"))
            .unwrap()
            .trim(),
        "*"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: std::path::PathBuf| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.clone()), 0o700);
    assert_eq!(mode(dir.join(format!("{id}.jsonl"))), 0o600);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_slices_report_progress_then_the_end_and_wake_every_waiter() {
    let rig = EngineRig::start(&[]).await;
    let parts: Vec<String> = (0..8).map(|n| format!("w{n} ")).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let started = rig.run(Script::stream(&parts, 150).marker()).await;

    // A short slice ends early with progress.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let slice = rig.engine.wait(&started.run_id, Some(SLICE)).await.unwrap();
    let WaitOutcome::StillRunning {
        progress,
        waited,
        thread_id,
        ..
    } = slice
    else {
        panic!("expected still_running, got {slice:?}");
    };
    assert_eq!(thread_id, started.thread_id);
    assert!(progress.events > 0, "{progress:?}");
    assert!(progress.last_activity.is_some());
    assert!(waited >= SLICE);

    // Two waiters on the same run both wake when it ends.
    let (first, second) = tokio::join!(
        rig.engine.wait(&started.run_id, None),
        rig.engine
            .wait(&started.run_id, Some(Duration::from_secs(60)))
    );
    for outcome in [first.unwrap(), second.unwrap()] {
        match outcome {
            WaitOutcome::Finished(result) => {
                assert_eq!(result.status, RunStatus::Completed);
                assert_eq!(result.result.as_deref(), Some(parts.concat().as_str()));
            }
            other => panic!("expected the end, got {other:?}"),
        }
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hard_timeout_interrupts_the_turn_and_ends_it_timed_out() {
    let rig = EngineRig::start(&[]).await;
    let mut request = rig.request(Script::hang().marker());
    request.turn.timeout = Some(Duration::from_millis(1500));
    let started = rig.engine.run(request).await.unwrap();
    let result = rig.finish(&started).await;
    assert_eq!(result.status, RunStatus::TimedOut);
    // Really stopped: Codex hung up on the model.
    rig.model
        .wait_for_outcome(RequestOutcome::ClientWentAway, Duration::from_secs(10))
        .await
        .expect("the model saw the stream closed");
    rig.stop().await;
}

/// An interrupt the moment the run's handle is out: Codex has answered
/// `turn/start` but refuses an interrupt until its turn is active ("no
/// active turn to interrupt"), so the run tries again; Codex confirms, and
/// the run does not end by the grace period with the turn still going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_right_after_the_start_stops_the_turn() {
    let rig = EngineRig::start(&[]).await;
    for _ in 0..3 {
        let started = rig.run(Script::hang().marker()).await;
        rig.engine.interrupt(&started.run_id).await.unwrap();
        let result = rig.finish(&started).await;
        assert_eq!(result.status, RunStatus::Interrupted);
        assert_eq!(result.error, None, "Codex confirmed the interrupt");
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_runs_a_second_turn_on_the_same_thread_with_its_context() {
    let rig = EngineRig::start(&[]).await;
    let first = rig.run("The code word is PELICAN.").await;
    assert_eq!(rig.finish(&first).await.status, RunStatus::Completed);

    let second = rig
        .engine
        .resume(ResumeRequest::new(
            ResumeTarget::Run(first.run_id.clone()),
            format!(
                "What was the code word? {}",
                Script::echo_history().marker()
            ),
        ))
        .await
        .unwrap();
    assert_eq!(second.thread_id, first.thread_id);
    assert_ne!(second.run_id, first.run_id);
    let result = rig.finish(&second).await;
    let answer = result.result.unwrap_or_default();
    // The model was sent the first turn's prompt too.
    assert!(answer.contains("The code word is PELICAN."), "{answer}");
    assert!(answer.contains("What was the code word?"), "{answer}");
    rig.stop().await;
}

/// How the run's connection came to get its thread's events, from the
/// audit's "run started" note.
fn subscription(run_dir: &std::path::Path, run_id: &RunId) -> String {
    store::read_events(run_dir, run_id)
        .unwrap()
        .into_iter()
        .find_map(|record| match record.event {
            AuditEvent::Sidecar { message, data } if message == "run started" => {
                data?["subscription"].as_str().map(str::to_string)
            }
            _ => None,
        })
        .expect("a run started note with its subscription")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_on_the_connection_that_ran_the_thread_skips_thread_resume() {
    let rig = EngineRig::start(&[]).await;
    let run_dir = rig.run_dir();
    let first = rig.run("The code word is HERON.").await;
    assert_eq!(rig.finish(&first).await.status, RunStatus::Completed);
    assert_eq!(subscription(&run_dir, &first.run_id), "thread/start");

    let mut previous = first.run_id.clone();
    for turn in ["second", "third"] {
        let next = rig
            .engine
            .resume(ResumeRequest::new(
                ResumeTarget::Run(previous.clone()),
                format!("The {turn} turn. {}", Script::echo_history().marker()),
            ))
            .await
            .unwrap();
        let result = rig.finish(&next).await;
        assert_eq!(result.status, RunStatus::Completed);
        // Same thread, same context, and its events reached the run.
        assert!(
            result
                .result
                .unwrap_or_default()
                .contains("The code word is HERON."),
            "{turn}"
        );
        assert_eq!(subscription(&run_dir, &next.run_id), "already subscribed");
        previous = next.run_id;
    }

    // A new engine has a connection of its own (and, private, its own
    // app-server, once the first one let go of the thread): it resumes.
    rig.engine.shutdown().await;
    let other = crate::common::engine::config(rig.codex_home.path(), rig.pointer_dir.path(), &[]);
    let codex = crate::common::codex_binary();
    let engine = codex_mcp_sidecar::actors::Engine::start(other, codex)
        .await
        .unwrap();
    let elsewhere = engine
        .resume(ResumeRequest::new(
            ResumeTarget::Run(previous),
            "From another sidecar.",
        ))
        .await
        .unwrap();
    let outcome = tokio::time::timeout(
        crate::common::EVENT_TIMEOUT,
        engine.wait(&elsewhere.run_id, None),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        matches!(&outcome, WaitOutcome::Finished(result) if result.status == RunStatus::Completed),
        "{outcome:?}"
    );
    assert_eq!(subscription(&run_dir, &elsewhere.run_id), "thread/resume");
    engine.shutdown().await;
    rig.model.shutdown().await;
}

/// A run that ended here is resumed from memory, by its run id or its
/// thread's: its thread and project are found even with the indexes on disk
/// gone (they hold every run, and grow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_run_that_ended_here_reads_no_index() {
    let rig = EngineRig::start(&[]).await;
    let first = rig.run("The code word is EGRET.").await;
    assert_eq!(rig.finish(&first).await.status, RunStatus::Completed);
    std::fs::remove_file(rig.run_dir().join("index.jsonl")).unwrap();
    std::fs::remove_file(rig.pointer_dir.path().join("runs.index.jsonl")).unwrap();

    let second = rig
        .engine
        .resume(ResumeRequest::new(
            ResumeTarget::Run(first.run_id.clone()),
            format!("Again. {}", Script::echo_history().marker()),
        ))
        .await
        .unwrap();
    assert_eq!(second.thread_id, first.thread_id);
    let result = rig.finish(&second).await;
    assert!(
        result
            .result
            .unwrap_or_default()
            .contains("The code word is EGRET."),
        "the first turn is in the thread's history"
    );
    // A conversation names its thread, not a run: found in memory too.
    let third = rig
        .engine
        .resume(ResumeRequest::new(
            ResumeTarget::Thread(first.thread_id.clone()),
            format!("Once more. {}", Script::echo_history().marker()),
        ))
        .await
        .unwrap();
    assert_eq!(third.thread_id, first.thread_id);
    assert_eq!(rig.finish(&third).await.status, RunStatus::Completed);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_run_ids_and_bad_requests_are_refused_and_write_nothing() {
    let rig = EngineRig::start(&[]).await;
    let unknown = RunId::generate();
    let error = rig.engine.wait(&unknown, Some(SLICE)).await.unwrap_err();
    assert!(matches!(error, EngineError::UnknownRun(_)), "{error}");
    let error = rig
        .engine
        .resume(ResumeRequest::new(ResumeTarget::Run(unknown), "again"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("unknown run id"), "{error}");

    let error = rig.engine.run(rig.request("   ")).await.unwrap_err();
    assert!(error.to_string().contains("prompt is empty"), "{error}");
    let mut request = rig.request("hello");
    request.cwd = rig.project.path().join("missing");
    let error = rig.engine.run(request).await.unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
    assert!(
        !rig.run_dir().exists(),
        "a refused request must write nothing"
    );
    rig.stop().await;
}

/// Each profile's sandbox decides what a command may touch; an approval
/// request is granted only when the sandbox already allows everything
/// (yolo), declined otherwise, and every refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_follow_the_permissions_profile() {
    struct Case {
        permissions: Permissions,
        policy: Option<ApprovalPolicy>,
        /// `touch` of this file; relative paths land in the project.
        target: &'static str,
        escalate: bool,
        written: bool,
        requests: usize,
    }
    let outside = tempfile::tempdir().unwrap();
    let cases = [
        // Full access: writes anywhere, never asks.
        Case {
            permissions: Permissions::Yolo,
            policy: None,
            target: "OUT/yolo.txt",
            escalate: false,
            written: true,
            requests: 0,
        },
        // Full access with a policy that asks: the sidecar accepts.
        Case {
            permissions: Permissions::Yolo,
            policy: Some(ApprovalPolicy::Untrusted),
            target: "asked.txt",
            escalate: false,
            written: true,
            requests: 1,
        },
        // The workspace is writable without asking; outside it is not.
        Case {
            permissions: Permissions::WorkspaceWrite,
            policy: None,
            target: "inside.txt",
            escalate: false,
            written: true,
            requests: 0,
        },
        Case {
            permissions: Permissions::WorkspaceWrite,
            policy: None,
            target: "OUT/ww.txt",
            escalate: false,
            written: false,
            requests: 0,
        },
        // Asking to leave the sandbox is declined.
        Case {
            permissions: Permissions::WorkspaceWrite,
            policy: None,
            target: "escalated.txt",
            escalate: true,
            written: false,
            requests: 1,
        },
        Case {
            permissions: Permissions::ReadOnly,
            policy: None,
            target: "plain.txt",
            escalate: false,
            written: false,
            requests: 0,
        },
        Case {
            permissions: Permissions::ReadOnly,
            policy: None,
            target: "escalated.txt",
            escalate: true,
            written: false,
            requests: 1,
        },
    ];
    let rig = EngineRig::start(&[]).await;
    // workspace-write also lets Codex write to /tmp and $TMPDIR, where every
    // directory of this test lives; take those away so that "outside the
    // workspace" is outside. (The app-server reads this at its first run.)
    let config = rig.codex_home.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true\n",
    );
    std::fs::write(&config, text).unwrap();
    for case in cases {
        let project = tempfile::tempdir().unwrap();
        let target = case
            .target
            .replace("OUT", &outside.path().display().to_string());
        let command = format!("touch {target}");
        let script = if case.escalate {
            Script::exec_escalated(&command, "tried")
        } else {
            Script::exec(&command, "tried")
        };
        let mut request = RunRequest::new(script.marker(), project.path());
        request.turn.permissions = Some(case.permissions);
        request.turn.approval_policy = case.policy;
        let started = rig.engine.run(request).await.unwrap();
        let result = rig.finish(&started).await;
        let label = format!("{:?}/{:?} `{command}`", case.permissions, case.policy);
        assert_eq!(result.status, RunStatus::Completed, "{label}: {result:?}");
        assert_eq!(
            project.path().join(&target).exists(),
            case.written,
            "{label}"
        );

        let dir = project.path().join(".codex/codex-mcp/runs");
        let events = store::read_events(&dir, &started.run_id).unwrap();
        let requests = events
            .iter()
            .filter(|record| matches!(record.event, AuditEvent::ServerRequest { .. }))
            .count();
        assert_eq!(requests, case.requests, "{label}");
        let declined = events.iter().any(|record| {
            matches!(&record.event, AuditEvent::Sidecar { message, .. } if message.starts_with("declined"))
        });
        assert_eq!(
            declined,
            case.requests > 0 && !case.written,
            "{label}: refusals are audited"
        );
        if declined {
            let summary =
                std::fs::read_to_string(dir.join(format!("{}.md", started.run_id))).unwrap();
            assert!(summary.contains(&command), "{label}: {summary}");
        }
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_app_server_fails_the_run_promptly_and_the_next_run_works() {
    let rig = EngineRig::start(&[]).await;
    let started = rig.run(Script::hang().marker()).await;
    rig.model
        .wait_for_outcome(RequestOutcome::Streaming, Duration::from_secs(30))
        .await
        .unwrap();
    let pgid = app_server_pgid(rig.codex_home.path());
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    let result = rig.finish(&started).await;
    assert!(
        killed.elapsed() < Duration::from_secs(2),
        "took {:?}",
        killed.elapsed()
    );
    assert_eq!(result.status, RunStatus::Failed);
    let error = result.error.unwrap_or_default();
    assert!(error.contains("app-server exited"), "{error}");

    let next = rig.run(Script::text("back again").marker()).await;
    let result = rig.finish(&next).await;
    assert_eq!(result.result.as_deref(), Some("back again"));
    rig.stop().await;
}

/// The process group of the app-server running with this CODEX_HOME.
fn app_server_pgid(codex_home: &std::path::Path) -> i32 {
    let home = codex_home.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read_to_string(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let ours = environ
            .split(|byte| *byte == 0)
            .any(|var| var == format!("CODEX_HOME={home}").as_bytes());
        if ours && cmdline.contains("app-server") {
            return nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))
                .unwrap()
                .as_raw();
        }
    }
    panic!("no app-server runs with CODEX_HOME={home}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_runs_each_leave_one_start_and_one_end() {
    let rig = EngineRig::start(&[]).await;
    let starts = (0..20).map(|n| {
        let parts = [format!("run {n} "), "done".to_string()];
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        rig.engine
            .run(rig.request(Script::stream(&parts, 20).marker()))
    });
    let started: Vec<_> = futures_util::future::join_all(starts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (n, run) in started.iter().enumerate() {
        let result = rig.finish(run).await;
        assert_eq!(result.result, Some(format!("run {n} done")));
    }
    let index = store::read_index(&rig.run_dir()).unwrap();
    let raw = std::fs::read_to_string(rig.run_dir().join("index.jsonl")).unwrap();
    assert_eq!(raw.lines().count(), 40, "every line parsed and none lost");
    for run in &started {
        let count = |event| {
            index
                .iter()
                .filter(|record| record.run_id == run.run_id && record.event == event)
                .count()
        };
        assert_eq!((count(IndexEvent::Start), count(IndexEvent::End)), (1, 1));
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_error_fails_the_run_and_lands_in_its_stderr_log() {
    let rig = EngineRig::start(&[]).await;
    let started = rig.run(Script::http_error(500).marker()).await;
    let result = rig.finish(&started).await;
    assert_eq!(result.status, RunStatus::Failed, "{result:?}");
    assert!(result.error.is_some(), "{result:?}");
    let stderr =
        std::fs::read_to_string(rig.run_dir().join(format!("{}.stderr.log", started.run_id)))
            .unwrap();
    assert!(stderr.contains("error notification"), "{stderr}");
    assert!(stderr.contains("internalServerError"), "{stderr}");
    rig.stop().await;
}

/// With CODEX_MCP_WRAPPER_APP_SERVER_LOG, the private app-server logs what
/// it does, and the lines it writes while a run is active land in that
/// run's stderr log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_server_stderr_lines_land_in_the_runs_stderr_log() {
    let rig = EngineRig::start(&[("CODEX_MCP_WRAPPER_APP_SERVER_LOG", "debug")]).await;
    let started = rig.run(Script::stream(&["a", "b"], 100).marker()).await;
    assert_eq!(rig.finish(&started).await.status, RunStatus::Completed);
    let stderr =
        std::fs::read_to_string(rig.run_dir().join(format!("{}.stderr.log", started.run_id)))
            .unwrap();
    let logged = stderr
        .lines()
        .filter(|line| !line.contains("error notification"))
        .count();
    assert!(
        logged > 0,
        "no app-server line reached the run's stderr log:\n{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "colour codes are stripped");
    rig.stop().await;
}
