//! The shared app-server's files in the pointer dir: where each lives, the
//! keeper's state record, the cross-process locks, and the one error of all
//! of them. Below everything else about the shared server: the keeper, its
//! identity, the version check and `ensure_shared` all stand on this, and
//! this on none of them.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::connection::{CONNECT_TIMEOUT, ConnectionError};
use super::process::{READY_TIMEOUT, STARTUP_TIMEOUT};

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
    /// from a process that got its pid (see `keeper_identity`).
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
pub(super) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> SharedError {
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
    /// is replaced once no turn runs on it (see `version`).
    pub cli_version: Option<semver::Version>,
}

/// Opens (creating, 0600) a file in the pointer dir; `append` for the log.
pub(super) fn owner_only_file(path: &Path, append: bool) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    options.create(true).mode(FILE_MODE).open(path)
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
