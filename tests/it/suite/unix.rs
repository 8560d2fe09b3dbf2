//! `unix://` app-servers that someone else runs: the sidecar only connects,
//! and rides out a dropped connection by reconnecting.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_mcp_sidecar::actors::{Engine, RunRequest, RunStatus, WaitOutcome};
use codex_mcp_sidecar::appserver::process::live_group_members;
use codex_mcp_sidecar::store::{self, AuditEvent};
use codex_mcp_sidecar_test_support::scripted_model::{RequestOutcome, Script, ScriptedModel};
use tempfile::TempDir;
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::common::codex_setup::{spawn_foreign_server, wait_until_listening};
use crate::common::engine::config;
use crate::common::{EVENT_TIMEOUT, codex_bin};

/// Someone else's app-server on a Unix socket, in a process group the test
/// owns and kills.
struct ForeignServer {
    child: Child,
    socket: PathBuf,
    _home: TempDir,
    model: ScriptedModel,
}

impl ForeignServer {
    async fn start(dir: &Path) -> ForeignServer {
        let model = ScriptedModel::start().await.unwrap();
        let home = tempfile::tempdir().unwrap();
        model.write_codex_home(home.path()).unwrap();
        let socket = dir.join("app-server.sock");
        let mut command = Command::new(codex_bin());
        command
            .arg("app-server")
            .arg("--listen")
            .arg(format!("unix://{}", socket.display()));
        let child = spawn_foreign_server(command, home.path());
        // Ready once the socket accepts a connection.
        wait_until_listening("the unix app-server", EVENT_TIMEOUT, || async {
            UnixStream::connect(&socket).await.is_ok()
        })
        .await;
        ForeignServer {
            child,
            socket,
            _home: home,
            model,
        }
    }

    fn pgid(&self) -> i32 {
        self.child.id().unwrap() as i32
    }

    fn kill(&self) {
        let pgid = nix::unistd::Pid::from_raw(self.pgid());
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    }
}

async fn engine_for(url: &str, home_and_pointer: &TempDir) -> Engine {
    let codex = crate::common::codex_binary();
    let config = config(
        &home_and_pointer.path().join("home"),
        &home_and_pointer.path().join("pointer"),
        &[("CODEX_MCP_WRAPPER_APP_SERVER_URL", url)],
    );
    Engine::start(config, codex).await.unwrap()
}

async fn finish(
    engine: &Engine,
    run_id: &codex_mcp_sidecar::store::RunId,
) -> codex_mcp_sidecar::actors::RunResult {
    match tokio::time::timeout(EVENT_TIMEOUT, engine.wait(run_id, None))
        .await
        .expect("the run ends in time")
        .unwrap()
    {
        WaitOutcome::Finished(result) => result,
        other => panic!("expected the end, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_mode_runs_on_someone_elses_server_and_never_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = ForeignServer::start(dir.path()).await;
    let scratch = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let engine = engine_for(&format!("unix://{}", server.socket.display()), &scratch).await;

    let request = RunRequest::new(Script::text("over the socket").marker(), project.path());
    let started = engine.run(request).await.unwrap();
    let result = finish(&engine, &started.run_id).await;
    assert_eq!(result.status, RunStatus::Completed);
    assert_eq!(result.result.as_deref(), Some("over the socket"));

    engine.shutdown().await;
    // Still serving: the sidecar only connected.
    assert!(!live_group_members(server.pgid()).is_empty());
    assert!(UnixStream::connect(&server.socket).await.is_ok());
    server.kill();
}

/// Forwards a Unix socket to another, and can cut every open connection
/// while it keeps listening: a dropped connection to a live server.
struct CuttingProxy {
    socket: PathBuf,
    open: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CuttingProxy {
    fn start(socket: PathBuf, upstream: PathBuf) -> CuttingProxy {
        let listener = UnixListener::bind(&socket).unwrap();
        let open: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let connections = open.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = UnixStream::connect(&upstream).await else {
                    continue;
                };
                let pipe = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                connections.lock().unwrap().push(pipe);
            }
        });
        CuttingProxy {
            socket,
            open,
            accept,
        }
    }

    /// Closes every connection open now; new ones are still accepted.
    fn cut(&self) -> usize {
        let open: Vec<JoinHandle<()>> = self.open.lock().unwrap().drain(..).collect();
        for pipe in &open {
            pipe.abort();
        }
        open.len()
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_reconnected_and_the_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ForeignServer::start(dir.path()).await;
    let proxy = CuttingProxy::start(dir.path().join("proxy.sock"), server.socket.clone());
    let scratch = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let engine = engine_for(&format!("unix://{}", proxy.socket.display()), &scratch).await;

    let parts: Vec<String> = (0..10).map(|n| format!("r{n} ")).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let request = RunRequest::new(Script::stream(&parts, 200).marker(), project.path());
    let started = engine.run(request).await.unwrap();
    server
        .model
        .wait_for_outcome(RequestOutcome::Streaming, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(proxy.cut(), 1, "one connection was open");

    let result = finish(&engine, &started.run_id).await;
    assert_eq!(result.status, RunStatus::Completed, "{result:?}");
    assert_eq!(result.result.as_deref(), Some(parts.concat().as_str()));
    // The turn finished on the new connection: its turn/completed is audited.
    let run_dir = project.path().join(".codex/codex-mcp/runs");
    let completed = store::read_events(&run_dir, &started.run_id)
        .unwrap()
        .iter()
        .any(|record| matches!(&record.event, AuditEvent::Notification { method, .. } if method == "turn/completed"));
    assert!(completed);
    engine.shutdown().await;
    drop(proxy);
    server.kill();
}

/// `unix://~/…` (issue 12): the socket path is read as a shell reads it,
/// from HOME, and the run goes through the real app-server listening there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_url_under_home_is_expanded_from_home() {
    let home = tempfile::tempdir().unwrap();
    let server = ForeignServer::start(home.path()).await;
    let scratch = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let home_str = home.path().display().to_string();
    let config = config(
        &scratch.path().join("home"),
        &scratch.path().join("pointer"),
        &[
            ("HOME", &home_str),
            (
                "CODEX_MCP_WRAPPER_APP_SERVER_URL",
                "unix://~/app-server.sock",
            ),
        ],
    );
    let codex = crate::common::codex_binary();
    let engine = Engine::start(config, codex).await.unwrap();

    let request = RunRequest::new(Script::text("home socket").marker(), project.path());
    let started = engine.run(request).await.unwrap();
    let result = finish(&engine, &started.run_id).await;
    assert_eq!(result.status, RunStatus::Completed, "{result:?}");
    assert_eq!(result.result.as_deref(), Some("home socket"));
    engine.shutdown().await;
    assert!(!project.path().join("~").exists());
    server.kill();
}
