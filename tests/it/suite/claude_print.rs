//! The plugin end to end, as a Claude Code user gets it (issue 13): the
//! checkout added as a marketplace and `codex-sidecar` installed from it,
//! then `claude -p` with a scripted Anthropic API that calls the plugin's
//! tools: `codex_run` with `async: false`, and the run-then-`codex_wait`
//! pattern the plugin's skill teaches. The sidecar comes from PATH, as the
//! plugin's `.mcp.json` names it; Codex runs the turn on the scripted model,
//! and its answer goes back through Claude Code to the API and out on
//! Claude's stdout. Then the scripted API's own rules, on the wire.

use std::path::Path;
use std::time::Duration;

use codex_mcp_sidecar::config::{ENV_POINTER_DIR, ENV_RUN_DIR, ENV_URL};
use codex_mcp_sidecar_test_support::scripted_model::{Script, user_message_texts};
use serde_json::json;

use crate::common::claude::{ClaudeUser, PLUGIN_SERVER_LOG, text};
use crate::common::codex_bin;
use crate::common::codex_setup::stop_shared_server;
use codex_mcp_sidecar_test_support::scripted_anthropic::{
    AnthropicRequest, AnthropicScript, FALLBACK_TEXT, Reply, ScriptedAnthropic,
};
use codex_mcp_sidecar_test_support::world::SidecarWorld;

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// `mcp__plugin_<plugin>_<server>__<tool>`: the plugin `codex-sidecar`, its
/// server `codex`.
const RUN_TOOL: &str = "mcp__plugin_codex-sidecar_codex__codex_run";
const WAIT_TOOL: &str = "mcp__plugin_codex-sidecar_codex__codex_wait";

/// What the scripted API puts before a tool's result in its final answer.
const ANSWER_PREFIX: &str = "Codex answered: ";

/// The slice one `codex_wait` waits before it answers `still_running`: far
/// longer than a scripted turn (well under a second), so the run has ended
/// within the first slice, and inside `claude::TOOL_CALL_TIMEOUT`.
const WAIT_SLICE: Duration = Duration::from_secs(60);

/// The whole `claude -p`: start-up, the plugin's MCP handshake (bounded by
/// [`CLAUDE_CONNECT_TIMEOUT`]), up to three model turns and two tool calls
/// (each bounded by `claude::TOOL_CALL_TIMEOUT`).
const PRINT_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_p_runs_codex_through_the_plugin_and_gets_the_answer_back() {
    let codex_answer = "the scripted Codex model answered through the plugin";
    let prompt = codex_prompt(codex_answer);
    let plugin = PluginSession::start(
        AnthropicScript::new()
            .call_when_offered(RUN_TOOL, json!({ "prompt": prompt, "async": false }))
            .answer_tool_results(ANSWER_PREFIX),
    )
    .await;

    let printed = plugin.print("Ask Codex for an answer.", &[RUN_TOOL]).await;
    printed.assert_offered(&plugin.user);
    // The API called `codex_run` once, and got Codex's answer back as its
    // result: `async: false` waits for the end of the run.
    assert_eq!(printed.calls(), [RUN_TOOL], "{printed}");
    let result = printed.tool_result(0);
    assert_eq!(result["status"], "completed", "{printed}");
    assert_eq!(result["result"], codex_answer, "{printed}");
    // And Claude printed the API's final answer, which carries it.
    printed.assert_answered(codex_answer);

    plugin.assert_codex_ran(&prompt, &result, codex_answer);
    plugin.finish().await;
}

/// The pattern the plugin's skill teaches: `codex_run` returns a handle at
/// once, then `codex_wait` on its run id returns the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_p_starts_a_run_then_waits_for_it_through_the_plugin() {
    let codex_answer = "the scripted Codex model answered the wait";
    let prompt = codex_prompt(codex_answer);
    let plugin = PluginSession::start(
        AnthropicScript::new()
            .call_when_offered(RUN_TOOL, json!({ "prompt": prompt }))
            .then_call(WAIT_TOOL, |handle| {
                let handle: serde_json::Value =
                    serde_json::from_str(handle).unwrap_or_default();
                json!({ "run_id": handle["runId"], "soft_timeout_ms": WAIT_SLICE.as_millis() as u64 })
            })
            .answer_tool_results(ANSWER_PREFIX),
    )
    .await;

    let printed = plugin
        .print("Start Codex, then wait for it.", &[RUN_TOOL, WAIT_TOOL])
        .await;
    printed.assert_offered(&plugin.user);
    assert_eq!(printed.calls(), [RUN_TOOL, WAIT_TOOL], "{printed}");
    let handle = printed.tool_result(0);
    let run_id = handle["runId"].as_str().unwrap_or_default();
    assert!(!run_id.is_empty(), "codex_run gave no run id\n{printed}");
    let result = printed.tool_result(1);
    assert_eq!(result["runId"], run_id, "{printed}");
    assert_eq!(result["status"], "completed", "{printed}");
    assert_eq!(result["result"], codex_answer, "{printed}");
    printed.assert_answered(codex_answer);

    plugin.assert_codex_ran(&prompt, &result, codex_answer);
    plugin.finish().await;
}

