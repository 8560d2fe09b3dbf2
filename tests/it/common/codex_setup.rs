//! What several suites do to the Codex a test runs: turn on the request
//! tools Codex ships off, give it an eliciting MCP server, and stop a shared
//! app-server the way a user would.

use std::path::Path;
use std::time::Duration;

use codex_mcp_sidecar_test_support::world::{SidecarWorld, processes_naming};

/// `app-server stop` signals the keeper and waits for the app-server's
/// whole process group to go.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Turns on `request_permissions` and `request_user_input` in default mode
/// (features Codex 0.169 ships off) in `codex_home`'s `config.toml`, and
/// keeps /tmp out of workspace-write, so that a directory made there is
/// "outside" the workspace.
pub fn turn_on_request_tools(codex_home: &Path) {
    let config = codex_home.join("config.toml");
    let toml = std::fs::read_to_string(&config).unwrap().replace(
        "[features]\n",
        "[features]\nrequest_permissions_tool = true\ndefault_mode_request_user_input = true\n",
    );
    assert!(toml.contains("request_permissions_tool"), "{toml}");
    std::fs::write(
        &config,
        format!(
            "{toml}\n[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true\n"
        ),
    )
    .unwrap();
}

/// Gives the Codex of `codex_home` an MCP server, `eliciting`, whose tool
/// `ask` asks through an elicitation (`tests/it/support/eliciting_mcp_server.py`).
pub fn add_eliciting_mcp_server(codex_home: &Path) {
    let config = codex_home.join("config.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    let server = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/support/eliciting_mcp_server.py"
    );
    std::fs::write(
        &config,
        format!("{toml}\n[mcp_servers.eliciting]\ncommand = \"python3\"\nargs = [\"{server}\"]\n"),
    )
    .unwrap();
}

/// Stops the shared app-server of `world` with our `app-server stop`
/// (`sidecar`, its `CODEX_HOME` set to `codex_home` when given), as a user
/// would, and checks that nothing of it is left.
pub async fn stop_shared_server(world: &SidecarWorld, sidecar: &str, codex_home: Option<&Path>) {
    let mut command = world.command(sidecar);
    if let Some(home) = codex_home {
        command.env("CODEX_HOME", home);
    }
    let stop = tokio::time::timeout(STOP_TIMEOUT, command.args(["app-server", "stop"]).output())
        .await
        .expect("app-server stop finishes within STOP_TIMEOUT")
        .unwrap();
    assert!(
        stop.status.success(),
        "app-server stop: {}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let left = processes_naming(&world.url);
    assert!(left.is_empty(), "processes left: {left:?}");
}

/// Someone else's `codex app-server` (`command`: the binary and its
/// arguments, maybe behind a launcher such as `ip netns exec`), on its own
/// Codex home, in a process group of its own that the test kills, its
/// output discarded.
pub fn spawn_foreign_server(
    mut command: tokio::process::Command,
    codex_home: &Path,
) -> tokio::process::Child {
    command
        .env("CODEX_HOME", codex_home)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("the app-server starts")
}

/// Waits until `accepts` (a connect to the server) answers true, or fails
/// the test after `timeout` saying that `what` never listened.
pub async fn wait_until_listening<F, Fut>(what: &str, timeout: Duration, mut accepts: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !accepts().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
