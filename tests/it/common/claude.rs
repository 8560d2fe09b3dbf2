//! A throwaway Claude Code user for the tests that drive the real Claude
//! Code CLI (the pinned one, or `CLAUDE_BIN`).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// The Claude Code under test: `CLAUDE_BIN` when set (`make test` runs
/// these tests again with the newest verified one, `mcp-clients-newest/`),
/// else the pinned one (`make setup` installs it from `mcp-clients/`).
pub fn claude() -> std::path::PathBuf {
    match std::env::var_os("CLAUDE_BIN") {
        Some(path) => path.into(),
        None => concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/mcp-clients/node_modules/.bin/claude"
        )
        .into(),
    }
}

/// How long Claude Code gives one server to finish the MCP handshake before
/// `mcp list` calls it failed. This is its own default, set explicitly so a
/// developer's `MCP_TIMEOUT` cannot stretch it past [`LIST_TIMEOUT`].
pub const CLAUDE_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// `claude mcp add-json` only writes a config file (a fraction of a second);
/// this only trips when Claude Code is stuck, on the network say.
pub const ADD_TIMEOUT: Duration = Duration::from_secs(30);

/// A fake key in the API's own shape; the scripted API takes any.
pub const FAKE_API_KEY: &str = "sk-ant-api03-scripted-0000000000000000000000";

/// Bounds each tool call inside Claude Code in `-p` mode: the first starts
/// the shared app-server (a few seconds, more on a loaded machine) and
/// Codex runs a one-answer scripted turn. Set, so a stuck call comes back as
/// a tool error instead of hanging Claude Code.
pub const TOOL_CALL_TIMEOUT: Duration = Duration::from_secs(100);

/// A throwaway Claude Code user: its `HOME`, config folder and working
/// directory, so neither the real `~/.claude` nor a `.mcp.json` in the
/// checkout takes part.
pub struct ClaudeUser {
    pub home: tempfile::TempDir,
    pub config: tempfile::TempDir,
    pub project: tempfile::TempDir,
    /// Added to Claude Code's environment, after the hygiene of
    /// [`ClaudeUser::command`]: what a plugin's server, which gets exactly
    /// Claude Code's environment, should see.
    pub env: Vec<(String, String)>,
    /// Taken out of the environment Claude Code inherits from the test.
    pub removed: Vec<String>,
}

/// The checkout, which is the plugin marketplace the README tells users to
/// add.
pub const CHECKOUT: &str = env!("CARGO_MANIFEST_DIR");
pub const MARKETPLACE: &str = "codex-mcp-sidecar";
pub const PLUGIN_ID: &str = "codex-sidecar@codex-mcp-sidecar";
/// The folder of Claude Code's log of the plugin's server `codex`.
pub const PLUGIN_SERVER_LOG: &str = "plugin-codex-sidecar-codex";

/// `claude plugin …` commands read and copy local files (a fraction of a
/// second to a few); this only trips when Claude Code is stuck.
pub const PLUGIN_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

impl ClaudeUser {
    pub fn new() -> ClaudeUser {
        ClaudeUser {
            home: tempfile::tempdir().unwrap(),
            config: tempfile::tempdir().unwrap(),
            project: tempfile::tempdir().unwrap(),
            env: Vec::new(),
            removed: Vec::new(),
        }
    }

    pub async fn claude(&self, args: &[&str], limit: Duration) -> Output {
        let mut command = self.command(args);
        let what = format!("claude {}", args.join(" "));
        tokio::time::timeout(limit, command.output())
            .await
            .unwrap_or_else(|_| panic!("`{what}` did not finish within {limit:?}"))
            .unwrap()
    }

