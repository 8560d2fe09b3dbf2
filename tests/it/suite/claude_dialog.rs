//! A Codex approval reaches the person inside Claude Code (issue 16), with
//! the real Claude Code (the pinned one, or `CLAUDE_BIN`), the real Codex
//! and both models scripted. Every MCP message between Claude Code and the
//! sidecar is logged by a wrapper (see `common::mcp_traffic`), so each test
//! also shows how the question travelled and how Claude Code answered it;
//! `docs/claude-code-approvals.md` writes the findings down.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_mcp_sidecar_test_support::scripted_anthropic::{
    AnthropicRequest, AnthropicScript, Reply,
};
use codex_mcp_sidecar_test_support::scripted_model::Script;
use serde_json::{Value, json};

use codex_mcp_sidecar::store::{self, Answerer, AuditEvent, RunId};

use crate::common::claude::text;
use crate::common::claude_sidecar::{ClaudeSidecar, last_message_text};
use crate::common::claude_tty::{DIALOG_TITLE, InteractiveClaude, wait_until};
use crate::common::mcp_traffic::{Carrier, answers, questions};

const RUN_TOOL: &str = "mcp__codex__codex_run";
const WAIT_TOOL: &str = "mcp__codex__codex_wait";
const APPROVE_TOOL: &str = "mcp__codex__codex_approve";

/// The MCP version both Claude Codes under test negotiate with rmcp 3.9:
/// no `initialize`, capabilities in every request's `_meta`, and no request
/// from the server (a question for the person travels inside an answer).
const STATELESS_PROTOCOL: &str = "2026-07-28";

/// The file the scripted Codex model's command creates in the project.
const FILE: &str = "made-by-codex.txt";
/// What the scripted Codex model answers once the command has run.
const CODEX_ANSWER: &str = "Codex made the file";
/// What the scripted Anthropic API puts before a tool's result.
const ANSWER_PREFIX: &str = "Codex answered: ";

/// Polls of a task still `input_required` after Esc that show nobody
/// answered: Claude Code polls every second (the sidecar's interval).
const POLLS_AFTER_ESCAPE: usize = 3;

/// From the prompt to the dialog: a model turn, the call, the shared
/// app-server's start (a few seconds, more on a loaded machine), Codex's
/// first request to its model, and a poll of the task.
const DIALOG_TIMEOUT: Duration = Duration::from_secs(90);

/// From the answer to the file on disk, and from there to the result in the
/// model's next request: a scripted turn and a poll or two of the task.
const AFTER_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The slice a `codex_wait` waits: longer than the scripted turn, inside
/// the harness's bound on one tool call. It answers at once on a pending
/// approval.
const WAIT_SLICE: Duration = Duration::from_secs(60);

/// The interactive Claude Code with MCP tasks on, as it comes: the scripted
/// model calls `codex_run` with an asking policy, the dialog shows Codex's
/// command, the person accepts with keys, Codex runs it (the file appears),
/// and the run's result reaches the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_accepts_a_codex_command_in_claude_codes_dialog() {
    let (session, claude) = interactive().await;
    let dialog = wait_for_dialog(&session, &claude).await;
    assert!(
        !project_file(&session).exists(),
        "the command ran before anyone answered:\n{dialog}"
    );
    claude.accept_form(|| session.context()).await;
    assert_made_and_told(&session, &claude).await;

    // How the question travelled and came back.
    let messages = session.traffic.messages();
    assert_eq!(
        messages.first().and_then(|first| first.protocol_version()),
        Some(STATELESS_PROTOCOL),
        "{}",
        session.context()
    );
    let declared = messages
        .iter()
        .find_map(|message| message.client_capabilities())
        .cloned()
        .unwrap_or_default();
    assert!(declared["elicitation"].is_object(), "{declared}");
    assert!(
        declared["extensions"]["io.modelcontextprotocol/tasks"].is_object(),
        "MCP tasks are on by default: {declared}"
    );
    let asked = questions(&messages);
    assert_eq!(asked.len(), 1, "{}", session.context());
    let message = asked[0].params["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("touch {FILE}")), "{message}");
    assert_eq!(asked[0].how, Carrier::Task, "{}", session.context());
    assert_eq!(
        answers(&messages)
            .iter()
            .map(|answer| answer["action"].clone())
            .collect::<Vec<_>>(),
        [json!("accept")],
        "{}",
        session.context()
    );
    assert_the_person_decided_once(session, claude).await;
}

