//! Is this setup healthy? The Codex binary, its home, where the audit and the
//! pointer index go, and the app-server. Reads and probes only: a check
//! writes nothing.

use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, access};
use serde::Serialize;

use crate::appserver::account::{self, LoginHealth};
use crate::appserver::shared::SharedPaths;
use crate::appserver::{AppServerConnection, CapabilityToken, ConnectOptions, ConnectionError};
use crate::codex_bin::CodexBinary;
use crate::config::{AppServerMode, Config};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub ok: bool,
    pub codex_version: Option<String>,
    pub app_server: AppServerHealth,
    /// Whether Codex is logged in, or needs no login.
    pub login: LoginHealth,
    pub defaults: Defaults,
    /// Each says what is wrong and what to do; empty when `ok`.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppServerHealth {
    pub mode: &'static str,
    /// Shared or unix: a server answers now. Private: one can be started
    /// (there is a Codex binary), since each sidecar starts its own.
    pub reachable: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Defaults {
    pub timeout_ms: u64,
    /// 0: waits block until the run ends.
    pub soft_timeout_ms: u64,
    pub permissions: &'static str,
}

/// Checks everything; `cwd` is where runs go by default.
pub async fn check(config: &Config, codex: &Result<CodexBinary, String>, cwd: &Path) -> Health {
    let mut problems = Vec::new();
    let codex_version = match codex {
        Ok(codex) => Some(codex.version.to_string()),
        Err(error) => {
            problems.push(error.clone());
            None
        }
    };
    if !config.codex_home.is_dir() {
        problems.push(format!(
            "the Codex home {} does not exist; run `codex` once or set CODEX_HOME",
            config.codex_home.display()
        ));
    }
    for (what, path) in [
        ("the run directory", config.run_dir(cwd)),
        ("the pointer index", config.pointer_index()),
    ] {
        if let Err(problem) = writable(&path) {
            problems.push(format!(
                "{what} {} cannot be written: {problem}",
                path.display()
            ));
        }
    }
    let (mode, reachable) = match &config.app_server {
        AppServerMode::Private => ("private", codex.is_ok()),
        AppServerMode::Shared { url } => ("shared", probe_shared(config, url, &mut problems).await),
        AppServerMode::Unix { path } => {
            let reachable = tokio::net::UnixStream::connect(path).await.is_ok();
            if !reachable {
                problems.push(format!(
                    "nothing answers on {}; start that app-server (e.g. `codex app-server daemon start`)",
                    path.display()
                ));
            }
            ("unix", reachable)
        }
    };
    let login = account::check(config, codex, &mut problems).await;
    Health {
        ok: problems.is_empty(),
        codex_version,
        app_server: AppServerHealth { mode, reachable },
        login,
        defaults: Defaults {
            timeout_ms: millis(config.run_timeout),
            soft_timeout_ms: config.wait_soft_timeout.map(millis).unwrap_or(0),
            permissions: config.default_permissions.as_str(),
        },
        problems,
    }
}

/// A shared server that is not running is fine (the first run starts it);
/// one that refuses our token, or a port held by something else, is not.
async fn probe_shared(config: &Config, url: &str, problems: &mut Vec<String>) -> bool {
    let token = std::fs::read_to_string(SharedPaths::new(&config.pointer_dir).token())
        .ok()
        .map(CapabilityToken::from_secret);
    match AppServerConnection::connect(ConnectOptions::new(url, token)).await {
        Ok((connection, _events)) => {
            connection.close().await;
            true
        }
        Err(ConnectionError::Connect { .. }) => false,
        Err(error) => {
            problems.push(error.to_string());
            false
        }
    }
}

/// Whether `path` (or, while it does not exist, its nearest existing
/// ancestor, where it would be created) may be written.
fn writable(path: &Path) -> Result<(), String> {
    let mut existing: PathBuf = path.to_path_buf();
    while !existing.exists() {
        match existing.parent() {
            Some(parent) => existing = parent.to_path_buf(),
            None => return Err("no existing parent directory".to_string()),
        }
    }
    let dir = if existing.is_dir() {
        existing
    } else {
        existing.parent().map(Path::to_path_buf).unwrap_or(existing)
    };
    access(&dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|errno| errno.desc().to_string())
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
