//! An in-process engine on a private app-server, with its own scripted
//! model, CODEX_HOME, pointer directory and project.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use codex_mcp_sidecar::actors::{Engine, RunRequest, RunResult, RunStarted, WaitOutcome};
use codex_mcp_sidecar::config::Config;
use codex_mcp_sidecar_test_support::scripted_model::ScriptedModel;
use tempfile::TempDir;

use super::EVENT_TIMEOUT;

pub struct EngineRig {
    pub model: ScriptedModel,
    pub codex_home: TempDir,
    pub pointer_dir: TempDir,
    pub project: TempDir,
    pub engine: Engine,
}

impl EngineRig {
    /// A private-mode engine; `extra` adds or overrides environment settings.
    pub async fn start(extra: &[(&str, &str)]) -> EngineRig {
        let model = ScriptedModel::start().await.unwrap();
        let codex_home = tempfile::tempdir().unwrap();
        model.write_codex_home(codex_home.path()).unwrap();
        let pointer_dir = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        let config = config(codex_home.path(), pointer_dir.path(), extra);
        let codex = super::codex_binary();
        let engine = Engine::start(config, codex).await.unwrap();
        EngineRig {
            model,
            codex_home,
            pointer_dir,
            project,
            engine,
        }
    }

    pub fn request(&self, prompt: impl Into<String>) -> RunRequest {
        RunRequest::new(prompt, self.project.path())
    }

    pub async fn run(&self, prompt: impl Into<String>) -> RunStarted {
        self.engine.run(self.request(prompt)).await.unwrap()
    }

    /// Waits until the run ends (one blocking slice, bounded by the test).
    pub async fn finish(&self, started: &RunStarted) -> RunResult {
        let outcome = tokio::time::timeout(EVENT_TIMEOUT, self.engine.wait(&started.run_id, None))
            .await
            .expect("the run ends in time")
            .unwrap();
        match outcome {
            WaitOutcome::Finished(result) => result,
            other => panic!("expected the end, got {other:?}"),
        }
    }

    pub fn run_dir(&self) -> PathBuf {
        self.project.path().join(".codex/codex-mcp/runs")
    }

    pub async fn stop(self) {
        self.engine.shutdown().await;
        self.model.shutdown().await;
    }
}

/// The engine's settings for a throwaway world: private mode unless `extra`
/// says otherwise.
pub fn config(codex_home: &Path, pointer_dir: &Path, extra: &[(&str, &str)]) -> Config {
    let mut env: HashMap<String, String> = HashMap::from([
        ("CODEX_HOME".into(), codex_home.display().to_string()),
        (
            "CODEX_MCP_WRAPPER_POINTER_DIR".into(),
            pointer_dir.display().to_string(),
        ),
        ("CODEX_MCP_WRAPPER_APP_SERVER_MODE".into(), "private".into()),
    ]);
    for (name, value) in extra {
        env.insert(name.to_string(), value.to_string());
    }
    Config::from_lookup(|name| env.get(name).cloned()).unwrap()
}

/// A bound that only trips when something is stuck.
pub const SLICE: Duration = Duration::from_millis(300);
