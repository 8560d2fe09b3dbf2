//! A `codex app-server` process that we started: spawned in a process group
//! of its own, listening on WebSocket with a capability token, its stderr
//! kept, and stopped with its whole group.
//!
//! The npm `codex` launcher is a Node script that spawns the native binary as
//! a child. Signalling only the launcher can leave the native child running,
//! so every signal here goes to the group.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::{broadcast, oneshot};

use super::token::CapabilityToken;

/// From spawn to the `listening on:` line. The launcher starts Node, then the
/// native binary loads its config; seconds on a loaded 2-core CI machine.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// From the `listening on:` line to `/readyz` answering 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Between `/readyz` probes: the server is usually ready on the first or
/// second probe, so a short pause costs little and keeps start-up quick.
const READY_PROBE_INTERVAL: Duration = Duration::from_millis(25);

/// One `/readyz` probe on loopback; a probe that takes longer is retried.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the group may take to exit after SIGTERM before SIGKILL. Codex
/// flushes its session files on SIGTERM; that takes well under a second.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How often shutdown looks for group members that outlived the launcher.
const GROUP_EXIT_POLL: Duration = Duration::from_millis(20);

/// Stderr lines kept in memory for error messages and the run audit; older
/// lines are dropped first. Enough for the tail of any start-up failure.
pub const STDERR_LINES_KEPT: usize = 2000;

/// Live stderr subscribers that fall this far behind lose the oldest lines
/// (and are told how many); the kept buffer above still has them.
const STDERR_BROADCAST_CAPACITY: usize = 1024;

/// The stderr line that carries the bound URL.
const LISTENING_PREFIX: &str = "listening on:";

/// How the process was asked to run.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    pub codex_bin: PathBuf,
    /// `CODEX_HOME` for the server; `None` inherits ours.
    pub codex_home: Option<PathBuf>,
    /// `ws://127.0.0.1:0` picks a free port.
    pub listen: String,
    /// Absolute path where a fresh token is written (mode 0600).
    pub token_file: PathBuf,
    /// `RUST_LOG` for the server (`None`: inherited).
    pub log_filter: Option<String>,
}

impl SpawnOptions {
    /// A server on a free loopback port, its token in `token_file`.
    pub fn loopback(codex_bin: PathBuf, token_file: PathBuf) -> SpawnOptions {
        SpawnOptions {
            codex_bin,
            codex_home: None,
            listen: "ws://127.0.0.1:0".to_string(),
            token_file,
            log_filter: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppServerError {
    #[error("could not write the app-server token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file path must be absolute (Codex requires it): {0}")]
    RelativeTokenFile(PathBuf),
    #[error("could not start `{bin} app-server`: {source}")]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`codex app-server` exited before listening ({status}); last stderr:\n{stderr}")]
    ExitedEarly { status: String, stderr: String },
    #[error(
        "`codex app-server` printed no `listening on:` line within {STARTUP_TIMEOUT:?}; last stderr:\n{stderr}"
    )]
    StartupTimedOut { stderr: String },
    #[error(
        "`codex app-server` listens on {url} but /readyz did not answer 200 within {READY_TIMEOUT:?}"
    )]
    NotReady { url: String },
    #[error("could not signal the app-server process group {pgid}: {source}")]
    Signal {
        pgid: i32,
        #[source]
        source: nix::Error,
    },
    #[error("waiting for the app-server to exit failed: {0}")]
    Wait(#[source] std::io::Error),
}

/// The app-server's stderr, kept line by line with colour codes removed.
#[derive(Debug, Clone)]
pub struct StderrLog {
    kept: Arc<Mutex<VecDeque<String>>>,
    live: broadcast::Sender<String>,
}

impl StderrLog {
    fn new() -> StderrLog {
        StderrLog {
            kept: Arc::new(Mutex::new(VecDeque::new())),
            live: broadcast::channel(STDERR_BROADCAST_CAPACITY).0,
        }
    }

    fn push(&self, line: String) {
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() == STDERR_LINES_KEPT {
                kept.pop_front();
            }
            kept.push_back(line.clone());
        }
        // No subscriber is fine: the kept buffer has the line.
        let _ = self.live.send(line);
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.kept
            .lock()
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Lines from now on, as they arrive.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.live.subscribe()
    }

    fn tail(&self, count: usize) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(count)..].join("\n")
    }
}

