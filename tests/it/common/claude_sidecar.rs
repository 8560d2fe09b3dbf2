//! The sidecar inside a real Claude Code, for tests that drive both: a
//! throwaway Claude Code user, a Codex world (scripted model, `CODEX_HOME`,
//! a shared app-server on a free port), the scripted Anthropic API, and the
//! log of every MCP message between Claude Code and the sidecar. Interactive
//! (with `claude_tty`) or `claude -p` (with [`ClaudeSidecar::print`]).

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use codex_mcp_sidecar::config::{ENV_POINTER_DIR, ENV_RUN_DIR, ENV_URL};
use codex_mcp_sidecar_test_support::scripted_anthropic::{
    AnthropicRequest, AnthropicScript, ScriptedAnthropic,
};
use codex_mcp_sidecar_test_support::world::SidecarWorld;
use serde_json::{Value, json};

use super::claude::ClaudeUser;
use super::claude_tty::{InteractiveClaude, wait_until};
use super::codex_bin;
use super::codex_setup::stop_shared_server;
use super::mcp_traffic::{Direction, TrafficLog};

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// The server's name in Claude Code, hence its tools' `mcp__codex__…`.
pub const SERVER: &str = "codex";

/// Claude Code's start-up and the sidecar's MCP handshake (Claude Code's own
/// connect timeout is 30 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Between a prompt sent before Claude Code had the sidecar's tools and the
/// next: it takes them in within a second of `tools/list`.
const ASK_AGAIN_PAUSE: Duration = Duration::from_secs(1);

/// A whole `claude -p`: start-up, the handshake and a few tool calls.
const PRINT_TIMEOUT: Duration = Duration::from_secs(300);

/// How much of the sidecar's debug log, and of Claude Code's log of it, a
/// failure message shows.
const LOG_TAIL_LINES: usize = 60;

/// One test's Claude Code user, Codex world, scripted Anthropic API and the
/// log of the MCP traffic between Claude Code and the sidecar.
pub struct ClaudeSidecar {
    pub world: SidecarWorld,
    pub user: ClaudeUser,
    pub api: ScriptedAnthropic,
    _logs: tempfile::TempDir,
    pub traffic: TrafficLog,
}

impl ClaudeSidecar {
    /// Everything started, and the user's config written with the sidecar
    /// as its one MCP server.
    pub async fn start(script: AnthropicScript) -> ClaudeSidecar {
        let world = SidecarWorld::new().await;
        let mut user = ClaudeUser::new();
        // The sidecar inherits Claude Code's environment: a run directory
        // of the developer's must not choose where runs are kept.
        user.removed.push(ENV_RUN_DIR.to_owned());
        let api = ScriptedAnthropic::start(script).await;
        let logs = tempfile::tempdir().unwrap();
        let traffic = TrafficLog::new(logs.path());
        let session = ClaudeSidecar {
            world,
            user,
            api,
            _logs: logs,
            traffic,
        };
        super::claude_tty::preseed(&session.user, session.servers());
        session
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

    /// An interactive Claude Code on this session, allowed to call `allowed`
    /// without asking, once it has the sidecar's tools.
    pub async fn interactive(&self, allowed: &[&str]) -> InteractiveClaude {
        let claude = InteractiveClaude::start(
            &self.user,
            &self.api,
            &["--allowedTools", &allowed.join(",")],
        );
        self.wait_connected().await;
        claude
    }

    /// `claude -p PROMPT`, allowed to call `allowed`; fails unless it ends
    /// well within [`PRINT_TIMEOUT`].
    pub async fn print(&self, prompt: &str, allowed: &[&str]) -> Output {
        let mut command = self
            .user
            .print_command(prompt, allowed, &self.api.base_url());
        tokio::time::timeout(PRINT_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "`claude -p` did not finish within {PRINT_TIMEOUT:?}\n{}",
                    self.context()
                )
            })
            .unwrap()
    }

    /// Waits until Claude Code has listed the sidecar's tools.
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
            "Claude Code never listed the sidecar's tools\n{}",
            self.context()
        );
    }

    /// Sends `prompt` until the model's request offers `tool`: Claude Code
    /// may send the first prompt before it has taken in the sidecar's tools
    /// (it then offers a `WaitForMcpServers` tool instead), and the scripted
    /// API answers that request with text.
    pub async fn ask(&self, claude: &InteractiveClaude, prompt: &str, tool: &str) {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
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
                .any(|request| request.tool_names().iter().any(|name| name == tool));
            if offered {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Claude Code never offered {tool}\n{}\n{}",
                claude.screen(),
                self.context()
            );
            tokio::time::sleep(ASK_AGAIN_PAUSE).await;
        }
    }

    /// What a failure message needs: the model requests (with the tools each
    /// offered), the MCP traffic, the sidecar's log and Claude Code's log of
    /// it.
    pub fn context(&self) -> String {
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
            "API requests:\n{requests}MCP traffic:\n{}sidecar log (tail):\n{}\n\
             Claude Code's log of the server:\n{}",
            self.traffic.summary(),
            tail(&self.traffic.server_log(), LOG_TAIL_LINES),
            tail(&self.user.mcp_log(SERVER), LOG_TAIL_LINES)
        )
    }

    /// Stops the shared app-server the sidecar started and checks nothing of
    /// it is left.
    pub async fn finish(self) {
        stop_shared_server(&self.world, SIDECAR, None).await;
        self.api.shutdown().await;
        self.world.shutdown().await;
    }
}

/// The text of a request's last message: plain text, text blocks, and the
/// text of tool results.
pub fn last_message_text(request: &AnthropicRequest) -> String {
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

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
