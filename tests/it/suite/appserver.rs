//! The app-server process and connection against the real Codex CLI.

use std::time::{Duration, Instant};

use codex_mcp_sidecar::appserver::{
    AppServerConnection, CapabilityToken, ConnectOptions, ConnectionError, ServerEvent,
};
use codex_mcp_sidecar::protocol::{
    ApprovalDecision, ApprovalPolicy, NotificationKind, SandboxMode, ServerRequestKind,
    ThreadResumeParams, ThreadSettings, TurnStatus,
};
use codex_mcp_sidecar_test_support::scripted_model::RequestOutcome;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use pretty_assertions::assert_eq;

use codex_mcp_sidecar_test_support::scripted_model::Script;

use crate::common::{Rig, assert_no_process_left, function_call_output, path_string, start_turn};

/// "Promptly", for a request whose server died: the connection notices the
/// socket closing at once; two seconds is generous even on a loaded machine
/// and far below any request timeout.
const PROMPT_FAILURE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_reports_the_server_and_its_codex_home() {
    let rig = Rig::start().await;
    let (connection, _events) = rig.connect().await;
    let info = connection.server_info();
    let user_agent = info.user_agent.as_deref().unwrap_or_default();
    let version = crate::common::codex_version().to_string();
    assert!(user_agent.contains(&version), "user agent: {user_agent}");
    let home = info.codex_home.as_deref().expect("codexHome in initialize");
    assert_eq!(
        std::fs::canonicalize(home).unwrap(),
        std::fs::canonicalize(rig.codex_home.path()).unwrap()
    );
    // Its stderr is kept, line by line, with the colour codes removed.
    let stderr = rig.server.stderr().lines();
    assert!(
        stderr
            .iter()
            .any(|line| line.trim() == format!("listening on: {}", rig.server.url())),
        "{stderr:?}"
    );
    assert!(
        stderr.iter().all(|line| !line.contains('\u{1b}')),
        "{stderr:?}"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_streams_deltas_then_completes_with_the_scripted_text() {
    let rig = Rig::start().await;
    let (connection, mut events) = rig.connect().await;
    let thread = rig
        .thread(&connection, ApprovalPolicy::Never, SandboxMode::ReadOnly)
        .await;
    let prompt = format!(
        "Greet me. {}",
        Script::stream(&["Hel", "lo, ", "world"], 30).marker()
    );
    let turn = start_turn(&connection, &thread.id, prompt).await;
    assert_eq!(turn.status, TurnStatus::InProgress);

    let (done, deltas) = events.turn_completed(&turn.id).await;
    assert_eq!(deltas, vec!["Hel", "lo, ", "world"]);
    assert_eq!(done.thread_id, thread.id);
    assert_eq!(done.turn.status, TurnStatus::Completed);
    assert_eq!(done.turn.final_message(), Some("Hello, world"));
    rig.finish().await;
}

/// A command that needs approval: `untrusted` asks before running anything
/// that is not known to be read-only.
async fn approval_round(decision: ApprovalDecision) -> (Rig, bool, String) {
    let rig = Rig::start().await;
    let (connection, mut events) = rig.connect().await;
    let thread = rig
        .thread(
            &connection,
            ApprovalPolicy::Untrusted,
            SandboxMode::WorkspaceWrite,
        )
        .await;
    let prompt = Script::exec("touch approved.txt", "all done").marker();
    let turn = start_turn(&connection, &thread.id, prompt).await;

    let request = events.server_request().await;
    let ServerRequestKind::CommandApproval(params) = &request.kind else {
        panic!("expected a command approval, got {}", request.method);
    };
    assert_eq!(params.turn_id, turn.id);
    assert!(
        params
            .command
            .as_deref()
            .unwrap_or_default()
            .contains("touch approved.txt"),
        "command: {:?}",
        params.command
    );
    connection
        .respond(&request.id, &decision.to_result())
        .await
        .unwrap();

    let (done, _) = events.turn_completed(&turn.id).await;
    assert_eq!(done.turn.status, TurnStatus::Completed);
    let created = rig.project.path().join("approved.txt").exists();
    // What Codex told the model about the command, from the follow-up request.
    let output = rig
        .model
        .requests()
        .iter()
        .filter_map(|request| function_call_output(&request.body))
        .next_back()
        .expect("Codex posted the command's output back to the model");
    (rig, created, output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_command_runs_and_creates_its_file() {
    let (rig, created, _output) = approval_round(ApprovalDecision::Accept).await;
    assert!(
        created,
        "the accepted command should have created approved.txt"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_command_does_not_run() {
    let (rig, created, output) = approval_round(ApprovalDecision::Decline).await;
    assert!(!created, "a declined command must not touch the disk");
    assert!(
        output.to_lowercase().contains("reject") || output.to_lowercase().contains("declin"),
        "the model should learn the command was refused: {output}"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_ends_a_never_ending_turn() {
    let rig = Rig::start().await;
    let (connection, mut events) = rig.connect().await;
    let thread = rig
        .thread(&connection, ApprovalPolicy::Never, SandboxMode::ReadOnly)
        .await;
    let turn = start_turn(&connection, &thread.id, Script::hang().marker()).await;
    // Interrupt only once the model is really streaming.
    rig.model
        .wait_for_outcome(RequestOutcome::Streaming, Duration::from_secs(30))
        .await
        .unwrap();
    connection
        .turn_interrupt(&thread.id, &turn.id)
        .await
        .unwrap();

    let (done, _) = events.turn_completed(&turn.id).await;
    assert_eq!(done.turn.status, TurnStatus::Interrupted);
    // The turn is really stopped: Codex hung up on the model.
    rig.model
        .wait_for_outcome(RequestOutcome::ClientWentAway, Duration::from_secs(10))
        .await
        .expect("the model saw the stream closed");
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connection_resumes_a_running_thread_and_sees_it_complete() {
    let rig = Rig::start().await;
    let (first, mut first_events) = rig.connect().await;
    let thread = rig
        .thread(&first, ApprovalPolicy::Never, SandboxMode::ReadOnly)
        .await;
    // Long enough to resume while it runs: 12 deltas, 150 ms apart.
    let parts: Vec<String> = (0..12).map(|n| format!("part{n} ")).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let turn = start_turn(&first, &thread.id, Script::stream(&parts, 150).marker()).await;
    // Resume mid-turn: after the first connection has seen three deltas.
    let mut seen_first = 0;
    first_events
        .until(|event| match event {
            ServerEvent::Notification(note) => match note.kind {
                NotificationKind::AgentMessageDelta(_) => {
                    seen_first += 1;
                    (seen_first == 3).then_some(())
                }
                _ => None,
            },
            _ => None,
        })
        .await;

    let (second, mut second_events) = rig.connect().await;
    let resumed = second
        .thread_resume(&ThreadResumeParams {
            thread_id: thread.id.clone(),
            settings: ThreadSettings {
                cwd: Some(path_string(rig.project.path())),
                ..ThreadSettings::default()
            },
        })
        .await
        .unwrap();
    assert_eq!(resumed.thread.id, thread.id);
    let (done, deltas) = second_events.turn_completed(&turn.id).await;
    assert_eq!(done.turn.status, TurnStatus::Completed);
    assert_eq!(done.turn.final_message(), Some(parts.concat().as_str()));
    // Live: the rest of the turn streams to the second connection too, in
    // order and without gaps, up to the last part.
    let deltas: Vec<&str> = deltas.iter().map(String::as_str).collect();
    assert!(
        !deltas.is_empty() && parts.ends_with(&deltas),
        "expected a tail of {parts:?}, got {deltas:?}"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_token_is_refused() {
    let rig = Rig::start().await;
    for token in [Some(CapabilityToken::from_secret("not-the-token")), None] {
        let refused = AppServerConnection::connect(ConnectOptions::new(rig.server.url(), token))
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(refused, ConnectionError::Unauthorized { .. }),
            "got {refused}"
        );
    }
    // The right token still works afterwards.
    let _ = rig.connect().await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_app_server_fails_a_pending_request_promptly() {
    let mut rig = Rig::start().await;
    let (connection, mut events) = rig.connect().await;
    let pgid = rig.server.pgid();
    // Freeze the server so the request below is certainly pending.
    killpg(Pid::from_raw(pgid), Signal::SIGSTOP).unwrap();
    wait_until_stopped(pgid).await;
    let pending = tokio::spawn({
        let connection = connection.clone();
        async move {
            connection
                .thread_read(&"no-such-thread".into(), false)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    if pending.is_finished() {
        panic!(
            "the frozen server cannot have answered: {:?}",
            pending.await
        );
    }

    let killed_at = Instant::now();
    rig.server.kill().unwrap();
    let error = tokio::time::timeout(PROMPT_FAILURE, pending)
        .await
        .expect("the pending request failed promptly")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, ConnectionError::Disconnected { .. }),
        "got {error}"
    );
    assert!(killed_at.elapsed() < PROMPT_FAILURE);
    let last = events
        .until(|event| match event {
            ServerEvent::Disconnected { reason } => Some(reason),
            _ => None,
        })
        .await;
    assert!(!last.is_empty());
    // Later requests fail at once too, with the same kind of error.
    let later = connection
        .thread_read(&"x".into(), false)
        .await
        .unwrap_err();
    assert!(
        matches!(later, ConnectionError::Disconnected { .. }),
        "got {later}"
    );

    rig.server.wait().await.unwrap();
    wait_until_gone(pgid).await;
    assert_no_process_left(pgid);
}

/// A stop signal takes effect asynchronously; under load a thread may still
/// run for a moment. Wait until every member of the group reports state `T`.
async fn wait_until_stopped(pgid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let members = codex_mcp_sidecar::appserver::process::live_group_members(pgid);
        let all_stopped = !members.is_empty()
            && members.iter().all(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| {
                        let rest = &stat[stat.rfind(')')? + 1..];
                        rest.split_whitespace().next().map(|state| state == "T")
                    })
                    .unwrap_or(false)
            });
        if all_stopped {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the app-server group did not stop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SIGKILL is immediate, but the kernel tears the processes down a moment
/// later; give it that moment.
async fn wait_until_gone(pgid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !codex_mcp_sidecar::appserver::process::live_group_members(pgid).is_empty()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_notifications_do_not_break_the_stream() {
    // Every real turn carries kinds we do not model (`account/rateLimits/updated`,
    // `thread/status/changed`, …); they arrive as `Other` with their raw params
    // and the typed ones still come through.
    let rig = Rig::start().await;
    let (connection, mut events) = rig.connect().await;
    let thread = rig
        .thread(&connection, ApprovalPolicy::Never, SandboxMode::ReadOnly)
        .await;
    let turn = start_turn(&connection, &thread.id, Script::text("plain").marker()).await;
    let mut other_methods = Vec::new();
    events
        .until(|event| match event {
            ServerEvent::Notification(note) => match note.kind {
                NotificationKind::Other => {
                    assert!(note.params.is_object() || note.params.is_null());
                    other_methods.push(note.method);
                    None
                }
                NotificationKind::TurnCompleted(done) if done.turn.id == turn.id => Some(()),
                _ => None,
            },
            _ => None,
        })
        .await;
    assert!(
        other_methods
            .iter()
            .any(|method| method == "thread/status/changed"),
        "unmodelled kinds seen: {other_methods:?}"
    );
    rig.finish().await;
}
