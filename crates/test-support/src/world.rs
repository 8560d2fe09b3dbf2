//! The world of a test that runs the built sidecar, and the guard for tests
//! that start the shared app-server: whatever a test started on its URL is
//! killed when the guard drops, even when an assertion failed first.

// Test scaffolding: a step that fails should panic with its reason, and fail
// the test that called it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use codex_mcp_sidecar::appserver::shared::{SharedPaths, SharedState};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::codex_bin;
use crate::scripted_model::ScriptedModel;

/// One test's throwaway world for the built sidecar: a scripted model, its
/// CODEX_HOME, a pointer dir, a project, and a free port for a shared
/// app-server (never the default 45123; a private-mode test leaves it be).
pub struct SidecarWorld {
    /// First, so it runs before the pointer dir is deleted.
    _cleanup: Cleanup,
    pub model: ScriptedModel,
    pub codex_home: TempDir,
    _pointer_parent: TempDir,
    /// Not created yet: the sidecar creates it.
    pub pointer_dir: PathBuf,
    pub project: TempDir,
    pub url: String,
}

impl SidecarWorld {
    pub async fn new() -> SidecarWorld {
        let model = ScriptedModel::start().await.unwrap();
        let codex_home = tempfile::tempdir().unwrap();
        model.write_codex_home(codex_home.path()).unwrap();
        let pointer_parent = tempfile::tempdir().unwrap();
        let pointer_dir = pointer_parent.path().join("pointer");
        let url = format!("ws://127.0.0.1:{}", free_port());
        SidecarWorld {
            _cleanup: Cleanup {
                url: url.clone(),
                pointer_dir: pointer_dir.clone(),
            },
            model,
            codex_home,
            _pointer_parent: pointer_parent,
            pointer_dir,
            project: tempfile::tempdir().unwrap(),
            url,
        }
    }

    /// `program` in this world: its Codex, CODEX_HOME, pointer dir and URL,
    /// and no run directory from the caller's environment.
    pub fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command
            .env("CODEX_BIN", codex_bin())
            .env("CODEX_HOME", self.codex_home.path())
            .env("CODEX_MCP_WRAPPER_POINTER_DIR", &self.pointer_dir)
            .env("CODEX_MCP_WRAPPER_APP_SERVER_URL", &self.url)
            .env_remove("CODEX_MCP_WRAPPER_RUN_DIR");
        command
    }

    /// Stops the model; the guard then kills what is left on our URL.
    pub async fn shutdown(self) {
        self.model.shutdown().await;
    }

    /// Where runs in the project keep their audit.
    pub fn run_dir(&self) -> PathBuf {
        self.project.path().join(".codex/codex-mcp/runs")
    }
}

/// Kills every process that names the test's URL (keepers, app-servers) and
/// the groups they lead, however the test ended.
pub struct Cleanup {
    pub url: String,
    pub pointer_dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ours = nix::unistd::getpgrp();
        let mut groups = Vec::new();
        if let Ok(Some(state)) = SharedState::read(&SharedPaths::new(&self.pointer_dir).state()) {
            let _ = kill(Pid::from_raw(state.keeper_pid as i32), Signal::SIGKILL);
            groups.push(state.app_server_pgid);
        }
        for process in processes_naming(&self.url) {
            let _ = kill(Pid::from_raw(process.pid), Signal::SIGKILL);
            groups.push(process.pgid);
        }
        for group in groups {
            // Never our own group: that would kill the test runner.
            if group != ours.as_raw() && group > 1 {
                let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
            }
        }
    }
}

#[derive(Debug)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub args: Vec<String>,
}

/// Live (non-zombie) processes with `url` as one of their arguments.
pub fn processes_naming(url: &str) -> Vec<ProcessInfo> {
    live_processes(|process| process.args.iter().any(|arg| arg == url))
}

/// Live child processes of `pid`.
pub fn children_of(pid: i32) -> Vec<ProcessInfo> {
    live_processes(|process| process.ppid == pid)
}

/// Live processes whose program lives under `dir`: Codex's managed
/// app-server daemon runs from a copy of its package in `CODEX_HOME`.
pub fn processes_running_from(dir: &Path) -> Vec<ProcessInfo> {
    let dir = dir.display().to_string();
    live_processes(|process| {
        process
            .args
            .first()
            .is_some_and(|program| program.starts_with(&dir))
    })
}

/// Live members of process group `pgid`.
pub fn processes_in_group(pgid: i32) -> Vec<ProcessInfo> {
    live_processes(|process| process.pgid == pgid)
}

/// `pid`, while it runs (not a zombie).
pub fn live_process(pid: i32) -> Option<ProcessInfo> {
    live_processes(|process| process.pid == pid).pop()
}

/// Live (non-zombie) processes that `keep` accepts, from /proc.
fn live_processes(keep: impl Fn(&ProcessInfo) -> bool) -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let dir = Path::new("/proc").join(pid.to_string());
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse().ok()?;
            let pgid = fields.next()?.parse().ok()?;
            let args: Vec<String> = std::fs::read(dir.join("cmdline"))
                .ok()?
                .split(|byte| *byte == 0)
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect();
            let process = ProcessInfo {
                pid,
                ppid,
                pgid,
                args,
            };
            (state != "Z" && state != "X" && keep(&process)).then_some(process)
        })
        .collect()
}

/// A port nothing listens on: bind port 0, read it, let it go.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
