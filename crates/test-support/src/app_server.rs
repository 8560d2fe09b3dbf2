//! A throwaway world around a real `codex app-server` that the caller owns
//! (not one a sidecar starts): what the connection tests and the benchmarks
//! stand on. Its token is where a shared-mode sidecar looks for it, so a
//! sidecar pointed at its URL takes it for the shared server and never
//! starts one of its own.

use std::path::PathBuf;

use codex_mcp_sidecar::appserver::shared::SharedPaths;
use codex_mcp_sidecar::appserver::{
    AppServerError, AppServerProcess, ConnectOptions, SpawnOptions,
};
use tempfile::TempDir;

use crate::codex_bin;
use crate::scripted_model::{ScriptedModel, ScriptedModelError};

#[derive(Debug, thiserror::Error)]
pub enum AppServerWorldError {
    #[error("the scripted model: {0}")]
    Model(#[from] ScriptedModelError),
    #[error("a throwaway directory: {0}")]
    Dir(#[from] std::io::Error),
    #[error("the app-server: {0}")]
    AppServer(#[from] AppServerError),
}

/// A scripted model, a `CODEX_HOME` pointing Codex at it, a pointer
/// directory holding the server's token, a project, and the app-server on a
/// free loopback port.
pub struct AppServerWorld {
    pub model: ScriptedModel,
    pub codex_home: TempDir,
    pub pointer_dir: TempDir,
    /// The directory Codex works in.
    pub project: TempDir,
    pub server: AppServerProcess,
}

impl AppServerWorld {
    pub async fn start() -> Result<AppServerWorld, AppServerWorldError> {
        let model = ScriptedModel::start().await?;
        let codex_home = tempfile::tempdir()?;
        model.write_codex_home(codex_home.path())?;
        let pointer_dir = tempfile::tempdir()?;
        let paths = SharedPaths::new(pointer_dir.path());
        paths.create_dir()?;
        let mut options = SpawnOptions::loopback(codex_bin(), paths.token());
        options.codex_home = Some(codex_home.path().to_path_buf());
        let server = AppServerProcess::spawn(options).await?;
        Ok(AppServerWorld {
            model,
            codex_home,
            pointer_dir,
            project: tempfile::tempdir()?,
            server,
        })
    }

    /// A bare client's way in: the server's URL and token.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions::new(self.server.url(), Some(self.server.token().clone()))
    }

    /// Where runs in the project keep their audit.
    pub fn run_dir(&self) -> PathBuf {
        self.project.path().join(".codex/codex-mcp/runs")
    }

    /// Stops the app-server's whole process group, then the model; the
    /// server's group, for a caller that checks nothing of it is left.
    pub async fn stop(self) -> Result<i32, AppServerError> {
        let pgid = self.server.pgid();
        let stopped = self.server.shutdown().await;
        self.model.shutdown().await;
        stopped.map(|_| pgid)
    }
}
