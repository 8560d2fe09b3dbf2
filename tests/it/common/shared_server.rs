//! Guards for tests that start the shared app-server: whatever a test
//! started on its URL is killed when the guard drops, even when an assertion
//! failed first.

use std::path::{Path, PathBuf};

use codex_mcp_sidecar::appserver::shared::{SharedPaths, SharedState};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

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
    pub pgid: i32,
    pub args: Vec<String>,
}

/// Live (non-zombie) processes with `url` as one of their arguments.
pub fn processes_naming(url: &str) -> Vec<ProcessInfo> {
    live_processes(|args| args.iter().any(|arg| arg == url))
}

/// Live processes whose program lives under `dir`: Codex's managed
/// app-server daemon runs from a copy of its package in `CODEX_HOME`.
pub fn processes_running_from(dir: &Path) -> Vec<ProcessInfo> {
    let dir = dir.display().to_string();
    live_processes(|args| {
        args.first()
            .is_some_and(|program| program.starts_with(&dir))
    })
}

fn live_processes(keep: impl Fn(&[String]) -> bool) -> Vec<ProcessInfo> {
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
            let pgid = fields.nth(1)?.parse().ok()?;
            let args: Vec<String> = std::fs::read(dir.join("cmdline"))
                .ok()?
                .split(|byte| *byte == 0)
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect();
            (state != "Z" && state != "X" && keep(&args)).then_some(ProcessInfo { pid, pgid, args })
        })
        .collect()
}

/// A port nothing listens on: bind port 0, read it, let it go.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
