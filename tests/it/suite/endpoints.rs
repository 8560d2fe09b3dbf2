//! Named endpoints (`endpoints.toml`): a run that names one goes to that
//! app-server and not the default, its records carry the name, its audit is
//! written in the sidecar's own run dir, and its resume goes back there.
//! The "remote" server is a real `codex app-server` on loopback with a
//! scripted model of its own; the default is a private server with another.

use std::path::Path;

use codex_mcp_sidecar::actors::{
    Engine, EngineError, ResumeRequest, ResumeTarget, RunRequest, RunResult, RunStatus, WaitOutcome,
};
use codex_mcp_sidecar::config::endpoints::{ENDPOINTS_FILE, Endpoints};
use codex_mcp_sidecar::store::{self, IndexEvent};
use codex_mcp_sidecar_test_support::scripted_model::{Script, ScriptedModel, user_message_texts};
use codex_mcp_sidecar_test_support::world::free_port;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::common::codex_setup::{spawn_foreign_server, wait_until_listening};
use crate::common::engine::{EngineRig, config};
use crate::common::{EVENT_TIMEOUT, codex_bin};

const CODEX_RUNS: &str = env!("CARGO_BIN_EXE_codex-runs");

/// An app-server someone else runs, on a loopback WebSocket, in a process
/// group the test kills.
struct OtherHost {
    child: Child,
    url: String,
    model: ScriptedModel,
    _home: TempDir,
}