/// A prompt whose marker makes the scripted Codex model answer `answer`.
fn codex_prompt(answer: &str) -> String {
    format!("Answer in one sentence. {}", Script::text(answer).marker())
}

/// One test's Claude Code user with the plugin installed, its Codex world
/// and the scripted Anthropic API it talks to.
struct PluginSession {
    world: SidecarWorld,
    user: ClaudeUser,
    api: ScriptedAnthropic,
}

impl PluginSession {
    async fn start(script: AnthropicScript) -> PluginSession {
        let world = SidecarWorld::new().await;
        let user = ClaudeUser::new();
        // The user's own `~/.codex`, scripted: the same Codex home whether
        // the plugin's server takes CODEX_HOME from us or names `~/.codex`.
        world.model.write_codex_home(&codex_home(&user)).unwrap();
        user.install_plugin().await;
        let api = ScriptedAnthropic::start(script).await;
        PluginSession { world, user, api }
    }

    /// `claude -p PROMPT`, allowed to call the plugin's tools `allowed`, with
    /// the built sidecar on PATH and the world's Codex settings in the
    /// environment the plugin's server inherits.
    async fn print(&self, prompt: &str, allowed: &[&str]) -> Printed {
        let sidecar_dir = Path::new(SIDECAR).parent().unwrap();
        let path = format!(
            "{}:{}",
            sidecar_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = self
            .user
            .print_command(prompt, allowed, &self.api.base_url());
        command
            .env("PATH", path)
            .env("CODEX_BIN", codex_bin())
            .env("CODEX_HOME", codex_home(&self.user))
            .env(ENV_POINTER_DIR, &self.world.pointer_dir)
            // A shared app-server on the world's free port, never 45123.
            .env(ENV_URL, &self.world.url)
            .env_remove(ENV_RUN_DIR);
        let output = tokio::time::timeout(PRINT_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("`claude -p` did not finish within {PRINT_TIMEOUT:?}"))
            .unwrap();
        let (stdout, stderr) = text(&output);
        let printed = Printed {
            stdout,
            stderr,
            requests: self.api.requests(),
        };
        assert!(output.status.success(), "{printed}");
        // Claude Code asked for nothing the scripted API does not serve.
        assert!(
            printed
                .requests
                .iter()
                .all(|request| request.reply != Reply::NotFound),
            "{printed}"
        );
        printed
    }

    /// Codex got `prompt`, marker and all, on its model, and the run that
    /// `result` names left its audit in the project Claude Code ran in.
    fn assert_codex_ran(&self, prompt: &str, result: &serde_json::Value, answer: &str) {
        let codex_requests = self.world.model.requests();
        assert!(
            codex_requests.iter().any(|request| {
                user_message_texts(&request.body)
                    .iter()
                    .any(|text| text.contains(prompt))
            }),
            "the scripted Codex model never got the prompt: {codex_requests:#?}"
        );
        let run_id = result["runId"].as_str().unwrap();
        let audit = self
            .user
            .project
            .path()
            .join(".codex/codex-mcp/runs")
            .join(format!("{run_id}.jsonl"));
        let audit = std::fs::read_to_string(&audit)
            .unwrap_or_else(|error| panic!("no audit at {}: {error}", audit.display()));
        assert!(audit.contains(answer), "{audit}");
    }

    /// Stops the shared app-server the plugin's sidecar started, as a user
    /// would, and checks nothing of it is left.
    async fn finish(self) {
        stop_shared_server(&self.world, SIDECAR, Some(&codex_home(&self.user))).await;
        self.api.shutdown().await;
        self.world.shutdown().await;
    }
}

/// What one `claude -p` printed, and what it asked the API.
struct Printed {
    stdout: String,
    stderr: String,
    requests: Vec<AnthropicRequest>,
}

impl std::fmt::Display for Printed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "stdout:\n{}\nstderr:\n{}\nAPI requests:",
            self.stdout, self.stderr
        )?;
        for request in &self.requests {
            writeln!(f, "{}", request.summary())?;
        }
        Ok(())
    }
}

impl Printed {
    /// Claude Code offered the plugin's tool: the plugin is installed and
    /// its server, found on PATH, connected.
    fn assert_offered(&self, user: &ClaudeUser) {
        assert!(
            self.requests
                .iter()
                .any(|request| request.tool_names().iter().any(|name| name == RUN_TOOL)),
            "Claude Code never offered {RUN_TOOL}\n{self}\n\
             Claude Code's log of the plugin's server:\n{}",
            user.mcp_log(PLUGIN_SERVER_LOG)
        );
    }

