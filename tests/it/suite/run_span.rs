//! Each run logs inside a tracing span carrying its run id, so the logs of
//! many runs at once can be told apart. Checked on the built binary with the
//! real Codex, reading the sidecar's stderr.

use codex_mcp_sidecar_test_support::world::SidecarWorld;
use serde_json::json;

use crate::common::raw_mcp::RawMcp;

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_logs_carry_its_run_id() {
    let world = SidecarWorld::new().await;
    let logs = tempfile::tempdir().unwrap();
    let stderr_path = logs.path().join("sidecar.stderr.log");
    let mut command = world.command(SIDECAR);
    command
        .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "private")
        .env("CODEX_MCP_WRAPPER_WAIT_SOFT_TIMEOUT_MS", "0")
        .env("RUST_LOG", "codex_mcp_sidecar=debug")
        .current_dir(world.project.path())
        .kill_on_drop(true)
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let mut mcp = RawMcp::spawn(command).await;
    let done = mcp
        .call_ok("codex_run", json!({"prompt": "hello", "async": false}))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let run_id = done["runId"].as_str().unwrap().to_string();
    mcp.finish().await;

    let log = without_colours(&std::fs::read_to_string(&stderr_path).unwrap());
    let span = format!("run{{run_id={run_id}}}");
    for event in ["turn started", "run ending"] {
        assert!(
            log.lines()
                .any(|line| line.contains(&span) && line.contains(event)),
            "`{event}` is logged inside {span}:\n{log}"
        );
    }
    world.shutdown().await;
}

/// The log as text: the formatter may colour it, escape codes and all.
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // `ESC [ ... m`: skip up to and including the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
