//! A Codex approval reaches the person inside Claude Code (issue 16), with
//! the real Claude Code (the pinned one, or `CLAUDE_BIN`), the real Codex
//! and both models scripted. Every MCP message between Claude Code and the
//! sidecar is logged by a wrapper (see `common::mcp_traffic`), so each test
//! also shows how the question travelled and how Claude Code answered it;
//! `docs/claude-code-approvals.md` writes the findings down.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_mcp_sidecar::config::{ENV_POINTER_DIR, ENV_RUN_DIR, ENV_URL};
use codex_mcp_sidecar_test_support::scripted_anthropic::{
    AnthropicRequest, AnthropicScript, Reply, ScriptedAnthropic,
};
use codex_mcp_sidecar_test_support::scripted_model::Script;
use codex_mcp_sidecar_test_support::world::{SidecarWorld, processes_naming};
use serde_json::{Value, json};

use crate::common::claude::{ClaudeUser, text};
use crate::common::claude_tty::{FAKE_API_KEY, InteractiveClaude, preseed, wait_until};
use crate::common::codex_bin;
use crate::common::mcp_traffic::{Carrier, Direction, TrafficLog, answers, questions};

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// The server's name in Claude Code, hence its tools' `mcp__codex__…`.
const SERVER: &str = "codex";
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

/// Claude Code's start-up and the sidecar's MCP handshake (Claude Code's own
/// connect timeout is 30 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Between a prompt sent before Claude Code had the sidecar's tools and the
/// next: it takes them in within a second of `tools/list`.
const ASK_AGAIN_PAUSE: Duration = Duration::from_secs(1);

/// From the prompt to the dialog: a model turn, the call, the shared
/// app-server's start (a few seconds, more on a loaded machine), Codex's
/// first request to its model, and a poll of the task.
const DIALOG_TIMEOUT: Duration = Duration::from_secs(90);

/// How long one Enter on Accept gets to close the dialog (a redraw), and how
/// many are tried.
const SUBMIT_WAIT: Duration = Duration::from_secs(2);
const SUBMIT_TRIES: usize = 3;

/// From the answer to the file on disk, and from there to the result in the
/// model's next request: a scripted turn and a poll or two of the task.
const AFTER_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Bounds each of Claude Code's tool calls in `-p` mode, so a stuck call
/// comes back as a tool error well before [`PRINT_TIMEOUT`].
const TOOL_CALL_TIMEOUT: Duration = Duration::from_secs(100);

/// The whole `claude -p`: start-up, the handshake and four tool calls.
const PRINT_TIMEOUT: Duration = Duration::from_secs(300);

/// The slice a `codex_wait` waits: longer than the scripted turn, inside
/// [`TOOL_CALL_TIMEOUT`]. It answers at once on a pending approval.
const WAIT_SLICE: Duration = Duration::from_secs(60);

/// `app-server stop` signals the keeper and waits for the app-server's
/// whole process group to go.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The interactive Claude Code with MCP tasks on, as it comes: the scripted
/// model calls `codex_run` with an asking policy, the dialog shows Codex's
/// command, the person accepts with keys, Codex runs it (the file appears),
/// and the run's result reaches the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_accepts_a_codex_command_in_claude_codes_dialog() {
    let session = Session::start(
        AnthropicScript::new()
            .call_when_offered(RUN_TOOL, asking_run())
            .answer_tool_results(ANSWER_PREFIX),
    )
    .await;
    preseed(&session.user, session.servers());
    let claude = InteractiveClaude::start(
        &session.user,
        &session.api,
        &["--allowedTools", &[RUN_TOOL, WAIT_TOOL].join(",")],
    );
    session.wait_connected().await;
    session.ask(&claude, "Ask Codex to make the file.").await;

    let command = format!("touch {FILE}");
    let dialog = claude
        .wait_for_screen(
            "dialog showing Codex's command",
            DIALOG_TIMEOUT,
            |screen| screen.contains("requests your input") && screen.contains(&command),
            || session.context(),
        )
        .await;
    assert!(
        !session.project_file().exists(),
        "the command ran before anyone answered:\n{dialog}"
    );
    accept(&claude, &session).await;

    let made = wait_until(AFTER_ANSWER_TIMEOUT, || {
        session.project_file().exists().then_some(())
    })
    .await;
    assert!(
        made.is_some(),
        "{FILE} never appeared after Accept\n{}\n{}",
        claude.screen(),
        session.context()
    );
    // The run's result reaches the model: Claude Code tells it in a new
    // request that the task completed (a `<task-notification>`), with the
    // result `codex_wait` would give.
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
    assert!(message.contains(&command), "{message}");
    assert_eq!(asked[0].how, Carrier::Task, "{}", session.context());
    assert_eq!(
        answers(&messages)
            .first()
            .map(|answer| answer["action"].clone()),
        Some(json!("accept"))
    );
    assert!(
        messages
            .iter()
            .any(|message| message.direction == Direction::ToServer
                && message.method() == Some("tasks/update")),
        "{}",
        session.context()
    );

    claude.stop().await;
    session.finish().await;
}