/// Esc on the dialog is "answer later", not a cancel: Claude Code sends no
/// answer, the task stays `input_required`, nothing runs, and the status
/// line says the task needs input. The person reopens the question from the
/// task list (Down, Enter, Enter) and accepts it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_leaves_the_question_with_the_person_until_answered_from_the_task_list() {
    let (session, claude) = interactive().await;
    wait_for_dialog(&session, &claude).await;
    claude.keys(&["Escape"]);
    claude
        .wait_for_screen(
            "the task waiting for input, dialog closed",
            DIALOG_TIMEOUT,
            |screen| !screen.contains(DIALOG_TITLE) && screen.contains("needs your input"),
            || session.context(),
        )
        .await;
    // Claude Code goes on polling, the sidecar goes on asking, and nobody
    // has answered: a few more polls than Claude Code makes in a second.
    let asking_before = session.traffic.task_answers("input_required");
    let polled = wait_until(AFTER_ANSWER_TIMEOUT, || {
        (session.traffic.task_answers("input_required") >= asking_before + POLLS_AFTER_ESCAPE)
            .then_some(())
    })
    .await;
    assert!(polled.is_some(), "{}", session.context());
    assert_eq!(
        session.traffic.client_requests("tasks/update"),
        0,
        "Esc answered:\n{}",
        session.context()
    );
    assert!(
        answers(&session.traffic.messages()).is_empty(),
        "{}",
        session.context()
    );
    assert!(!project_file(&session).exists(), "{}", session.context());

    // Back to the question through the task list.
    claude.keys(&["Down"]);
    claude
        .wait_for_screen(
            "the task list offered",
            DIALOG_TIMEOUT,
            |screen| screen.contains("enter to view tasks"),
            || session.context(),
        )
        .await;
    claude.keys(&["Enter"]);
    claude
        .wait_for_screen(
            "the task waiting for an answer",
            DIALOG_TIMEOUT,
            |screen| screen.contains("waiting for your answer"),
            || session.context(),
        )
        .await;
    claude.keys(&["Enter"]);
    wait_for_dialog(&session, &claude).await;
    claude.accept_form(|| session.context()).await;
    assert_made_and_told(&session, &claude).await;
    assert_the_person_decided_once(session, claude).await;
}
/// One answer went out, through `tasks/update`, and the audit says the
/// person decided; then Claude Code and the session stop.
async fn assert_the_person_decided_once(session: ClaudeSidecar, claude: InteractiveClaude) {
    assert_eq!(
        session.traffic.client_requests("tasks/update"),
        1,
        "{}",
        session.context()
    );
    assert_eq!(deciders(&session), [Some(Answerer::Person)]);
    claude.stop().await;
    session.finish().await;
}