    /// `claude ARGS` as this user, in its project, with no credential, cache
    /// or network of the developer's, plus [`ClaudeUser::env`]; a test adds
    /// what its command needs (an Anthropic API of its own, say).
    /// `claude -p PROMPT` against the scripted API at `api`, allowed to call
    /// `allowed`, with MCP tools listed directly (otherwise they are
    /// deferred behind a search tool, and the first request would not offer
    /// them) and each tool call bounded by [`TOOL_CALL_TIMEOUT`].
    pub fn print_command(
        &self,
        prompt: &str,
        allowed: &[&str],
        api: &str,
    ) -> tokio::process::Command {
        let mut command = self.command(&["-p", prompt, "--allowedTools", &allowed.join(",")]);
        command
            .env("ANTHROPIC_BASE_URL", api)
            .env("ANTHROPIC_API_KEY", FAKE_API_KEY)
            .env("ENABLE_TOOL_SEARCH", "false")
            .env(
                "MCP_TOOL_TIMEOUT",
                TOOL_CALL_TIMEOUT.as_millis().to_string(),
            );
        command
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let claude = claude();
        assert!(
            claude.exists(),
            "{} is missing: run `make setup`",
            claude.display()
        );
        let mut command = tokio::process::Command::new(&claude);
        command
            .args(args)
            .current_dir(self.project.path())
            .env("HOME", self.home.path())
            .env("CLAUDE_CONFIG_DIR", self.config.path())
            // Claude Code's caches and MCP logs follow HOME only when these
            // are unset.
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_STATE_HOME")
            // Without it Claude Code resolves and calls its telemetry and
            // update hosts; tests have no network, and must not phone home.
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env(
                "MCP_TIMEOUT",
                CLAUDE_CONNECT_TIMEOUT.as_millis().to_string(),
            )
            // `mcp add-json` and `mcp list` need no Anthropic login; proving
            // it means no credential may leak in from the environment.
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_AUTH_TOKEN")
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
            .kill_on_drop(true);
        for name in &self.removed {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        command
    }

    /// `claude plugin marketplace add <checkout>`, then `claude plugin
    /// install codex-sidecar@codex-mcp-sidecar`, as the README tells a user.
    pub async fn install_plugin(&self) {
        let added = self
            .claude(
                &["plugin", "marketplace", "add", CHECKOUT],
                PLUGIN_COMMAND_TIMEOUT,
            )
            .await;
        let (stdout, stderr) = text(&added);
        assert!(added.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("Successfully added marketplace: {MARKETPLACE}")),
            "{stdout}\n{stderr}"
        );
        let installed = self
            .claude(&["plugin", "install", PLUGIN_ID], PLUGIN_COMMAND_TIMEOUT)
            .await;
        let (stdout, stderr) = text(&installed);
        assert!(installed.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("Successfully installed plugin: {PLUGIN_ID}")),
            "{stdout}\n{stderr}"
        );
    }

    /// `claude mcp add-json NAME JSON --scope user`.
    pub async fn add(&self, name: &str, config: &serde_json::Value) {
        let config = config.to_string();
        let output = self
            .claude(
                &["mcp", "add-json", name, &config, "--scope", "user"],
                ADD_TIMEOUT,
            )
            .await;
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("Added stdio MCP server {name} to user config")),
            "{stdout}\n{stderr}"
        );
    }

    /// What Claude Code logged about server `name`, for failure messages.
    pub fn mcp_log(&self, name: &str) -> String {
        let mut log = String::new();
        collect_logs(self.home.path(), &format!("mcp-logs-{name}"), &mut log);
        log
    }
}

/// Appends the files of every folder named `wanted` under `dir`. Claude Code
/// logs each server's handshake and stderr as JSON lines in
/// `HOME/.cache/claude-cli-nodejs/<project>/mcp-logs-<name>/`.
pub fn collect_logs(dir: &Path, wanted: &str, into: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if entry.file_name() == wanted {
            for file in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                into.push_str(&std::fs::read_to_string(file.path()).unwrap_or_default());
            }
        } else {
            collect_logs(&path, wanted, into);
        }
    }
}

pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
