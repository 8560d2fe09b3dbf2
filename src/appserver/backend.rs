//! The app-server a sidecar talks to, whatever keeps it: a private process
//! of ours, a lease on the shared one, someone else's `unix://` socket, or
//! a remote one (never started or stopped). One interface over the kinds:
//! [`Backend::ensure`]
//! gives an [`Endpoint`] to connect to (starting the server when its kind
//! does that), [`Backend::gone`] says whether the server itself died after a
//! connection dropped, [`Backend::stop`] lets it go.
//!
//! Every method may wait (a process start, a lock, a connect), so the
//! Supervisor never calls them in `handle`: its connect task owns the
//! backend while one runs.

use std::path::PathBuf;

use tokio::sync::broadcast;

use crate::appserver::connection::RemoteTransport;
use crate::appserver::process::live_group_members;
use crate::appserver::remote_tls::{RemoteSetupError, remote_connect_options};
use crate::appserver::shared::{
    SharedError, SharedLease, SharedOptions, SharedPaths, ensure_shared,
};
use crate::appserver::{AppServerError, AppServerProcess, CapabilityToken, SpawnOptions};
use crate::codex_bin::CodexBinary;
use crate::config::{AppServerMode, Config, RemoteEndpoint};

/// After a connection drops, how long a private server may take to be seen
/// exiting. A killed process is reaped within milliseconds; a second covers
/// a loaded machine, and a live server never holds a reconnect up longer.
const EXIT_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// After a connection to the shared server drops, how long its port must
/// refuse connects before the server counts as gone. A dead server refuses
/// at once and for good; a proxy or tunnel in front of a live one refuses
/// only while it restarts, which is milliseconds. Half a second of refusals
/// tells them apart and delays a dead server's verdict by no more.
const SHARED_REFUSAL_WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