/// `claude -p`: it declares elicitation, but no person can answer. Whatever
/// the sidecar asks is cancelled at once, the approval goes back to the
/// calling model, which answers it with `codex_approve`, and the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_p_cancels_the_question_and_the_caller_approves() {
    let run_id = Arc::new(Mutex::new(String::new()));
    let seen = run_id.clone();
    let again = run_id.clone();
    let session = Session::start(
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
    preseed(&session.user, session.servers());
    let mut command = session.user.command(&[
        "-p",
        "Ask Codex to make the file.",
        "--allowedTools",
        &[RUN_TOOL, WAIT_TOOL, APPROVE_TOOL].join(","),
    ]);
    command
        .env("ANTHROPIC_BASE_URL", session.api.base_url())
        .env("ANTHROPIC_API_KEY", FAKE_API_KEY)
        .env("ENABLE_TOOL_SEARCH", "false")
        .env(
            "MCP_TOOL_TIMEOUT",
            TOOL_CALL_TIMEOUT.as_millis().to_string(),
        );
    let output = tokio::time::timeout(PRINT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "`claude -p` did not finish within {PRINT_TIMEOUT:?}\n{}",
                session.context()
            )
        })
        .unwrap();
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

    // Every question was cancelled, by Claude Code, with nobody asked.
    let asked = questions(&messages);
    let answered = answers(&messages);
    assert_eq!(asked.len(), answered.len(), "{printed}");
    assert!(
        answered.iter().all(|answer| answer["action"] == "cancel"),
        "{printed}"
    );

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
    assert!(session.project_file().exists(), "{printed}");
    assert!(stdout.contains(CODEX_ANSWER), "{printed}");

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

/// Accepts the dialog on screen: an enum field is opened (Right), its
/// `accept` option picked (Enter), then the form's Accept button submitted
/// (Enter); a form without fields has only the buttons.
async fn accept(claude: &InteractiveClaude, session: &Session) {
    let screen = claude.screen();
    if screen.contains("▸") {
        claude.keys(&["Right"]);
        let opened = claude
            .wait_for_screen(
                "the field's options",
                DIALOG_TIMEOUT,
                |screen| screen.contains("◯"),
                || session.context(),
            )
            .await;
        let options: Vec<&str> = opened.lines().filter(|line| line.contains("◯")).collect();
        let at = options
            .iter()
            .position(|line| line.trim_end().ends_with("◯ accept"))
            .unwrap_or_else(|| panic!("no `accept` option in the form:\n{opened}"));
        for _ in 0..at {
            claude.keys(&["Down"]);
        }
        claude.keys(&["Enter"]);
    }
    claude
        .wait_for_screen(
            "the Accept button chosen",
            DIALOG_TIMEOUT,
            |screen| screen.contains("❯ Accept"),
            || session.context(),
        )
        .await;
    // An Enter that comes while the form is still redrawing after the pick
    // can be lost: press it again until the dialog goes.
    for _ in 0..SUBMIT_TRIES {
        claude.keys(&["Enter"]);
        let gone = wait_until(SUBMIT_WAIT, || {
            (!claude.screen().contains("requests your input")).then_some(())
        })
        .await;
        if gone.is_some() {
            return;
        }
    }
    panic!(
        "the dialog stayed after {SUBMIT_TRIES} Enters on Accept:\n{}\n{}",
        claude.screen(),
        session.context()
    );
}

/// The text of a request's last message: plain text, text blocks, and the
/// text of tool results.
fn last_message_text(request: &AnthropicRequest) -> String {
    let Some(last) = request.body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
    else {
        return String::new();
    };
    let mut text = String::new();
    collect_text(&last["content"], &mut text);
    text
}

fn collect_text(value: &Value, into: &mut String) {
    match value {
        Value::String(part) => {
            into.push_str(part);
            into.push('\n');
        }
        Value::Array(parts) => parts.iter().for_each(|part| collect_text(part, into)),
        Value::Object(block) => {
            for key in ["text", "content"] {
                if let Some(part) = block.get(key) {
                    collect_text(part, into);
                }
            }
        }
        _ => {}
    }
}

/// One test's Claude Code user, Codex world, scripted Anthropic API and the
/// log of the MCP traffic between Claude Code and the sidecar.
struct Session {
    world: SidecarWorld,
    user: ClaudeUser,
    api: ScriptedAnthropic,
    _logs: tempfile::TempDir,
    traffic: TrafficLog,
}

