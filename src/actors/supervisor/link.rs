//! The Supervisor's connect tasks: everything about reaching the app-server
//! that waits (a process start, a shared-server launch or restart, a
//! WebSocket connect, the login check, the reconnect backoff) runs here, in a
//! task that owns the [`Backend`] while it works and hands it back in one
//! [`LinkReport`] message. The Supervisor's `handle` only starts these tasks
//! and reads their reports, so an interrupt, an approval or a wait is never
//! queued behind a cold start.

use std::path::PathBuf;
use std::time::Duration;

use super::messages::{LinkOutcome, LinkReport, NewLink, SupervisorMsg, SupervisorRef};
use crate::actors::types::EngineError;
use crate::appserver::account::LoginGate;
use crate::appserver::backend::{Backend, Endpoint};
use crate::appserver::{AppServerConnection, ConnectOptions};
use crate::codex_bin::CodexBinary;

/// Reconnect attempts after a drop, spaced by this base doubled each time:
/// 100 ms, 200 ms, … 3.2 s, about 6 s in all, which rides out an app-server
/// restart while a dead one is noticed quickly.
const RECONNECT_BASE: Duration = Duration::from_millis(100);
const RECONNECT_ATTEMPTS: u32 = 6;

/// The longest pause between two reconnects to a remote server, which is
/// tried for its whole window (`Config::remote_reconnect_window`): the
/// doubling stops here, so a link that comes back is used within seconds.
const REMOTE_BACKOFF_CAP: Duration = Duration::from_secs(2);

/// What a login check needs.
#[derive(Clone)]
pub struct LoginCheck {
    pub codex_home: PathBuf,
    pub codex: CodexBinary,
}

/// Connects for queued requests: the server (by kind), the connection, and
/// the login check when `login` is given.
pub fn connect(supervisor: &SupervisorRef, mut backend: Backend, login: Option<LoginCheck>) {
    let supervisor = supervisor.clone();
    tokio::spawn(async move {
        let outcome = match open(&mut backend).await {
            Ok(mut link) => {
                let login = match &login {
                    Some(check) => Some(
                        link.gate
                            .admit(&link.connection, &check.codex_home, &check.codex)
                            .await,
                    ),
                    None => None,
                };
                LinkOutcome::Connected {
                    link,
                    login,
                    after_drop: false,
                }
            }
            Err(error) => LinkOutcome::Failed {
                error,
                after_drop: false,
            },
        };
        report(&supervisor, Some(backend), outcome).await;
    });
}

/// The login check on a live connection, for queued requests.
pub fn admit(
    supervisor: &SupervisorRef,
    connection: AppServerConnection,
    generation: u64,
    check: LoginCheck,
) {
    let supervisor = supervisor.clone();
    tokio::spawn(async move {
        let mut gate = LoginGate::default();
        let login = gate
            .admit(&connection, &check.codex_home, &check.codex)
            .await;
        let outcome = LinkOutcome::Admitted {
            generation,
            gate,
            login,
        };
        report(&supervisor, None, outcome).await;
    });
}

/// After the connection dropped: is the server gone (the runs fail), or
/// alive (reconnect with backoff, when runs need it)? A remote server is
/// never known gone: it is tried for `remote_window`.
pub fn recover(
    supervisor: &SupervisorRef,
    mut backend: Backend,
    reason: String,
    runs_live: bool,
    remote_window: Duration,
) {
    let supervisor = supervisor.clone();
    tokio::spawn(async move {
        let outcome = if backend.gone().await {
            LinkOutcome::Gone {
                reason: format!("the app-server exited while the run was in flight ({reason})"),
            }
        } else if !runs_live {
            LinkOutcome::Idle
        } else if backend.remote().is_some() {
            reconnect_remote(&mut backend, &reason, remote_window).await
        } else {
            reconnect(&mut backend).await
        };
        report(&supervisor, Some(backend), outcome).await;
    });
}

/// Tries a remote server again and again, the pause doubling up to
/// [`REMOTE_BACKOFF_CAP`], until it answers or `window` has passed; then the
/// runs fail with a reason that names the endpoint and how long we tried.
async fn reconnect_remote(backend: &mut Backend, dropped: &str, window: Duration) -> LinkOutcome {
    let started = tokio::time::Instant::now();
    let mut pause = RECONNECT_BASE;
    let mut last_error = None;
    loop {
        let error = match tokio::time::timeout_at(started + window, open(backend)).await {
            Ok(Ok(link)) => {
                return LinkOutcome::Connected {
                    link,
                    login: None,
                    after_drop: true,
                };
            }
            Ok(Err(error)) => error.to_string(),
            // Cut off by the window's end: the try before says more.
            Err(_) => last_error
                .take()
                .unwrap_or_else(|| "no answer within the window".to_string()),
        };
        let tried = started.elapsed();
        let left = window.saturating_sub(tried);
        if left.is_zero() {
            let (name, url) = backend
                .remote()
                .map(|endpoint| (endpoint.name.clone(), endpoint.url.clone()))
                .unwrap_or_default();
            return LinkOutcome::Gone {
                reason: format!(
                    "the remote app-server `{name}` at {url} stayed unreachable for {:.0} s \
                     after the connection dropped ({dropped}); last try: {error}",
                    tried.as_secs_f64()
                ),
            };
        }
        tracing::warn!(%error, ?tried, "reconnect to the remote app-server failed; retrying");
        last_error = Some(error);
        // The last pause ends with the window, for one last try.
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(REMOTE_BACKOFF_CAP);
    }
}

async fn reconnect(backend: &mut Backend) -> LinkOutcome {
    let mut attempt = 0;
    loop {
        match open(backend).await {
            Ok(link) => {
                return LinkOutcome::Connected {
                    link,
                    login: None,
                    after_drop: true,
                };
            }
            Err(_) if backend.gone().await => {
                return LinkOutcome::Gone {
                    reason: "the app-server exited while the run was in flight".to_string(),
                };
            }
            Err(error) if attempt + 1 < RECONNECT_ATTEMPTS => {
                tracing::warn!(%error, attempt, "reconnect failed; retrying");
                tokio::time::sleep(RECONNECT_BASE * 2u32.pow(attempt)).await;
                attempt += 1;
            }
            Err(error) => {
                return LinkOutcome::Failed {
                    error,
                    after_drop: true,
                };
            }
        }
    }
}

/// The server's endpoint, then a connection to it.
async fn open(backend: &mut Backend) -> Result<NewLink, EngineError> {
    let Endpoint {
        url,
        token,
        token_file,
        stderr,
        remote,
    } = backend.ensure().await?;
    let options = ConnectOptions::new(url.clone(), token).with_remote(remote);
    let (connection, events) = AppServerConnection::connect(options).await?;
    Ok(NewLink {
        connection,
        events,
        url,
        token_file,
        gate: LoginGate::default(),
        stderr,
    })
}

/// Hands the report to the Supervisor; one that stopped meanwhile gets
/// nothing, and the server this task holds is let go here instead.
async fn report(supervisor: &SupervisorRef, backend: Option<Backend>, outcome: LinkOutcome) {
    let message = SupervisorMsg::Linked(Box::new(LinkReport { backend, outcome }));
    if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::Linked(report))) =
        supervisor.cast(message)
    {
        let LinkReport { backend, outcome } = *report;
        if let LinkOutcome::Connected { link, .. } = outcome {
            link.connection.close().await;
        }
        if let Some(backend) = backend {
            backend.stop().await;
        }
    }
}
