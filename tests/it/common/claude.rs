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

/// A throwaway Claude Code user: its `HOME`, config folder and working
/// directory, so neither the real `~/.claude` nor a `.mcp.json` in the
/// checkout takes part.
pub struct ClaudeUser {
    pub home: tempfile::TempDir,
    pub config: tempfile::TempDir,
    pub project: tempfile::TempDir,
}

impl ClaudeUser {
    pub fn new() -> ClaudeUser {
        ClaudeUser {
            home: tempfile::tempdir().unwrap(),
            config: tempfile::tempdir().unwrap(),
            project: tempfile::tempdir().unwrap(),
        }
    }

    pub async fn claude(&self, args: &[&str], limit: Duration) -> Output {
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
        let what = format!("claude {}", args.join(" "));
        tokio::time::timeout(limit, command.output())
            .await
            .unwrap_or_else(|_| panic!("`{what}` did not finish within {limit:?}"))
            .unwrap()
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
