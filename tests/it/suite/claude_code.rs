//! The sidecar as Claude Code sees it: registered the way a user does
//! (`claude mcp add-json codex '{...}' --scope user`), then health-checked by
//! the pinned Claude Code's `claude mcp list`, which starts every server and
//! reports whether the MCP handshake worked.

use std::time::Duration;

use codex_mcp_sidecar::config::{ENV_MODE, ENV_POINTER_DIR};
use codex_mcp_sidecar_test_support::scripted_model::ScriptedModel;
use serde_json::json;

use crate::common::claude::{ClaudeUser, text};
use crate::common::{codex_bin, path_string};

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// `claude mcp list` checks the servers in parallel, each bounded by
/// [`CLAUDE_CONNECT_TIMEOUT`]; the margin covers its own start-up, so only a
/// hung Claude Code trips this.
const LIST_TIMEOUT: Duration = Duration::from_secs(90);

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
