//! `codex-runs` on a run that went to another host: the real `codex
//! app-server` with signed bearer tokens behind a TLS terminator with a test
//! CA, named `box` in `endpoints.toml`. The picker lists the run with its
//! endpoint, and Enter attaches the real Codex terminal UI through
//! `wss://`, with a freshly minted token in a variable, never in the
//! command line (issue 17, item 4).

use std::net::SocketAddr;
use std::time::Duration;

use codex_mcp_sidecar::actors::{Engine, RunRequest, RunStatus, WaitOutcome};
use codex_mcp_sidecar::config::endpoints::{ENDPOINTS_FILE, Endpoints};
use codex_mcp_sidecar::picker::attach::TOKEN_ENV;
use codex_mcp_sidecar_test_support::scripted_model::{Script, ScriptedModel};
use codex_mcp_sidecar_test_support::tls_proxy::TlsProxy;
use codex_mcp_sidecar_test_support::world::processes_running_from;
use serde_json::Value;

use crate::common::engine::config;
use crate::common::remote_server::{RemoteServer, RemoteServerOptions, ServerAuth};
use crate::common::tmux::Tmux;
use crate::common::{EVENT_TIMEOUT, codex_bin, codex_binary};

const CODEX_RUNS: &str = env!("CARGO_BIN_EXE_codex-runs");

/// Generous for two terminal programs starting on a loaded machine.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(40);

const TITLE: &str = "Words for the picker on another host";

/// The command line of the Codex terminal UI attached to `url`, as `ps`
/// shows it once it runs (other tests may run other UIs meanwhile).
async fn codex_ui_command_line(url: &str) -> String {
    let deadline = tokio::time::Instant::now() + SCREEN_TIMEOUT;
    loop {
        let output = std::process::Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&output.stdout).into_owned();
        if let Some(line) = listing
            .lines()
            .find(|line| line.contains("resume") && line.contains(&format!("--remote {url} ")))
        {
            return line.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no codex resume --remote running:\n{listing}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_attaches_the_codex_ui_to_a_remote_run_through_wss() {
    // The other host: signed bearer behind TLS with a test CA.
    let server = RemoteServer::start(RemoteServerOptions::loopback(ServerAuth::SignedBearer {
        issuer: None,
        audience: None,
    }))
    .await;
    let upstream: SocketAddr = server.url.trim_start_matches("ws://").parse().unwrap();
    let proxy = TlsProxy::start(upstream).await.unwrap();

    // This machine: the sidecar, its pointer dir naming `box`, and the
    // Codex home the terminal UI starts from.
    let local_model = ScriptedModel::start().await.unwrap();
    let codex_home = tempfile::tempdir().unwrap();
    local_model.write_codex_home(codex_home.path()).unwrap();
    let pointer_dir = tempfile::tempdir().unwrap();
    let sidecar_dir = tempfile::tempdir().unwrap();
    let remote_cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        pointer_dir.path().join(ENDPOINTS_FILE),
        format!(
            "[[endpoint]]\nname = \"box\"\nurl = \"{}\"\nshared_secret_file = \"{}\"\nca_file = \"{}\"\n",
            proxy.url(),
            server.secret_file.display(),
            proxy.ca_file().display()
        ),
    )
    .unwrap();
    let mut config = config(codex_home.path(), pointer_dir.path(), &[]);
    config.endpoints = Endpoints::load(pointer_dir.path(), None);
    assert_eq!(config.endpoints.problem, None);
    config.own_cwd = Some(sidecar_dir.path().to_path_buf());
    let engine = Engine::start(config, codex_binary()).await.unwrap();

    let words: Vec<String> = (0..12).map(|n| format!("r{n:02}xq ")).collect();
    let parts: Vec<&str> = words.iter().map(String::as_str).collect();
    let prompt = format!("{TITLE}\n{}", Script::stream(&parts, 20).marker());
    let mut request = RunRequest::new(prompt, remote_cwd.path());
    request.endpoint = Some("box".into());
    let started = engine.run(request).await.unwrap();
    let run_id = started.run_id.to_string();
    match tokio::time::timeout(EVENT_TIMEOUT, engine.wait(&started.run_id, None))
        .await
        .expect("the run ends in time")
        .unwrap()
    {
        WaitOutcome::Finished(result) => assert_eq!(result.status, RunStatus::Completed),
        other => panic!("expected the end, got {other:?}"),
    }
    // The turn ran on the other host's model.
    assert!(!server.model.requests().is_empty());

    let (home, pointers, codex) = (
        codex_home.path().display().to_string(),
        pointer_dir.path().display().to_string(),
        codex_bin().display().to_string(),
    );
    let env = [
        ("CODEX_BIN", codex.as_str()),
        ("CODEX_HOME", home.as_str()),
        ("CODEX_MCP_WRAPPER_POINTER_DIR", pointers.as_str()),
    ];

    // `codex-runs --json` shows the run with its endpoint.
    let output = std::process::Command::new(CODEX_RUNS)
        .args(["--json", "--all"])
        .envs(env)
        .current_dir(sidecar_dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let listing: Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed = listing["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["runId"] == run_id.as_str())
        .unwrap_or_else(|| panic!("the run is listed: {listing}"));
    assert_eq!(listed["endpoint"], "box", "{listed}");

    // The person's side: the picker, then Enter.
    let picker = Tmux::start(
        &format!("{CODEX_RUNS} --all"),
        sidecar_dir.path(),
        &env,
        120,
        40,
    );
    picker.wait_for_text(&run_id, SCREEN_TIMEOUT).await;
    picker.keys(&["Enter"]);
    // The command line names the variable, never the token.
    let command_line = codex_ui_command_line(&proxy.url()).await;
    assert!(
        command_line.contains(&format!("--remote-auth-token-env {TOKEN_ENV}")),
        "{command_line}"
    );
    assert!(
        !command_line
            .split_whitespace()
            .any(|arg| arg.starts_with("eyJ")),
        "a JWT on the command line: {command_line}"
    );
    // Through TLS and the bearer, the UI shows the run's own words.
    picker.wait_for_text("OpenAI Codex", SCREEN_TIMEOUT).await;
    let side_by_side = format!("{}{}", words[10], words[11].trim());
    picker.wait_for_text(&side_by_side, SCREEN_TIMEOUT).await;
    picker.keys(&["C-c"]);
    picker
        .wait_for("the picker again", SCREEN_TIMEOUT, |screen| {
            screen.contains("codex-runs") && screen.contains(&run_id)
        })
        .await;
    picker.keys(&["q"]);
    picker.wait_for_text("[exited]", SCREEN_TIMEOUT).await;

    engine.shutdown().await;
    let left = processes_running_from(codex_home.path());
    assert!(left.is_empty(), "left running: {left:?}");
    local_model.shutdown().await;
    drop(proxy);
}
