//! Codex not logged in, the most common first-run failure: the check says
//! so and what to run, and every way of starting a run fails at once with
//! the same advice, instead of a turn that retries against OpenAI.
//!
//! Offline: the Codex home uses the default OpenAI provider with no
//! `auth.json`, no API key is in the environment, and every proxy variable
//! points at a closed loopback port, so that even a turn started by mistake
//! could not reach the network.

use std::path::Path;
use std::time::{Duration, Instant};

use codex_mcp_sidecar::appserver::account::{self, LoginGate};
use codex_mcp_sidecar::appserver::{
    AppServerConnection, AppServerProcess, ConnectOptions, SpawnOptions,
};
use codex_mcp_sidecar_test_support::scripted_model::Script;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::common::tools::{call, structured, text};
use crate::common::{EVENT_TIMEOUT, codex_bin};
use codex_mcp_sidecar_test_support::world::{SidecarWorld, free_port};

const SIDECAR: &str = env!("CARGO_BIN_EXE_codex-mcp-sidecar");

/// The default (OpenAI) provider: no `model_provider`, no `auth.json`.
const OPENAI_CONFIG: &str = "approval_policy = \"never\"\nsandbox_mode = \"read-only\"\n";

/// How long a refused run may take to answer. The refusal costs one
/// `account/read` on a link that exists, or an app-server start (about a
/// second, several on a loaded 2-core machine) for the first; without the
/// check the call hangs until the run's hard timeout. Far below that, far
/// above a refusal.
const REFUSAL_BOUND: Duration = Duration::from_secs(20);

/// `codex login --with-api-key` writes a file; Node and the native binary
/// start in a second, more under load.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the app-server may take to notice an `auth.json` written while
/// it runs: 0.6 s measured here (it watches its home); this only trips when
/// it never does.
const AUTH_RELOAD_BOUND: Duration = Duration::from_secs(30);

/// Between two asks of something that changes within a second (the login
/// seen, a task ended): a fraction of that.
const POLL: Duration = Duration::from_millis(100);

type Client = RunningService<RoleClient, ()>;

/// No credentials from the environment, and nowhere to go but a closed
/// loopback port (loopback itself, the scripted model, stays direct).
fn offline(command: &mut tokio::process::Command, closed_port: u16) {
    let proxy = format!("http://127.0.0.1:{closed_port}");
    command
        .env_remove("OPENAI_API_KEY")
        .env_remove("CODEX_API_KEY")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for name in [
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
    ] {
        command.env(name, &proxy);
    }
}

/// The built sidecar over stdio, private mode, in the world's project.
async fn sidecar(world: &SidecarWorld, closed_port: u16) -> Client {
    sidecar_with((), world, closed_port).await
}

/// The same, its client answering with `handler` (where a client declares
/// its capabilities).
async fn sidecar_with<H: rmcp::ClientHandler>(
    handler: H,
    world: &SidecarWorld,
    closed_port: u16,
) -> RunningService<RoleClient, H> {
    let mut command = world.command(SIDECAR);
    offline(&mut command, closed_port);
    command
        .env("CODEX_MCP_WRAPPER_APP_SERVER_MODE", "private")
        // The legacy `codex` tool is refused like the others: ask for it.
        .env("CODEX_MCP_WRAPPER_TOOLS", "sidecar,persistent,legacy")
        .current_dir(world.project.path());
    handler
        .serve(TokioChildProcess::new(command).unwrap())
        .await
        .unwrap()
}

/// `codex login --with-api-key` with a fake key: it only writes `auth.json`
/// (the key is checked when a request is sent, which none is).
async fn log_in_with_fake_key(codex_home: &Path) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(codex_bin())
        .args(["login", "--with-api-key"])
        .env("CODEX_HOME", codex_home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"sk-fake-offline-key\n").await.unwrap();
    drop(stdin);
    let status = tokio::time::timeout(LOGIN_TIMEOUT, child.wait())
        .await
        .expect("codex login finishes in time")
        .unwrap();
    assert!(status.success(), "codex login --with-api-key: {status}");
    assert!(codex_home.join("auth.json").exists());
}