impl Session {
    async fn start(script: AnthropicScript) -> Session {
        let world = SidecarWorld::new().await;
        let mut user = ClaudeUser::new();
        // The sidecar inherits Claude Code's environment: a run directory
        // of the developer's must not choose where runs are kept.
        user.removed.push(ENV_RUN_DIR.to_owned());
        let api = ScriptedAnthropic::start(script).await;
        let logs = tempfile::tempdir().unwrap();
        let traffic = TrafficLog::new(logs.path());
        Session {
            world,
            user,
            api,
            _logs: logs,
            traffic,
        }
    }

    /// The sidecar as a user-scope MCP server, through the traffic wrapper:
    /// the world's Codex and a shared app-server on its free port, and debug
    /// logs to the wrapper's stderr file.
    fn servers(&self) -> Value {
        let mut env = serde_json::Map::new();
        env.insert("CODEX_BIN".into(), json!(codex_bin()));
        env.insert("CODEX_HOME".into(), json!(self.world.codex_home.path()));
        env.insert(ENV_POINTER_DIR.into(), json!(self.world.pointer_dir));
        env.insert(ENV_URL.into(), json!(self.world.url));
        env.insert("RUST_LOG".into(), json!("codex_mcp_sidecar=debug"));
        env.insert("NO_COLOR".into(), json!("1"));
        json!({ SERVER: self.traffic.server(&PathBuf::from(SIDECAR), &env) })
    }

    /// Waits until Claude Code has the sidecar's tools: typed earlier, a
    /// prompt's first request would not offer them.
    async fn wait_connected(&self) {
        let listed = wait_until(CONNECT_TIMEOUT, || {
            self.traffic
                .messages()
                .iter()
                .any(|message| {
                    message.direction == Direction::ToClient
                        && message.body["result"]["tools"].is_array()
                })
                .then_some(())
        })
        .await;
        assert!(
            listed.is_some(),
            "Claude Code never listed the sidecar's tools\n{}\nClaude Code's log:\n{}",
            self.context(),
            self.user.mcp_log(SERVER)
        );
    }

    /// Sends `prompt` until the model's request offers `codex_run`: Claude
    /// Code may send the first prompt before it has taken in the sidecar's
    /// tools (it then offers a `WaitForMcpServers` tool instead), and the
    /// scripted API answers that request with text.
    async fn ask(&self, claude: &InteractiveClaude, prompt: &str) {
        let deadline = std::time::Instant::now() + CONNECT_TIMEOUT;
        loop {
            let before = self.api.requests().len();
            claude.say(prompt);
            let answered = wait_until(CONNECT_TIMEOUT, || {
                (self.api.requests().len() > before).then_some(())
            })
            .await;
            assert!(
                answered.is_some(),
                "Claude Code sent no request for the prompt\n{}\n{}",
                claude.screen(),
                self.context()
            );
            let offered = self
                .api
                .requests()
                .iter()
                .any(|request| request.tool_names().iter().any(|name| name == RUN_TOOL));
            if offered {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Claude Code never offered {RUN_TOOL}\n{}\n{}",
                claude.screen(),
                self.context()
            );
            tokio::time::sleep(ASK_AGAIN_PAUSE).await;
        }
    }

    fn project_file(&self) -> PathBuf {
        self.user.project.path().join(FILE)
    }

    /// What a failure message needs: the model requests, the MCP traffic and
    /// the sidecar's log.
    fn context(&self) -> String {
        let requests: String = self
            .api
            .requests()
            .iter()
            .map(|request| {
                format!(
                    "{}\n  tools: {:?}\n",
                    request.summary(),
                    request.tool_names()
                )
            })
            .collect();
        format!(
            "API requests:\n{requests}MCP traffic:\n{}sidecar log (tail):\n{}\nClaude Code's log of the server:\n{}",
            self.traffic.summary(),
            tail(&self.traffic.server_log(), LOG_TAIL_LINES),
            tail(&self.user.mcp_log(SERVER), LOG_TAIL_LINES)
        )
    }

    /// Stops the shared app-server the sidecar started and checks nothing of
    /// it is left.
    async fn finish(self) {
        let stop = tokio::time::timeout(
            STOP_TIMEOUT,
            self.world
                .command(SIDECAR)
                .args(["app-server", "stop"])
                .output(),
        )
        .await
        .expect("app-server stop finishes within STOP_TIMEOUT")
        .unwrap();
        assert!(
            stop.status.success(),
            "app-server stop: {}",
            String::from_utf8_lossy(&stop.stderr)
        );
        let left = processes_naming(&self.world.url);
        assert!(left.is_empty(), "processes left: {left:?}");
        self.api.shutdown().await;
        self.world.shutdown().await;
    }
}

/// How much of the sidecar's debug log a failure message shows.
const LOG_TAIL_LINES: usize = 60;

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
