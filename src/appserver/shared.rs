//! The shared app-server: one `codex app-server` per user (per pointer dir),
//! on a fixed port, used by every sidecar of that user. Codex allows one
//! writer per thread, so sidecars must share a server rather than each run
//! their own.
//!
//! This file owns the client side: [`ensure_shared`] (the files in the
//! pointer dir and the cross-process locks are `shared_files`'), which finds
//! the running server
//! or launches the detached keeper ([`super::keeper`]) that starts it, and
//! returns a [`SharedLease`]. A lease holds a shared flock on the clients
//! lock; the keeper exits once no lease is held and no turn runs.
//!
//! The launch lock serialises everything that probes, starts or stops the
//! server, so N sidecars that start at the same instant launch exactly one.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::connection::{AppServerConnection, ConnectOptions, ConnectionError};
use super::keeper_identity::KEEPER_SUBCOMMAND;
use super::shared_files::{
    KEEPER_READY_TIMEOUT, LAUNCH_LOCK_TIMEOUT, io_error, lock_within, owner_only_file,
};
pub use super::shared_files::{SharedError, SharedOptions, SharedPaths, SharedState};
use super::token::CapabilityToken;

/// The keeper holds the clients lock exclusively only for the instant of a
/// non-blocking check, so a shared lock is normally granted at once.
const CLIENTS_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Lines of the log file quoted in a launch error: enough for the app-server's
/// own error and the keeper's message, short enough to read.
const LOG_TAIL_LINES: usize = 20;

/// Past this size the log is moved to `app-server.log.old` before a launch,
/// so that a server relaunched for months does not fill the disk.
const LOG_ROTATE_BYTES: u64 = 1024 * 1024;

/// The keeper logs its lifecycle at info; unless the user chose a filter, ask
/// for that (and warnings from everything else) in the log file.
const KEEPER_DEFAULT_LOG_FILTER: &str = "warn,codex_mcp_sidecar=info";

/// A sidecar's right to use the shared server. While any lease is held the
/// keeper does not stop the server; the shared flock goes away when the lease
/// is dropped or the process dies (even on SIGKILL).
#[derive(Debug)]
pub struct SharedLease {
    pub url: String,
    pub token: CapabilityToken,
    /// The keeper's record; `None` only if someone removed the state file.
    pub state: Option<SharedState>,
    /// Whether this call started the server.
    pub launched: bool,
    _clients: Flock<File>,
}

/// Finds the shared server, starting it through a detached keeper (this very
/// executable, [`KEEPER_SUBCOMMAND`]) when none runs, and returns a lease.
pub async fn ensure_shared(options: &SharedOptions) -> Result<SharedLease, SharedError> {
    let exe = crate::process_table::current_exe()
        .map_err(io_error("find", Path::new("our executable")))?;
    ensure_shared_using(options, &exe).await
}

/// [`ensure_shared`] with the keeper run from `keeper_exe`: for callers whose
/// own executable is not this crate's CLI (tests, embedders).
pub async fn ensure_shared_using(
    options: &SharedOptions,
    keeper_exe: &Path,
) -> Result<SharedLease, SharedError> {
    let paths = SharedPaths::new(&options.pointer_dir);
    paths.create_dir().map_err(io_error("create", &paths.dir))?;
    let launch_lock = paths.launch_lock();
    let launch = lock_within(&launch_lock, FlockArg::LockExclusive, LAUNCH_LOCK_TIMEOUT).await?;
    let launched = match probe(&options.url, &paths).await? {
        Some(running) => {
            super::version::stop_if_outdated(options, &paths, running.user_agent.as_deref()).await?
        }
        None => true,
    };
    if launched {
        launch_keeper(options, &paths, keeper_exe).await?;
        let token = read_token(&paths.token())?;
        let (connection, _events) =
            AppServerConnection::connect(ConnectOptions::new(&options.url, token))
                .await
                .map_err(|source| SharedError::Connect {
                    url: options.url.clone(),
                    source,
                })?;
        connection.close().await;
    }
    // Taken before the launch lock is released: the keeper only stops the
    // server under the launch lock, after checking for clients.
    let clients_lock = paths.clients_lock();
    let clients = lock_within(&clients_lock, FlockArg::LockShared, CLIENTS_LOCK_TIMEOUT).await?;
    let token = read_token(&paths.token())?
        .ok_or_else(|| io_error("read", &paths.token())(std::io::ErrorKind::NotFound.into()))?;
    let state = SharedState::read(&paths.state()).unwrap_or_else(|error| {
        tracing::warn!(%error, "unreadable shared app-server state file");
        None
    });
    drop(launch);
    tracing::info!(url = %options.url, launched, "using the shared app-server");
    Ok(SharedLease {
        url: options.url.clone(),
        token,
        state,
        launched,
        _clients: clients,
    })
}

/// A server that answered the probe.
struct Running {
    /// From its `initialize` result: which Codex it runs.
    user_agent: Option<String>,
}