fn index_lines(world: &SidecarWorld) -> usize {
    std::fs::read_to_string(world.run_dir().join("index.jsonl"))
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_codex_fails_the_check_and_every_run_at_once_with_the_advice() {
    let world = SidecarWorld::new().await;
    let closed_port = free_port();

    // The scripted model's `mock` provider needs no login: no complaint, and
    // a run to resume later.
    let mock = sidecar(&world, closed_port).await;
    let check = structured(&call(&mock, "codex_wrapper_check", json!({})).await);
    assert_eq!(check["login"]["status"], "notRequired", "{check}");
    assert_eq!(check["ok"], true, "{check}");
    let first = structured(
        &call(
            &mock,
            "codex_run",
            json!({"prompt": Script::text("first").marker(), "async": false}),
        )
        .await,
    );
    assert_eq!(first["status"], "completed", "{first}");
    let run_id = first["runId"].as_str().unwrap().to_string();
    mock.cancel().await.unwrap();

    // Now the default OpenAI provider, and no auth.json.
    std::fs::write(world.codex_home.path().join("config.toml"), OPENAI_CONFIG).unwrap();
    let client = sidecar(&world, closed_port).await;
    let check = structured(&call(&client, "codex_wrapper_check", json!({})).await);
    assert_eq!(check["ok"], false, "{check}");
    assert_eq!(check["login"]["status"], "loggedOut", "{check}");
    let problems: Vec<String> = serde_json::from_value(check["problems"].clone()).unwrap();
    let advice = problems
        .iter()
        .find(|problem| problem.contains("not logged in"))
        .unwrap_or_else(|| panic!("no login problem in {problems:?}"))
        .clone();
    let home = world.codex_home.path().display().to_string();
    assert!(
        advice.contains(&format!("CODEX_HOME={home} ")) && advice.contains(" login`"),
        "{advice}"
    );
    assert!(advice.contains(" login --with-api-key`"), "{advice}");

    let records_before = index_lines(&world);
    assert_eq!(records_before, 2, "the first run's start and end");
    for (tool, arguments) in [
        ("codex_run", json!({"prompt": "hello"})),
        ("codex_run", json!({"prompt": "hello", "async": false})),
        ("codex_resume", json!({"run_id": run_id, "prompt": "again"})),
        ("codex_chat", json!({"prompt": "hello"})),
        (
            "codex_plan",
            json!({"requirements": "R", "plan": "P", "constraints": "C"}),
        ),
        (
            "codex_review",
            json!({"change_summary": "S", "test_results": "T"}),
        ),
        ("codex", json!({"prompt": "hello"})),
    ] {
        let started = Instant::now();
        let reply = call(&client, tool, arguments).await;
        let took = started.elapsed();
        eprintln!("{tool} refused in {took:?}");
        assert_eq!(reply.is_error, Some(true), "{tool}: {}", text(&reply));
        assert!(text(&reply).contains(&advice), "{tool}: {}", text(&reply));
        assert!(took < REFUSAL_BOUND, "{tool} took {took:?}");
    }
    // Refused before a run existed: no run id, nothing audited, nothing left
    // running.
    assert_eq!(index_lines(&world), records_before);
    let active = structured(&call(&client, "codex_active_runs", json!({})).await);
    assert_eq!(active["runs"], json!([]), "{active}");

    // Logged in (a fake key, never sent): the check passes.
    log_in_with_fake_key(world.codex_home.path()).await;
    let check = structured(&call(&client, "codex_wrapper_check", json!({})).await);
    assert_eq!(check["login"]["status"], "loggedIn", "{check}");
    assert_eq!(check["login"]["account"], "apiKey", "{check}");
    assert_eq!(check["ok"], true, "{check}");

    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// The gate on one connection to the real app-server: refuses while logged
/// out, reads again so that a login in between counts, then keeps the pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_gate_sees_a_login_made_while_the_server_runs() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), OPENAI_CONFIG).unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let mut options = SpawnOptions::loopback(codex_bin(), secrets.path().join("token"));
    options.codex_home = Some(home.path().to_path_buf());
    let server = AppServerProcess::spawn(options).await.unwrap();
    let (connection, _events) = AppServerConnection::connect(ConnectOptions::new(
        server.url(),
        Some(server.token().clone()),
    ))
    .await
    .unwrap();
    let codex = crate::common::codex_binary();

    let mut gate = LoginGate::default();
    for _ in 0..2 {
        let refused = gate
            .admit(&connection, home.path(), &codex)
            .await
            .expect_err("logged out");
        assert!(refused.to_string().contains("--with-api-key"), "{refused}");
    }
    log_in_with_fake_key(home.path()).await;
    // The server notices the new auth.json on its own, within a second here.
    let logged_in_at = Instant::now();
    while gate.admit(&connection, home.path(), &codex).await.is_err() {
        assert!(
            logged_in_at.elapsed() < AUTH_RELOAD_BOUND,
            "the login was never seen"
        );
        tokio::time::sleep(POLL).await;
    }
    eprintln!("the login was seen after {:?}", logged_in_at.elapsed());
    assert_eq!(
        account::read(&connection).await.unwrap(),
        account::Login::LoggedIn("apiKey".into())
    );

    connection.close().await;
    let pgid = server.pgid();
    server.shutdown().await.unwrap();
    crate::common::assert_no_process_left(pgid);
}

/// The command line, in the default shared mode (on the world's own port):
/// `check` and `run` give the same advice and fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_check_and_run_refuse_a_logged_out_codex_with_the_advice() {
    let world = SidecarWorld::new().await;
    let closed_port = free_port();
    let cli = |args: &[&str]| {
        let mut command = world.command(SIDECAR);
        offline(&mut command, closed_port);
        command
            .args(args)
            .env_remove("CODEX_MCP_WRAPPER_APP_SERVER_MODE")
            .current_dir(world.project.path())
            .kill_on_drop(true);
        async move {
            let started = Instant::now();
            let output = tokio::time::timeout(EVENT_TIMEOUT, command.output())
                .await
                .expect("the command finishes in time")
                .unwrap();
            (output, started.elapsed())
        }
    };

    let (output, _) = cli(&["check"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("Codex login: no login needed"), "{stdout}");

    std::fs::write(world.codex_home.path().join("config.toml"), OPENAI_CONFIG).unwrap();
    let (output, _) = cli(&["check"]).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("Codex login: not logged in"), "{stdout}");
    let advice = stderr
        .lines()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"))
        .to_string();
    assert!(advice.contains(" login --with-api-key`"), "{advice}");

    // `--no-wait`: refused or not, the command returns at once (the world's
    // guard stops the shared server), so a regression fails here instead of
    // hanging.
    let (output, took) = cli(&["run", "--no-wait", "hello"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("`run` refused in {took:?}");
    assert!(!output.status.success());
    assert!(stderr.contains(&advice), "{stderr}");
    assert!(took < REFUSAL_BOUND, "`run` took {took:?}");
    assert_eq!(index_lines(&world), 0);
    world.shutdown().await;
}

/// Claude Code declares the MCP tasks extension, which turns the run and
/// conversation tools into tasks: a refused run is still an error with the
/// advice, never a task left working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_client_gets_the_advice_too() {
    let world = SidecarWorld::new().await;
    std::fs::write(world.codex_home.path().join("config.toml"), OPENAI_CONFIG).unwrap();
    let info = rmcp::model::ClientConfig::new(
        rmcp::model::ClientCapabilities::builder()
            .enable_tasks()
            .build(),
        rmcp::model::Implementation::new("tasks-test", "1"),
    );
    let client = sidecar_with(info, &world, free_port()).await;
    for (tool, arguments) in [
        ("codex_run", json!({"prompt": "hello"})),
        ("codex", json!({"prompt": "hello"})),
        ("codex_chat", json!({"prompt": "hello"})),
    ] {
        let params = CallToolRequestParams::new(tool.to_string())
            .with_arguments(arguments.as_object().cloned().unwrap());
        let response = tokio::time::timeout(REFUSAL_BOUND, client.call_tool_once(params))
            .await
            .unwrap_or_else(|_| panic!("{tool} answers in time"))
            .unwrap();
        let result = match response {
            rmcp::model::CallToolResponse::Complete(result) => result,
            // A conversation becomes a task before its run starts (it may
            // queue behind its session): the task ends with the refusal.
            rmcp::model::CallToolResponse::Task(created) => {
                task_result(&client, &created.task.task_id).await
            }
            other => panic!("{tool}: {other:?}"),
        };
        assert_eq!(result.is_error, Some(true), "{tool}: {}", text(&result));
        assert!(
            text(&result).contains("not logged in") && text(&result).contains("--with-api-key"),
            "{tool}: {}",
            text(&result)
        );
    }
    assert_eq!(index_lines(&world), 0);
    client.cancel().await.unwrap();
    world.shutdown().await;
}

/// The result a task ended with, polled until it ends (within
/// [`REFUSAL_BOUND`]).
async fn task_result<H: rmcp::ClientHandler>(
    client: &RunningService<RoleClient, H>,
    task_id: &str,
) -> CallToolResult {
    let started = Instant::now();
    loop {
        let info = client
            .peer()
            .get_task(rmcp::model::GetTaskParams::new(task_id.to_string()))
            .await
            .unwrap();
        match info.task.payload {
            rmcp::model::TaskPayload::Completed { result } => {
                return serde_json::from_value(Value::Object(result)).unwrap();
            }
            rmcp::model::TaskPayload::Working => {}
            other => panic!("the task ended {other:?}"),
        }
        assert!(started.elapsed() < REFUSAL_BOUND, "the task never ended");
        tokio::time::sleep(POLL).await;
    }
}