/// `claude -p`: it declares elicitation but takes no tasks, so the approval
/// goes to the calling model, which answers it with `codex_approve`, and the
/// run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_p_leaves_the_approval_to_the_caller_who_approves() {
    let run_id = Arc::new(Mutex::new(String::new()));
    let seen = run_id.clone();
    let again = run_id.clone();
    let session = ClaudeSidecar::start(
        AnthropicScript::new()
            .call_when_offered(RUN_TOOL, asking_run())
            .then_call(WAIT_TOOL, move |handle| {
                let handle: Value = serde_json::from_str(handle).unwrap_or_default();
                *seen.lock().unwrap() = handle["runId"].as_str().unwrap_or_default().to_owned();
                json!({ "run_id": handle["runId"], "soft_timeout_ms": WAIT_SLICE.as_millis() as u64 })
            })
            .then_call(APPROVE_TOOL, |waited| {
                let waited: Value = serde_json::from_str(waited).unwrap_or_default();
                json!({
                    "run_id": waited["runId"],
                    "approval_id": waited["pendingApproval"]["approvalId"],
                    "decision": "accept",
                })
            })
            .then_call(WAIT_TOOL, move |_| {
                json!({ "run_id": *again.lock().unwrap(), "soft_timeout_ms": WAIT_SLICE.as_millis() as u64 })
            })
            .answer_tool_results(ANSWER_PREFIX),
    )
    .await;
    let output = session
        .print(
            "Ask Codex to make the file.",
            &[RUN_TOOL, WAIT_TOOL, APPROVE_TOOL],
        )
        .await;
    let (stdout, stderr) = text(&output);
    let printed = format!(
        "stdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        session.context()
    );
    assert!(output.status.success(), "{printed}");

    // `-p` says it can show forms, and takes no tasks; it speaks 2026-07-28,
    // where a server sends no request of its own.
    let messages = session.traffic.messages();
    assert_eq!(
        messages.first().and_then(|first| first.protocol_version()),
        Some(STATELESS_PROTOCOL),
        "{printed}"
    );
    let declared = messages
        .iter()
        .find_map(|message| message.client_capabilities())
        .cloned()
        .unwrap_or_default();
    assert!(declared["elicitation"]["form"].is_object(), "{printed}");
    assert!(
        declared["extensions"]["io.modelcontextprotocol/tasks"].is_null(),
        "{printed}"
    );

    // Nobody is asked: with no task, and no request of the server's allowed
    // on 2026-07-28, the question has no way to Claude Code. (Had it one,
    // `-p` would cancel it at once; see docs/claude-code-approvals.md.)
    let asked = questions(&messages);
    assert!(asked.is_empty(), "{asked:?}\n{printed}");
    assert!(answers(&messages).is_empty(), "{printed}");

    // The caller answered instead, and the run went on to its end.
    let calls: Vec<String> = session
        .api
        .requests()
        .iter()
        .filter_map(|request| match &request.reply {
            Reply::ToolUse { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [RUN_TOOL, WAIT_TOOL, APPROVE_TOOL, WAIT_TOOL],
        "{printed}"
    );
    let results: Vec<Value> = session
        .api
        .requests()
        .iter()
        .filter_map(AnthropicRequest::tool_result)
        .map(|result| serde_json::from_str(&result).unwrap_or(Value::String(result)))
        .collect();
    assert_eq!(results[1]["status"], "waiting_for_approval", "{printed}");
    assert_eq!(results[2]["decision"], "accept", "{printed}");
    assert_eq!(results[3]["status"], "completed", "{printed}");
    assert_eq!(results[3]["result"], CODEX_ANSWER, "{printed}");
    assert!(project_file(&session).exists(), "{printed}");
    assert!(stdout.contains(CODEX_ANSWER), "{printed}");
    assert_eq!(deciders(&session), [Some(Answerer::Caller)], "{printed}");

    session.finish().await;
}

/// Codex runs `touch FILE` under `untrusted`, which asks before anything
/// not known to be read-only; `workspace-write` lets the approved command
/// write in the project.
fn asking_run() -> Value {
    json!({
        "prompt": format!("Make the file. {}", Script::exec(format!("touch {FILE}"), CODEX_ANSWER).marker()),
        "permissions": "workspace-write",
        "approval_policy": "untrusted",
    })
}

/// A session whose scripted model calls `codex_run` with an asking policy,
/// and an interactive Claude Code on it that has been asked to use it.
async fn interactive() -> (ClaudeSidecar, InteractiveClaude) {
    let session = ClaudeSidecar::start(
        AnthropicScript::new()
            .call_when_offered(RUN_TOOL, asking_run())
            .answer_tool_results(ANSWER_PREFIX),
    )
    .await;
    let claude = session.interactive(&[RUN_TOOL, WAIT_TOOL]).await;
    session
        .ask(&claude, "Ask Codex to make the file.", RUN_TOOL)
        .await;
    (session, claude)
}

/// Waits for Claude Code's dialog with Codex's command in it.
async fn wait_for_dialog(session: &ClaudeSidecar, claude: &InteractiveClaude) -> String {
    let command = format!("touch {FILE}");
    claude
        .wait_for_screen(
            "dialog showing Codex's command",
            DIALOG_TIMEOUT,
            |screen| screen.contains(DIALOG_TITLE) && screen.contains(&command),
            || session.context(),
        )
        .await
}

/// The file appears (Codex ran the command), and the run's result reaches
/// the model: Claude Code tells it in a new request that the task completed
/// (a `<task-notification>`), with the result `codex_wait` would give.
async fn assert_made_and_told(session: &ClaudeSidecar, claude: &InteractiveClaude) {
    let made = wait_until(AFTER_ANSWER_TIMEOUT, || {
        project_file(session).exists().then_some(())
    })
    .await;
    assert!(
        made.is_some(),
        "{FILE} never appeared after Accept\n{}\n{}",
        claude.screen(),
        session.context()
    );
    let told = wait_until(AFTER_ANSWER_TIMEOUT, || {
        session
            .api
            .requests()
            .iter()
            .map(last_message_text)
            .any(|text| {
                text.contains("<task-notification>")
                    && text.contains(r#""status":"completed""#)
                    && text.contains(&format!(r#""result":"{CODEX_ANSWER}""#))
            })
            .then_some(())
    })
    .await;
    assert!(
        told.is_some(),
        "the model never got Codex's answer\n{}\n{}",
        claude.screen(),
        session.context()
    );
}

fn project_file(session: &ClaudeSidecar) -> PathBuf {
    session.user.project.path().join(FILE)
}

/// Who decided each of Codex's requests in the run's audit, read from the
/// project Claude Code ran in.
fn deciders(session: &ClaudeSidecar) -> Vec<Option<Answerer>> {
    let run_dir = session.user.project.path().join(".codex/codex-mcp/runs");
    let runs: Vec<RunId> = std::fs::read_dir(&run_dir)
        .unwrap_or_else(|error| panic!("no runs in {}: {error}", run_dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            RunId::parse(name.strip_suffix(".jsonl")?).ok()
        })
        .collect();
    assert_eq!(runs.len(), 1, "one run in {}: {runs:?}", run_dir.display());
    store::read_events(&run_dir, &runs[0])
        .unwrap()
        .into_iter()
        .filter_map(|record| match record.event {
            AuditEvent::Response { answered_by, .. } => Some(answered_by),
            _ => None,
        })
        .collect()
}