/// A running `codex app-server` that this process owns. Dropping it kills the
/// whole group; `shutdown` does so gracefully and waits.
#[derive(Debug)]
pub struct AppServerProcess {
    child: Child,
    pgid: Pid,
    url: String,
    token: CapabilityToken,
    stderr: StderrLog,
    stopped: bool,
}

impl AppServerProcess {
    /// Writes a fresh token, starts the server, and returns once it listens
    /// and `/readyz` answers.
    pub async fn spawn(options: SpawnOptions) -> Result<AppServerProcess, AppServerError> {
        if !options.token_file.is_absolute() {
            return Err(AppServerError::RelativeTokenFile(options.token_file));
        }
        let token = CapabilityToken::generate()
            .and_then(|token| token.write_to(&options.token_file).map(|()| token))
            .map_err(|source| AppServerError::TokenFile {
                path: options.token_file.clone(),
                source,
            })?;

        // Behind the npm launcher, Node only starts to exec the native
        // binary: start that directly, with the environment the launcher
        // gives it (a Node start less on every server start).
        let native = crate::codex_native::resolve(&options.codex_bin);
        let program = native
            .as_ref()
            .map_or(options.codex_bin.as_path(), |native| {
                native.binary.as_path()
            });
        let mut command = Command::new(program);
        if let Some(native) = &native {
            native.apply_env(&mut command);
        }
        command
            .arg("app-server")
            .arg("--listen")
            .arg(&options.listen)
            .arg("--ws-auth")
            .arg("capability-token")
            .arg("--ws-token-file")
            .arg(&options.token_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(home) = &options.codex_home {
            command.env("CODEX_HOME", home);
        }
        if let Some(filter) = &options.log_filter {
            command.env("RUST_LOG", filter);
        }
        let mut child = command.spawn().map_err(|source| AppServerError::Spawn {
            bin: options.codex_bin.clone(),
            source,
        })?;
        let pgid = match child.id() {
            // process_group(0) makes the child the leader of a group whose id
            // is its pid.
            Some(pid) => Pid::from_raw(pid as i32),
            None => {
                return Err(AppServerError::ExitedEarly {
                    status: "exited at once".into(),
                    stderr: String::new(),
                });
            }
        };

        let stderr = StderrLog::new();
        let (url_tx, url_rx) = oneshot::channel();
        if let Some(pipe) = child.stderr.take() {
            tokio::spawn(read_stderr(pipe, stderr.clone(), url_tx));
        }
        let mut process = AppServerProcess {
            child,
            pgid,
            url: String::new(),
            token,
            stderr,
            stopped: false,
        };

        process.url = match tokio::time::timeout(STARTUP_TIMEOUT, url_rx).await {
            Ok(Ok(url)) => url,
            // The reader ended without a URL: stderr closed, so it exited.
            Ok(Err(_)) => {
                let status = process.child.wait().await.map_err(AppServerError::Wait)?;
                return Err(AppServerError::ExitedEarly {
                    status: status.to_string(),
                    stderr: process.stderr.tail(20),
                });
            }
            Err(_) => {
                return Err(AppServerError::StartupTimedOut {
                    stderr: process.stderr.tail(20),
                });
            }
        };
        wait_ready(&process.url).await?;
        tracing::debug!(url = %process.url, pgid = pgid.as_raw(), "app-server ready");
        Ok(process)
    }

    /// `ws://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &CapabilityToken {
        &self.token
    }

    /// The process group: the launcher and the native binary.
    pub fn pgid(&self) -> i32 {
        self.pgid.as_raw()
    }

    pub fn stderr(&self) -> &StderrLog {
        &self.stderr
    }

    /// SIGTERM to the group, SIGKILL after `SHUTDOWN_GRACE`; returns once the
    /// launcher is reaped and no member of the group is left.
    pub async fn shutdown(mut self) -> Result<ExitStatus, AppServerError> {
        self.stopped = true;
        signal_group(self.pgid, Signal::SIGTERM)?;
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let status = match tokio::time::timeout_at(deadline, self.child.wait()).await {
            Ok(status) => status.map_err(AppServerError::Wait)?,
            Err(_) => {
                signal_group(self.pgid, Signal::SIGKILL)?;
                self.child.wait().await.map_err(AppServerError::Wait)?
            }
        };
        // The native child may outlive the launcher by a moment.
        while group_has_live_members(self.pgid.as_raw()) {
            if tokio::time::Instant::now() >= deadline {
                signal_group(self.pgid, Signal::SIGKILL)?;
                break;
            }
            tokio::time::sleep(GROUP_EXIT_POLL).await;
        }
        Ok(status)
    }

