//! A throwaway Claude Code user for the plugin tests, whose environment the
//! test chooses, and what reads Claude Code's output.
//!
//! Not the `ClaudeUser` of `claude_code.rs`: these tests choose the `PATH`
//! and `HOME` that Claude Code, and through it the plugin's server, gets.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use super::{CHECKOUT, MARKETPLACE, PLUGIN_COMMAND_TIMEOUT, PLUGIN_ID};

/// How long Claude Code gives the server to finish the MCP handshake before
/// `mcp list` calls it failed: its own default, set so that a developer's
/// `MCP_TIMEOUT` cannot stretch it past [`super::LIST_TIMEOUT`].
pub const CLAUDE_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The Claude Code under test: `CLAUDE_BIN` when set (`make test` runs these
/// tests again with the newest verified one), else the pinned one.
fn claude_bin() -> PathBuf {
    match std::env::var_os("CLAUDE_BIN") {
        Some(path) => path.into(),
        None => Path::new(CHECKOUT).join("mcp-clients/node_modules/.bin/claude"),
    }
}

/// A throwaway Claude Code user whose environment the test chooses: the
/// plugin's `.mcp.json` sets none, so its server gets exactly Claude Code's.
pub struct PluginUser {
    pub home: tempfile::TempDir,
    config: tempfile::TempDir,
    project: tempfile::TempDir,
    /// Added to Claude Code's environment, after the hygiene below.
    pub env: Vec<(String, String)>,
    /// Taken out of the environment Claude Code inherits from the test.
    pub removed: Vec<String>,
}

impl PluginUser {
    pub fn new() -> PluginUser {
        PluginUser {
            home: tempfile::tempdir().unwrap(),
            config: tempfile::tempdir().unwrap(),
            project: tempfile::tempdir().unwrap(),
            env: Vec::new(),
            removed: Vec::new(),
        }
    }

    pub async fn claude(&self, args: &[&str], limit: Duration) -> Output {
        let claude = claude_bin();
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
            // Claude Code's caches and logs follow HOME only when these are
            // unset.
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_STATE_HOME")
            // No telemetry or update checks: tests have no network.
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env(
                "MCP_TIMEOUT",
                CLAUDE_CONNECT_TIMEOUT.as_millis().to_string(),
            )
            // None of these commands needs an Anthropic login.
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_AUTH_TOKEN")
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
            .kill_on_drop(true);
        for name in &self.removed {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        let what = format!("claude {}", args.join(" "));
        tokio::time::timeout(limit, command.output())
            .await
            .unwrap_or_else(|_| panic!("`{what}` did not finish within {limit:?}"))
            .unwrap()
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

    /// What Claude Code logged about the plugin's server, for failure
    /// messages: each server's handshake and stderr, as JSON lines under
    /// `HOME/.cache/claude-cli-nodejs/<project>/mcp-logs-<server>/`.
    pub fn server_log(&self) -> String {
        let mut log = String::new();
        collect_logs(self.home.path(), "plugin-codex-sidecar-codex", &mut log);
        log
    }
}

/// Appends the files of every folder named `mcp-logs-<wanted>` under `dir`.
fn collect_logs(dir: &Path, wanted: &str, into: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if entry.file_name().to_string_lossy() == format!("mcp-logs-{wanted}") {
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

/// The line `claude mcp list` prints for server `name`.
pub fn line_of<'a>(list: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    list.lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{name}` entry in:\n{list}"))
}
