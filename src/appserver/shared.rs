//! The shared app-server: one `codex app-server` per user (per pointer dir),
//! on a fixed port, used by every sidecar of that user. Codex allows one
//! writer per thread, so sidecars must share a server rather than each run
//! their own.
//!
//! This file owns the client side: the files in the pointer dir, the
//! cross-process locks, and [`ensure_shared`], which finds the running server
//! or launches the detached keeper ([`super::keeper`]) that starts it, and
//! returns a [`SharedLease`]. A lease holds a shared flock on the clients
//! lock; the keeper exits once no lease is held and no turn runs.
//!
//! The launch lock serialises everything that probes, starts or stops the
//! server, so N sidecars that start at the same instant launch exactly one.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::connection::{AppServerConnection, CONNECT_TIMEOUT, ConnectOptions, ConnectionError};
use super::keeper::KEEPER_SUBCOMMAND;
use super::process::{READY_TIMEOUT, STARTUP_TIMEOUT};
use super::token::CapabilityToken;

/// Owner-only: the dir holds the capability token.
const POINTER_DIR_MODE: u32 = 0o700;
/// Owner-only, like everything else in the pointer dir.
const FILE_MODE: u32 = 0o600;

/// The keeper's own start-up is instant; what it waits for is the app-server
/// (`STARTUP_TIMEOUT` to listen, `READY_TIMEOUT` for `/readyz`). The slack
/// covers the keeper process starting and writing its state on a busy host.
pub const KEEPER_READY_TIMEOUT: Duration = STARTUP_TIMEOUT
    .saturating_add(READY_TIMEOUT)
    .saturating_add(Duration::from_secs(15));

/// A sidecar may queue behind one whole launch (the keeper's start-up plus a
/// connect to check it) and the probe before it; anything longer means the
/// holder is stuck, and saying so beats hanging the MCP client.
pub const LAUNCH_LOCK_TIMEOUT: Duration = KEEPER_READY_TIMEOUT
    .saturating_add(CONNECT_TIMEOUT)
    .saturating_add(CONNECT_TIMEOUT);

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

/// The files of the shared server in the pointer dir.
#[derive(Debug, Clone)]
pub struct SharedPaths {
    pub dir: PathBuf,
}

impl SharedPaths {
    pub fn new(dir: impl Into<PathBuf>) -> SharedPaths {
        SharedPaths { dir: dir.into() }
    }
    /// The capability token (0600), rewritten by every launch.
    pub fn token(&self) -> PathBuf {
        self.dir.join("app-server.token")
    }
    /// Exclusive while probing, launching or shutting the server down.
    pub fn launch_lock(&self) -> PathBuf {
        self.dir.join("app-server.launch.lock")
    }
    /// Shared by every lease; the keeper's exclusive try tells it whether any
    /// client is left.
    pub fn clients_lock(&self) -> PathBuf {
        self.dir.join("app-server.clients.lock")
    }
    /// Held exclusively by the keeper for its whole life: how it is told
    /// from a process that got its pid (see [`super::keeper_identity`]).
    pub fn keeper_lock(&self) -> PathBuf {
        self.dir.join("app-server.keeper.lock")
    }
    /// The keeper's stderr and the app-server's, appended.
    pub fn log(&self) -> PathBuf {
        self.dir.join("app-server.log")
    }
    /// [`SharedState`], written atomically by the keeper once the server is
    /// ready and removed when it exits.
    pub fn state(&self) -> PathBuf {
        self.dir.join("app-server.json")
    }

    /// Creates the dir (0700) if needed. An existing dir keeps its mode: it
    /// may be the user's own, and the files in it are 0600 anyway.
    pub fn create_dir(&self) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(POINTER_DIR_MODE)
            .create(&self.dir)
    }
}

/// What the keeper records about the running server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedState {
    pub url: String,
    pub keeper_pid: u32,
    pub app_server_pgid: i32,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// The keeper's start time in the process table, so that a process
    /// that got its pid later is not taken for it. `None` with no process
    /// table (the fallback), and in files of keepers older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keeper_started: Option<crate::process_table::ProcessStart>,
    /// The keeper holds [`SharedPaths::keeper_lock`] for its whole life.
    /// False in files of older keepers, which took no such lock.
    #[serde(default)]
    pub keeper_lock: bool,
}