    /// Kills the group at once, as a crash would; for fault tests and for
    /// callers that cannot wait.
    pub fn kill(&mut self) -> Result<(), AppServerError> {
        self.stopped = true;
        signal_group(self.pgid, Signal::SIGKILL)
    }

    /// Waits for the launcher to exit, however that happens.
    pub async fn wait(&mut self) -> Result<ExitStatus, AppServerError> {
        self.child.wait().await.map_err(AppServerError::Wait)
    }
}

impl Drop for AppServerProcess {
    fn drop(&mut self) {
        if !self.stopped {
            // Nothing to wait on in Drop: kill the group, and tokio reaps the
            // launcher (kill_on_drop); the orphaned native child is reaped by
            // init once it dies.
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}

fn signal_group(pgid: Pid, signal: Signal) -> Result<(), AppServerError> {
    match killpg(pgid, signal) {
        // Already gone: that is what we wanted.
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(source) => Err(AppServerError::Signal {
            pgid: pgid.as_raw(),
            source,
        }),
    }
}

/// Whether any process of the group is still running (zombies waiting for
/// their parent to reap them do not count where the process table can tell:
/// they hold no resources and run no code). It sees the native child after
/// the launcher died.
pub fn group_has_live_members(pgid: i32) -> bool {
    !live_group_members(pgid).is_empty()
}

/// The group's running processes; see [`crate::process_table`] for what the
/// fallback can and cannot say.
pub use crate::process_table::live_group_members;

async fn read_stderr(pipe: ChildStderr, log: StderrLog, url_tx: oneshot::Sender<String>) {
    let mut url_tx = Some(url_tx);
    let mut lines = BufReader::new(pipe).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(raw)) => {
                let line = strip_ansi_escapes::strip_str(&raw);
                if let Some(url) = listening_url(&line)
                    && let Some(tx) = url_tx.take()
                {
                    let _ = tx.send(url);
                }
                log.push(line);
            }
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%error, "reading app-server stderr failed");
                break;
            }
        }
    }
}

/// `  listening on: ws://127.0.0.1:34943` → `ws://127.0.0.1:34943`
fn listening_url(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix(LISTENING_PREFIX)?.trim();
    (!rest.is_empty()).then(|| rest.to_string())
}

/// Polls `GET /readyz` on the server's HTTP side until it answers 200.
async fn wait_ready(ws_url: &str) -> Result<(), AppServerError> {
    let not_ready = || AppServerError::NotReady {
        url: ws_url.to_string(),
    };
    let authority = ws_url
        .strip_prefix("ws://")
        .map(|rest| rest.trim_end_matches('/'))
        .ok_or_else(not_ready)?;
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Ok(true)) =
            tokio::time::timeout(READY_PROBE_TIMEOUT, probe_readyz(authority)).await
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(not_ready());
        }
        tokio::time::sleep(READY_PROBE_INTERVAL).await;
    }
}

async fn probe_readyz(authority: &str) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    use http_body_util::Empty;
    use hyper::body::Bytes;

    let stream = tokio::net::TcpStream::connect(authority).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/readyz")
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    Ok(response.status() == hyper::StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_url() {
        assert_eq!(
            listening_url("  listening on: ws://127.0.0.1:34943"),
            Some("ws://127.0.0.1:34943".into())
        );
        assert_eq!(listening_url("  readyz: http://127.0.0.1:1/readyz"), None);
        assert_eq!(listening_url("listening on:"), None);
    }

    #[test]
    fn stderr_log_keeps_the_newest_lines() {
        let log = StderrLog::new();
        for n in 0..STDERR_LINES_KEPT + 5 {
            log.push(n.to_string());
        }
        let lines = log.lines();
        assert_eq!(lines.len(), STDERR_LINES_KEPT);
        assert_eq!(lines[0], "5");
        assert_eq!(
            log.tail(2),
            format!("{}\n{}", STDERR_LINES_KEPT + 3, STDERR_LINES_KEPT + 4)
        );
    }
}