    /// The tools the API called, in order.
    fn calls(&self) -> Vec<&str> {
        self.requests
            .iter()
            .filter_map(|request| match &request.reply {
                Reply::ToolUse { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The JSON result of the `index`th tool call, as it came back to the
    /// API.
    fn tool_result(&self, index: usize) -> serde_json::Value {
        let result = self
            .requests
            .iter()
            .filter_map(AnthropicRequest::tool_result)
            .nth(index)
            .unwrap_or_else(|| panic!("no tool_result #{index} came back to the API\n{self}"));
        serde_json::from_str(&result)
            .unwrap_or_else(|error| panic!("tool_result #{index} is not JSON ({error})\n{self}"))
    }

    /// Claude printed the API's final answer, which carries Codex's.
    fn assert_answered(&self, answer: &str) {
        assert!(
            self.stdout.contains(ANSWER_PREFIX) && self.stdout.contains(answer),
            "{self}"
        );
    }
}

fn codex_home(user: &ClaudeUser) -> std::path::PathBuf {
    user.home.path().join(".codex")
}

/// The scripted API itself, on the wire, without Claude Code: what each rule
/// answers, streamed and not, so a failure of the test above is not the
/// scaffolding's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripted_anthropic_api_answers_by_its_rules() {
    let input = json!({ "prompt": "p", "async": false });
    let api = ScriptedAnthropic::start(
        AnthropicScript::new()
            .call_when_offered("tool_x", input.clone())
            .then_call("tool_y", |result| json!({ "from": result }))
            .answer_tool_results("got: "),
    )
    .await;
    let base = api.base_url();
    let offers_x = |stream: bool| {
        json!({
            "model": "m",
            "stream": stream,
            "tools": [{ "name": "tool_x" }],
            "messages": [{ "role": "user", "content": "go" }],
        })
    };

    // The first request that offers the tool gets the call, streamed as the
    // Messages API streams it: the input as one `input_json_delta`.
    let (status, events) = post(&base, "/v1/messages?beta=true", &offers_x(true)).await;
    assert_eq!(status, 200);
    let events = sse_events(&events);
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[1]["content_block"]["type"], "tool_use");
    assert_eq!(events[1]["content_block"]["name"], "tool_x");
    assert_eq!(events[2]["delta"]["type"], "input_json_delta");
    let partial: serde_json::Value =
        serde_json::from_str(events[2]["delta"]["partial_json"].as_str().unwrap()).unwrap();
    assert_eq!(partial, input);
    assert_eq!(events[4]["delta"]["stop_reason"], "tool_use");

    // Only once: the next request offering it gets the fallback text, here
    // as a plain JSON message.
    let (status, body) = post(&base, "/v1/messages", &offers_x(false)).await;
    assert_eq!(status, 200);
    let message: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(message["content"][0]["text"], FALLBACK_TEXT);
    assert_eq!(message["stop_reason"], "end_turn");

    // A tool's result gets the follow-up call first, made from it; the
    // next result comes back as the final text.
    let follow_up = json!({
        "model": "m",
        "tools": [{ "name": "tool_x" }],
        "messages": [
            { "role": "user", "content": "go" },
            { "role": "assistant", "content": [{ "type": "tool_use", "id": "t", "name": "tool_x", "input": {} }] },
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "t",
                "content": [{ "type": "text", "text": "the result" }] }] },
        ],
    });
    let (_, body) = post(&base, "/v1/messages", &follow_up).await;
    let message: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(message["content"][0]["type"], "tool_use");
    assert_eq!(message["content"][0]["name"], "tool_y");
    assert_eq!(
        message["content"][0]["input"],
        json!({ "from": "the result" })
    );
    assert_eq!(message["stop_reason"], "tool_use");
    let (_, body) = post(&base, "/v1/messages", &follow_up).await;
    let message: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(message["content"][0]["text"], "got: the result");

    let (_, body) = post(&base, "/v1/messages/count_tokens", &offers_x(false)).await;
    let count: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(count["input_tokens"].as_u64().unwrap() > 0, "{count}");
    let (status, _) = post(&base, "/v1/other", &json!({})).await;
    assert_eq!(status, 404);

    let replies: Vec<Reply> = api
        .requests()
        .into_iter()
        .map(|request| request.reply)
        .collect();
    assert!(matches!(&replies[0], Reply::ToolUse { name, .. } if name == "tool_x"));
    assert_eq!(replies[1], Reply::Text(FALLBACK_TEXT.to_owned()));
    assert!(matches!(&replies[2], Reply::ToolUse { name, .. } if name == "tool_y"));
    assert_eq!(replies[3], Reply::Text("got: the result".to_owned()));
    assert!(matches!(replies[4], Reply::TokenCount(_)));
    assert_eq!(replies[5], Reply::NotFound);
    assert_eq!(replies.len(), 6);
    api.shutdown().await;
}

/// One HTTP/1.1 POST over a fresh connection: the status and the body.
async fn post(base: &str, path: &str, body: &serde_json::Value) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The `data:` JSON of each event in an SSE body.
fn sse_events(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}