/// How often the port is tried within [`SHARED_REFUSAL_WINDOW`]: a restart
/// shorter than this could slip between two tries, and a proxy that comes
/// back so fast is caught by the reconnect anyway.
const SHARED_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Where to connect, and what a terminal UI needs to attach.
#[derive(Debug)]
pub struct Endpoint {
    pub url: String,
    pub token: Option<CapabilityToken>,
    /// The server's token file, for a terminal UI that attaches to a run.
    pub token_file: Option<PathBuf>,
    /// A private server started by this call: its stderr lines.
    pub stderr: Option<broadcast::Receiver<String>>,
    /// A remote server: TLS and the settings its errors name.
    pub remote: Option<RemoteTransport>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    AppServer(#[from] AppServerError),
    #[error(transparent)]
    Shared(#[from] SharedError),
    #[error(transparent)]
    Remote(#[from] RemoteSetupError),
    #[error("creating a directory for the private app-server's token in {path}: {source}")]
    TokenDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The app-server by mode, and what keeps it.
pub enum Backend {
    /// Our own app-server, stopped with us.
    Private {
        codex_bin: PathBuf,
        codex_home: PathBuf,
        log_filter: Option<String>,
        process: Option<AppServerProcess>,
        /// Holds the token file.
        dir: Option<tempfile::TempDir>,
    },
    /// The shared server; the lease keeps it from exiting while we live.
    Shared {
        options: SharedOptions,
        lease: Option<SharedLease>,
    },
    /// Someone else's server: nothing to keep.
    Unix { path: PathBuf },
    /// Someone else's server over the network: nothing to keep, and never
    /// started or stopped.
    Remote { endpoint: RemoteEndpoint },
}

impl Backend {
    pub fn new(config: &Config, codex: &CodexBinary) -> Backend {
        match &config.app_server {
            AppServerMode::Private => Backend::Private {
                codex_bin: codex.path.clone(),
                codex_home: config.codex_home.clone(),
                log_filter: config.app_server_log.clone(),
                process: None,
                dir: None,
            },
            AppServerMode::Shared { url } => Backend::Shared {
                options: SharedOptions {
                    url: url.clone(),
                    pointer_dir: config.pointer_dir.clone(),
                    codex_bin: codex.path.clone(),
                    codex_home: Some(config.codex_home.clone()),
                    idle_exit: config.shared_idle_exit,
                    cli_version: Some(codex.version.clone()),
                },
                lease: None,
            },
            AppServerMode::Unix { path } => Backend::Unix { path: path.clone() },
            AppServerMode::Remote(endpoint) => Backend::Remote {
                endpoint: endpoint.clone(),
            },
        }
    }

    /// The endpoint of a running server, starting one (by kind) when there
    /// is none. A shared server on an older Codex than ours is restarted
    /// here (see `shared::ensure_shared`).
    pub async fn ensure(&mut self) -> Result<Endpoint, BackendError> {
        match self {
            Backend::Private {
                codex_bin,
                codex_home,
                log_filter,
                process,
                dir,
            } => {
                let mut stderr = None;
                let running = match process.take() {
                    Some(running) => running,
                    None => {
                        let fresh =
                            tempfile::tempdir().map_err(|source| BackendError::TokenDir {
                                path: std::env::temp_dir(),
                                source,
                            })?;
                        let mut options =
                            SpawnOptions::loopback(codex_bin.clone(), fresh.path().join("token"));
                        options.codex_home = Some(codex_home.clone());
                        options.log_filter = log_filter.clone();
                        let spawned = AppServerProcess::spawn(options).await?;
                        stderr = Some(spawned.stderr().subscribe());
                        *dir = Some(fresh);
                        spawned
                    }
                };
                let endpoint = Endpoint {
                    url: running.url().to_string(),
                    token: Some(running.token().clone()),
                    token_file: dir.as_ref().map(|dir| dir.path().join("token")),
                    stderr,
                    remote: None,
                };
                *process = Some(running);
                Ok(endpoint)
            }
            Backend::Shared { options, lease } => {
                let fresh = ensure_shared(options).await?;
                let token = fresh.token.clone();
                *lease = Some(fresh);
                Ok(Endpoint {
                    url: options.url.clone(),
                    token: Some(token),
                    token_file: Some(SharedPaths::new(&options.pointer_dir).token()),
                    stderr: None,
                    remote: None,
                })
            }
            Backend::Unix { path } => Ok(Endpoint {
                url: format!("unix://{}", path.display()),
                token: None,
                token_file: None,
                stderr: None,
                remote: None,
            }),
            // Never started: the URL, a bearer minted now (each connect,
            // reconnects too, gets its own) and the TLS client.
            Backend::Remote { endpoint } => {
                let options = remote_connect_options(endpoint).await?;
                Ok(Endpoint {
                    url: options.url,
                    token: options.token,
                    token_file: None,
                    stderr: None,
                    remote: options.remote,
                })
            }
        }
    }

    /// The remote endpoint, when the server is someone else's over the
    /// network: a drop is then waited out for longer, since nothing here
    /// can tell a dead server from a slow network.
    pub fn remote(&self) -> Option<&RemoteEndpoint> {
        match self {
            Backend::Remote { endpoint } => Some(endpoint),
            _ => None,
        }
    }

    /// Whether the server itself is gone (not just a connection to it):
    /// private, its process group; shared, a port that refuses every try
    /// for [`SHARED_REFUSAL_WINDOW`]; unix, a refused socket. A gone server is let go, so the next [`Self::ensure`] starts
    /// a new one.
    pub async fn gone(&mut self) -> bool {
        match self {
            Backend::Private { process, .. } => {
                let Some(running) = process.as_mut() else {
                    return true;
                };
                // The socket closes the instant the server dies, a moment
                // before the kernel has torn it down: its exit is the answer.
                let exited = tokio::time::timeout(EXIT_SETTLE, running.wait())
                    .await
                    .is_ok();
                let gone = exited || live_group_members(running.pgid()).is_empty();
                if gone && let Some(mut dead) = process.take() {
                    // Reap the rest of the group.
                    let _ = dead.kill();
                    let _ = dead.wait().await;
                }
                gone
            }
            Backend::Shared { options, lease } => {
                let refused = refused_throughout(&options.url).await;
                if refused {
                    *lease = None;
                }
                refused
            }
            Backend::Unix { path } => tokio::net::UnixStream::connect(&*path).await.is_err(),
            // Someone else's server on another host: a refused connect may
            // be the network or a restart there, never a reason to start
            // one of ours; the reconnect keeps trying.
            Backend::Remote { .. } => false,
        }
    }

    /// Lets the server go: a private one's whole process group is stopped
    /// (SIGTERM, then SIGKILL after its grace); a shared lease is released,
    /// and the server stays for other sidecars.
    pub async fn stop(self) {
        if let Backend::Private {
            process: Some(process),
            ..
        } = self
            && let Err(error) = process.shutdown().await
        {
            tracing::warn!(%error, "stopping the private app-server failed");
        }
    }
}

/// Every connect to the URL's port is refused for [`SHARED_REFUSAL_WINDOW`]:
/// one refusal may be a proxy in front of the server restarting, and taking
/// it for an exit failed runs the server went on with (issue 17).
async fn refused_throughout(url: &str) -> bool {
    let deadline = tokio::time::Instant::now() + SHARED_REFUSAL_WINDOW;
    loop {
        if !tcp_refused(url).await {
            return false;
        }
        if tokio::time::Instant::now() >= deadline {
            return true;
        }
        tokio::time::sleep(SHARED_PROBE_INTERVAL).await;
    }
}

/// A TCP connect to the URL's port is refused: nothing listens there.
async fn tcp_refused(url: &str) -> bool {
    let authority = url
        .strip_prefix("ws://")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .unwrap_or(url);
    matches!(
        tokio::net::TcpStream::connect(authority).await,
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused
    )
}