/// `Some` when a codex app-server at `url` accepts our token, `None` when
/// nothing listens; anything else is an error that says who holds the port.
async fn probe(url: &str, paths: &SharedPaths) -> Result<Option<Running>, SharedError> {
    let token = read_token(&paths.token())?;
    let have_token = token.is_some();
    let (url, token_file) = (url.to_string(), paths.token());
    match AppServerConnection::connect(ConnectOptions::new(&url, token)).await {
        Ok((connection, _events)) => {
            let user_agent = connection.server_info().user_agent.clone();
            connection.close().await;
            Ok(Some(Running { user_agent }))
        }
        Err(ConnectionError::Connect { source, .. })
            if source.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            Ok(None)
        }
        Err(ConnectionError::Unauthorized { .. }) if have_token => {
            Err(SharedError::TokenRefused { url, token_file })
        }
        Err(ConnectionError::Unauthorized { .. }) => Err(SharedError::NoToken { url, token_file }),
        // It took the TCP connection but did not act like an app-server:
        // no upgrade, a broken handshake, or no `initialize` answer.
        Err(
            error @ (ConnectionError::Rejected { .. }
            | ConnectionError::Handshake { .. }
            | ConnectionError::ConnectTimedOut { .. }
            | ConnectionError::Disconnected { .. }
            | ConnectionError::TimedOut { .. }
            | ConnectionError::Rpc { .. }
            | ConnectionError::UnexpectedResult { .. }),
        ) => Err(SharedError::NotAnAppServer {
            url,
            detail: error.to_string(),
        }),
        Err(source) => Err(SharedError::Connect { url, source }),
    }
}

/// Starts the keeper and waits for its one line on stdout.
async fn launch_keeper(
    options: &SharedOptions,
    paths: &SharedPaths,
    keeper_exe: &Path,
) -> Result<(), SharedError> {
    let log = paths.log();
    if std::fs::metadata(&log).is_ok_and(|meta| meta.len() > LOG_ROTATE_BYTES) {
        let _ = std::fs::rename(&log, log.with_extension("log.old"));
    }
    let log_file = owner_only_file(&log, true).map_err(io_error("open", &log))?;
    // Absolute paths: the keeper runs in the pointer dir, not in our cwd.
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut command = Command::new(keeper_exe);
    command
        .arg(KEEPER_SUBCOMMAND)
        .args(["--url", &options.url, "--idle-exit-ms"])
        .arg(options.idle_exit.as_millis().to_string())
        .arg("--pointer-dir")
        .arg(absolute(&paths.dir))
        .arg("--codex-bin")
        .arg(absolute(&options.codex_bin))
        // The keeper outlives us; it must not pin whatever dir we run in.
        .current_dir(&paths.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        // Its stderr is a file: colour codes would only clutter it.
        .env("NO_COLOR", "1");
    if let Some(home) = &options.codex_home {
        command.arg("--codex-home").arg(absolute(home));
    }
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", KEEPER_DEFAULT_LOG_FILTER);
    }
    // Not in our process group (no `process_group`): the keeper calls
    // setsid() itself, which a group leader may not do.
    let mut child = command.spawn().map_err(io_error("start", keeper_exe))?;
    let mut line = String::new();
    let read = async {
        match child.stdout.take() {
            Some(stdout) => BufReader::new(stdout).read_line(&mut line).await,
            None => Ok(0),
        }
    };
    let outcome = tokio::time::timeout(KEEPER_READY_TIMEOUT, read).await;
    let line = line.trim();
    let message = match outcome {
        Err(_) => {
            // SIGTERM makes the keeper stop the app-server it may have begun.
            if let Some(pid) = child.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
            format!("it did not report ready within {KEEPER_READY_TIMEOUT:?}")
        }
        Ok(Err(error)) => format!("reading its stdout failed: {error}"),
        Ok(Ok(_)) if line.starts_with("ready ") => {
            tracing::info!(pid = child.id(), "{line}");
            // Dropped without kill_on_drop: the keeper runs on, and tokio
            // reaps it in the background once it exits.
            return Ok(());
        }
        Ok(Ok(_)) => match line.strip_prefix("error ") {
            Some(message) => message.to_string(),
            None if line.is_empty() => "it exited without a word".to_string(),
            None => format!("it said {line:?}"),
        },
    };
    Err(SharedError::KeeperFailed {
        message,
        tail: log_tail(&log),
        log,
    })
}

fn read_token(path: &Path) -> Result<Option<CapabilityToken>, SharedError> {
    match std::fs::read_to_string(path) {
        Ok(secret) => Ok(Some(CapabilityToken::from_secret(secret))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io_error("read", path)(source)),
    }
}

/// The last [`LOG_TAIL_LINES`] lines of the log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Err(error) = File::open(path).and_then(|mut file| file.read_to_string(&mut text)) {
        return format!("(could not read it: {error})");
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