impl OtherHost {
    async fn start() -> OtherHost {
        let model = ScriptedModel::start().await.unwrap();
        let home = tempfile::tempdir().unwrap();
        model.write_codex_home(home.path()).unwrap();
        let port = free_port();
        let url = format!("ws://127.0.0.1:{port}");
        let mut command = Command::new(codex_bin());
        command.args(["app-server", "--listen", &url]);
        let child = spawn_foreign_server(command, home.path());
        wait_until_listening("the other host's app-server", EVENT_TIMEOUT, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        OtherHost {
            child,
            url,
            model,
            _home: home,
        }
    }

    fn kill(&self) {
        if let Some(pid) = self.child.id() {
            let pgid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The default endpoint (a private server and its model) and an engine that
/// also knows `box`, the other host; `sidecar_dir` is the sidecar's own
/// working directory.
struct World {
    default_model: ScriptedModel,
    other: OtherHost,
    _codex_home: TempDir,
    pointer_dir: TempDir,
    sidecar_dir: TempDir,
    engine: Engine,
}

impl World {
    async fn start() -> World {
        let other = OtherHost::start().await;
        let default_model = ScriptedModel::start().await.unwrap();
        let codex_home = tempfile::tempdir().unwrap();
        default_model.write_codex_home(codex_home.path()).unwrap();
        let pointer_dir = tempfile::tempdir().unwrap();
        let sidecar_dir = tempfile::tempdir().unwrap();
        std::fs::write(
            pointer_dir.path().join(ENDPOINTS_FILE),
            format!("[[endpoint]]\nname = \"box\"\nurl = \"{}\"\n", other.url),
        )
        .unwrap();
        let mut config = config(codex_home.path(), pointer_dir.path(), &[]);
        config.endpoints = Endpoints::load(pointer_dir.path(), None);
        assert_eq!(config.endpoints.problem, None);
        config.own_cwd = Some(sidecar_dir.path().to_path_buf());
        let engine = Engine::start(config, crate::common::codex_binary())
            .await
            .unwrap();
        World {
            default_model,
            other,
            _codex_home: codex_home,
            pointer_dir,
            sidecar_dir,
            engine,
        }
    }

    fn sidecar_run_dir(&self) -> std::path::PathBuf {
        self.sidecar_dir.path().join(".codex/codex-mcp/runs")
    }

    async fn finish(&self, run_id: &store::RunId) -> RunResult {
        match tokio::time::timeout(EVENT_TIMEOUT, self.engine.wait(run_id, None))
            .await
            .expect("the run ends in time")
            .unwrap()
        {
            WaitOutcome::Finished(result) => result,
            other => panic!("expected the end, got {other:?}"),
        }
    }

    async fn stop(self) {
        self.engine.shutdown().await;
        self.other.kill();
        self.default_model.shutdown().await;
    }
}

fn on_box(prompt: String, cwd: &Path) -> RunRequest {
    let mut request = RunRequest::new(prompt, cwd);
    request.endpoint = Some("box".to_string());
    request
}

fn asked(model: &ScriptedModel, marker: &str) -> bool {
    model.requests().iter().any(|request| {
        user_message_texts(&request.body)
            .iter()
            .any(|text| text.contains(marker))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_a_named_endpoint_reaches_that_server_and_is_audited_here() {
    let world = World::start().await;
    // A directory of "the other host" (the same machine here), not the
    // sidecar's: the audit must not land under it.
    let remote_project = tempfile::tempdir().unwrap();
    let script = Script::text("from the box");
    let started = world
        .engine
        .run(on_box(script.marker(), remote_project.path()))
        .await
        .unwrap();
    let result = world.finish(&started.run_id).await;
    assert_eq!(result.status, RunStatus::Completed, "{result:?}");
    assert_eq!(result.result.as_deref(), Some("from the box"));
    assert!(asked(&world.other.model, &script.marker()));
    assert!(
        !asked(&world.default_model, &script.marker()),
        "the default endpoint's model was asked"
    );

    // The audit is in the sidecar's run dir, never under the remote cwd.
    assert!(!remote_project.path().join(".codex").exists());
    let index = store::read_index(&world.sidecar_run_dir()).unwrap();
    let rows: Vec<_> = index
        .iter()
        .filter(|row| row.run_id == started.run_id)
        .collect();
    assert!(rows.iter().any(|row| row.event == IndexEvent::End));
    assert!(
        rows.iter()
            .all(|row| row.endpoint.as_deref() == Some("box")),
        "{rows:?}"
    );
    assert_eq!(rows[0].cwd, remote_project.path());
    let pointer = store::read_pointer(&world.pointer_dir.path().join("runs.index.jsonl")).unwrap();
    let row = pointer
        .iter()
        .rev()
        .find(|row| row.run_id == started.run_id)
        .unwrap();
    assert_eq!(row.endpoint.as_deref(), Some("box"));
    assert_eq!(row.run_dir, world.sidecar_run_dir());
    let summary = std::fs::read_to_string(
        world
            .sidecar_run_dir()
            .join(format!("{}.md", started.run_id)),
    )
    .unwrap();
    assert!(summary.contains("- Endpoint: `box`"), "{summary}");

    // The resume goes back to the box, though it names no endpoint.
    let again = Script::text("back on the box");
    let resumed = world
        .engine
        .resume(ResumeRequest::new(
            ResumeTarget::Run(started.run_id.clone()),
            again.marker(),
        ))
        .await
        .unwrap();
    let result = world.finish(&resumed.run_id).await;
    assert_eq!(result.result.as_deref(), Some("back on the box"));
    assert!(asked(&world.other.model, &again.marker()));
    assert!(!asked(&world.default_model, &again.marker()));

    // `codex-runs --json` lists both with the endpoint.
    let output = std::process::Command::new(CODEX_RUNS)
        .args(["--json", "--all"])
        .env("CODEX_MCP_WRAPPER_POINTER_DIR", world.pointer_dir.path())
        .env("CODEX_HOME", world._codex_home.path())
        .current_dir(world.sidecar_dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for run_id in [&started.run_id, &resumed.run_id] {
        let row = listing["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["runId"] == run_id.as_str())
            .unwrap_or_else(|| panic!("{run_id} not in {stdout}"));
        assert_eq!(row["endpoint"], "box", "{row}");
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_cwd_must_be_absolute_and_is_not_looked_up_here() {
    let world = World::start().await;
    let refused = world
        .engine
        .run(on_box(
            Script::text("x").marker(),
            Path::new("work/project"),
        ))
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, EngineError::BadRequest(_)), "{refused:?}");
    assert!(
        message.contains("not an absolute path") && message.contains("box"),
        "{message}"
    );
    // A path only the other host has: accepted by the sidecar (Codex on
    // that host decides what it makes of it).
    let elsewhere = Path::new("/srv/only-on-the-box/project");
    assert!(!elsewhere.exists());
    let outcome = world
        .engine
        .run(on_box(Script::text("y").marker(), elsewhere))
        .await;
    if let Err(error) = &outcome {
        let message = error.to_string();
        assert!(
            !message.contains("does not exist or is not a directory")
                && !matches!(error, EngineError::BadRequest(_)),
            "the sidecar looked the remote cwd up on its own disk: {message}"
        );
    }
    // The same path on the default endpoint is refused, as always.
    let local = world
        .engine
        .run(RunRequest::new(Script::text("z").marker(), elsewhere))
        .await
        .unwrap_err();
    assert!(local.to_string().contains("does not exist"), "{local}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_endpoint_is_refused_with_the_known_names() {
    let rig = EngineRig::start(&[]).await;
    let mut request = rig.request(Script::text("x").marker());
    request.endpoint = Some("nowhere".to_string());
    let message = rig.engine.run(request).await.unwrap_err().to_string();
    assert!(
        message.contains("unknown endpoint \"nowhere\"") && message.contains("default"),
        "{message}"
    );
    assert!(rig.model.requests().is_empty());
    rig.stop().await;
}
