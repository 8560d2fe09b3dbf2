//! The sidecar as Claude Code sees it: registered the way a user does
//! (`claude mcp add-json codex '{...}' --scope user`), then health-checked by
//! the pinned Claude Code's `claude mcp list`, which starts every server and
//! reports whether the MCP handshake worked.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use codex_mcp_sidecar::config::{ENV_MODE, ENV_POINTER_DIR};
use codex_mcp_sidecar::scripted_model::ScriptedModel;
use serde_json::json;

use crate::common::{codex_bin, path_string};

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// The Claude Code under test: `CLAUDE_BIN` when set (`make test` runs
/// these tests again with the newest verified one, `mcp-clients-newest/`),
/// else the pinned one (`make setup` installs it from `mcp-clients/`).
fn claude() -> std::path::PathBuf {
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
const CLAUDE_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// `claude mcp add-json` only writes a config file (a fraction of a second);
/// this only trips when Claude Code is stuck, on the network say.
const ADD_TIMEOUT: Duration = Duration::from_secs(30);

/// `claude mcp list` checks the servers in parallel, each bounded by
/// [`CLAUDE_CONNECT_TIMEOUT`]; the margin covers its own start-up, so only a
/// hung Claude Code trips this.
const LIST_TIMEOUT: Duration = Duration::from_secs(90);

/// A throwaway Claude Code user: its `HOME`, config folder and working
/// directory, so neither the real `~/.claude` nor a `.mcp.json` in the
/// checkout takes part.
struct ClaudeUser {
    home: tempfile::TempDir,
    config: tempfile::TempDir,
    project: tempfile::TempDir,
}

impl ClaudeUser {
    fn new() -> ClaudeUser {
        ClaudeUser {
            home: tempfile::tempdir().unwrap(),
            config: tempfile::tempdir().unwrap(),
            project: tempfile::tempdir().unwrap(),
        }
    }

    async fn claude(&self, args: &[&str], limit: Duration) -> Output {
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
    async fn add(&self, name: &str, config: &serde_json::Value) {
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
    fn mcp_log(&self, name: &str) -> String {
        let mut log = String::new();
        collect_logs(self.home.path(), &format!("mcp-logs-{name}"), &mut log);
        log
    }
}

/// Appends the files of every folder named `wanted` under `dir`. Claude Code
/// logs each server's handshake and stderr as JSON lines in
/// `HOME/.cache/claude-cli-nodejs/<project>/mcp-logs-<name>/`.
fn collect_logs(dir: &Path, wanted: &str, into: &mut String) {
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

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The line `claude mcp list` prints for server `name`.
fn line_of<'a>(list: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    list.lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{name}` entry in:\n{list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_lists_the_sidecar_as_connected() {
    let model = ScriptedModel::start().await.unwrap();
    let codex_home = tempfile::tempdir().unwrap();
    model.write_codex_home(codex_home.path()).unwrap();
    let pointers = tempfile::tempdir().unwrap();
    let user = ClaudeUser::new();

    // The registration, with absolute paths for the binary under
    // test and the throwaway Codex world.
    user.add(
        "codex",
        &json!({
            "type": "stdio",
            "command": SIDECAR,
            "env": {
                "CODEX_HOME": path_string(codex_home.path()),
                "CODEX_BIN": path_string(&codex_bin()),
                ENV_MODE: "private",
                ENV_POINTER_DIR: path_string(pointers.path()),
            },
        }),
    )
    .await;
    // A server that cannot start, so the check below is shown able to fail.
    let missing = user.home.path().join("no-such-server");
    user.add(
        "broken",
        &json!({ "type": "stdio", "command": path_string(&missing) }),
    )
    .await;

    let output = user.claude(&["mcp", "list"], LIST_TIMEOUT).await;
    let (list, stderr) = text(&output);
    assert!(output.status.success(), "{list}\n{stderr}");
    // `NAME: COMMAND ARGS - STATUS`; neither server has args, hence the two
    // spaces. The dead server first: the check tells the two apart.
    let missing = missing.display();
    assert_eq!(
        line_of(&list, "broken"),
        format!(
            "broken: {missing}  - ✘ Failed to connect — ENOENT: no such file or directory, \
             posix_spawn '{missing}'"
        ),
        "{list}\n{stderr}"
    );
    assert_eq!(
        line_of(&list, "codex"),
        format!("codex: {SIDECAR}  - ✔ Connected"),
        "{list}\n{stderr}\nClaude Code's log of the server:\n{}",
        user.mcp_log("codex")
    );

    model.shutdown().await;
}