impl SharedState {
    /// `None` when there is no state file.
    pub fn read(path: &Path) -> std::io::Result<Option<SharedState>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Write-then-rename, so a reader sees the old state or the new one,
    /// never half of one.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let temp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut file = owner_only_file(&temp, false)?;
        std::io::Write::write_all(&mut file, &json)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// Files and locks of the pointer dir, and starting the keeper.
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "waited {after:?} for the lock {path}; another sidecar holds it and seems stuck (remove the lock file only if no sidecar runs)"
    )]
    LockTimedOut { path: PathBuf, after: Duration },
    #[error(
        "the server at {url} refused the token in {token_file}: it was not started with it; stop that server or set another URL"
    )]
    TokenRefused { url: String, token_file: PathBuf },
    #[error(
        "a server at {url} wants a token and {token_file} holds none: it was not started from this pointer dir; stop it or set another URL"
    )]
    NoToken { url: String, token_file: PathBuf },
    #[error(
        "the port of {url} is held by something that is not a codex app-server ({detail}); free the port or set another URL"
    )]
    NotAnAppServer { url: String, detail: String },
    #[error("could not talk to the shared app-server at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: ConnectionError,
    },
    #[error(
        "the shared app-server at {url} runs Codex {server}, older than the CLI, and could not be stopped to restart it: {message}"
    )]
    StopOutdated {
        url: String,
        server: semver::Version,
        message: String,
    },
    #[error(
        "the keeper could not start the shared app-server: {message}\nlast lines of {log}:\n{tail}"
    )]
    KeeperFailed {
        message: String,
        log: PathBuf,
        tail: String,
    },
}

/// For `map_err`: an IO failure on `path` while trying to `action` it.
fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SharedError {
    let path = path.to_path_buf();
    move |source| SharedError::Io {
        action,
        path,
        source,
    }
}

/// Where the shared server lives and how to start it.
#[derive(Debug, Clone)]
pub struct SharedOptions {
    /// `ws://127.0.0.1:PORT` (a fixed port).
    pub url: String,
    pub pointer_dir: PathBuf,
    pub codex_bin: PathBuf,
    /// `CODEX_HOME` for the server; `None` inherits ours.
    pub codex_home: Option<PathBuf>,
    /// No client and no running turn for this long: the server exits.
    pub idle_exit: Duration,
    /// `codex_bin`'s version, when known: a running server on an older Codex
    /// is replaced once no turn runs on it ([`super::version`]).
    pub cli_version: Option<semver::Version>,
}

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

/// Opens (creating, 0600) a file in the pointer dir; `append` for the log.
fn owner_only_file(path: &Path, append: bool) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    options.create(true).mode(FILE_MODE).open(path)
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

fn open_lock_file(path: &Path) -> Result<File, SharedError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(io_error("open", path))
}

/// A blocking flock, given up after `timeout`. It runs on a thread of its own
/// rather than tokio's blocking pool: a flock cannot be cancelled, and a
/// runtime waits for its blocking tasks when it shuts down. If we stop
/// waiting, the thread drops the lock as soon as it gets it.
pub async fn lock_within(
    path: &Path,
    arg: FlockArg,
    timeout: Duration,
) -> Result<Flock<File>, SharedError> {
    let mut file = open_lock_file(path)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("flock".into())
        .spawn(move || {
            let result = loop {
                match Flock::lock(file, arg) {
                    Ok(lock) => break Ok(lock),
                    // A signal woke the call; it did not fail.
                    Err((again, Errno::EINTR)) => file = again,
                    Err((_, errno)) => break Err(errno),
                }
            };
            let _ = tx.send(result);
        })
        .map_err(io_error("lock", path))?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(lock))) => Ok(lock),
        Ok(Ok(Err(errno))) => Err(io_error("lock", path)(errno.into())),
        Ok(Err(_)) => Err(io_error("lock", path)(std::io::Error::other(
            "the lock thread died",
        ))),
        Err(_) => Err(SharedError::LockTimedOut {
            path: path.to_path_buf(),
            after: timeout,
        }),
    }
}

/// A non-blocking flock: `None` when someone else holds a conflicting lock.
pub fn try_lock(path: &Path, arg: FlockArg) -> Result<Option<Flock<File>>, SharedError> {
    match Flock::lock(open_lock_file(path)?, arg) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(io_error("lock", path)(errno.into())),
    }
}
