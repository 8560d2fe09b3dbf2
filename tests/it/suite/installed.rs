//! The sidecar as `cargo install` leaves it: a copy of the built binary in a
//! folder outside the checkout it was built from (issue 13). With no Codex
//! on `PATH` and no `CODEX_BIN` it must say that no Codex was found, and
//! never fall back to, or point the user at, the checkout's pinned install;
//! the same binary inside the checkout still finds that pin.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

use crate::common::EVENT_TIMEOUT;

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");
const CHECKOUT: &str = env!("CARGO_MANIFEST_DIR");

/// `check` runs `codex --version` when it finds one (the npm launcher starts
/// Node: seconds on a loaded machine); it only trips when something hangs.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// What a user's machine without Codex gives the server: a throwaway home
/// and Codex home, a private app-server mode (so no shared server on port
/// 45123 is probed), and a `PATH` of only `node`, so that no `codex`
/// installed on this machine stands in.
struct Machine {
    home: tempfile::TempDir,
    node_only: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".codex")).unwrap();
        let node_only = tempfile::tempdir().unwrap();
        let node = which::which("node").expect("node is installed");
        std::os::unix::fs::symlink(node, node_only.path().join("node")).unwrap();
        Machine { home, node_only }
    }

    fn command(&self, bin: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(bin);
        command
            .env_clear()
            .env("HOME", self.home.path())
            .env("CODEX_HOME", self.home.path().join(".codex"))
            .env(
                "CODEX_MCP_WRAPPER_POINTER_DIR",
                self.home.path().join("pointer"),
            )
            .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "private")
            .env("PATH", self.node_only.path())
            .current_dir(self.home.path())
            .kill_on_drop(true);
        command
    }

    async fn check(&self, bin: &Path) -> Output {
        let mut command = self.command(bin);
        command.arg("check").stdin(Stdio::null());
        tokio::time::timeout(RUN_TIMEOUT, command.output())
            .await
            .expect("`check` finished in time")
            .unwrap()
    }
}

/// A copy of the built binary, as `cargo install` makes one, in a folder
/// outside the checkout.
fn installed_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin/codex-mcp-sidecar");
    std::fs::create_dir(bin.parent().unwrap()).unwrap();
    std::fs::copy(SIDECAR, &bin).unwrap();
    let canonical = bin.canonicalize().unwrap();
    let checkout = Path::new(CHECKOUT).canonicalize().unwrap();
    assert!(
        !canonical.starts_with(&checkout),
        "the temporary folder {} lies inside the checkout",
        canonical.display()
    );
    (root, bin)
}

/// Says where the checkout's pinned install would have been named.
fn mentions_the_checkout(text: &str) -> bool {
    let canonical = Path::new(CHECKOUT).canonicalize().unwrap();
    text.contains(CHECKOUT)
        || text.contains(&canonical.display().to_string())
        || text.contains("codex-cli/node_modules")
        || text.contains("make setup")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_binary_finds_no_codex_outside_its_checkout() {
    let machine = Machine::new();
    let (_root, installed) = installed_copy();

    let output = machine.check(&installed).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("no Codex CLI found (looked in: CODEX_BIN, PATH)")
            && stderr.contains("npm install -g @openai/codex@"),
        "{stderr}"
    );
    assert!(!mentions_the_checkout(&stderr), "{stderr}");
    assert!(!mentions_the_checkout(&stdout), "{stdout}");

    // The MCP server still starts, and its check says the same.
    let (transport, _) = TokioChildProcess::builder(machine.command(&installed))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client: rmcp::service::RunningService<RoleClient, ()> = ().serve(transport).await.unwrap();
    let result = tokio::time::timeout(
        EVENT_TIMEOUT,
        client.call_tool(CallToolRequestParams::new("codex_wrapper_check")),
    )
    .await
    .expect("codex_wrapper_check answers in time")
    .unwrap();
    let check: Value = result.structured_content.clone().unwrap();
    client.cancel().await.unwrap();
    assert_eq!(check["ok"], false, "{check}");
    let problems = check["problems"].to_string();
    assert!(
        problems.contains("no Codex CLI found (looked in: CODEX_BIN, PATH)"),
        "{check}"
    );
    assert!(!mentions_the_checkout(&check.to_string()), "{check}");

    // The very same binary inside the checkout still finds the pinned install.
    let output = machine.check(Path::new(SIDECAR)).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pinned = Path::new(CHECKOUT)
        .canonicalize()
        .unwrap()
        .join("codex-cli/node_modules/.bin/codex");
    assert!(
        stdout.contains(&format!(
            "at {} (found via project install)",
            pinned.display()
        )),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
