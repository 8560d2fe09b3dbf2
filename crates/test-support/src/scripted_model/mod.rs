//! The scripted model: an OpenAI Responses-API server on loopback that the
//! real Codex CLI talks to instead of a real model. It owns the HTTP server
//! and its task, the record of every request it received, and the answers,
//! which a `SCRIPT{…}` marker in each prompt chooses (see [`Script`]). One
//! server serves many concurrent Codex runs, each with its own marker.

mod handler;
mod log;
mod script;
mod sse;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use handler::{RateLimitHeaders, RateLimitWindowHeaders};
pub use log::{RecordedRequest, RequestOutcome};
pub use script::{Script, is_tool_follow_up, user_message_texts};

use log::Log;

/// How long [`ScriptedModel::shutdown`] lets open connections finish before
/// it aborts the server. Open streams end as soon as they see the shutdown
/// and idle keep-alive connections close at once, so this only matters when
/// a client will not let go; two seconds does not hold up a test run.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ScriptedModelError {
    #[error("could not listen on loopback: {0}")]
    Bind(#[source] std::io::Error),
    #[error(
        "no request log state satisfied the condition within {timeout:?} ({seen} requests seen)"
    )]
    WaitTimedOut { timeout: Duration, seen: usize },
}

/// A running scripted model server on `127.0.0.1`, on a port of its own.
pub struct ScriptedModel {
    addr: SocketAddr,
    log: Log,
    /// The rate-limit headers every answer carries from now on.
    rate_limits: handler::RateLimitSetting,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl ScriptedModel {
    pub async fn start() -> Result<ScriptedModel, ScriptedModelError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(ScriptedModelError::Bind)?;
        ScriptedModel::serve(listener)
    }

    /// Serves on a listener the caller bound: one inside a network
    /// namespace (a second host's loopback) stays there, whichever thread
    /// serves it. Must be called within a Tokio runtime.
    pub fn start_on(listener: std::net::TcpListener) -> Result<ScriptedModel, ScriptedModelError> {
        listener
            .set_nonblocking(true)
            .map_err(ScriptedModelError::Bind)?;
        ScriptedModel::serve(TcpListener::from_std(listener).map_err(ScriptedModelError::Bind)?)
    }

    fn serve(listener: TcpListener) -> Result<ScriptedModel, ScriptedModelError> {
        let addr = listener.local_addr().map_err(ScriptedModelError::Bind)?;
        let log = Log::new();
        let (shutdown, stopping) = watch::channel(false);
        let rate_limits = handler::RateLimitSetting::default();
        let app = handler::router(log.clone(), rate_limits.clone(), stopping.clone());
        let mut until_stopped = stopping;
        let server = tokio::spawn(async move {
            let stopped = async move {
                // An error means the model was dropped, which also means stop.
                let _ = until_stopped.wait_for(|stopping| *stopping).await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::warn!(%error, "scripted model server failed");
            }
        });
        tracing::debug!(%addr, "scripted model listening");
        Ok(ScriptedModel {
            addr,
            log,
            rate_limits,
            shutdown,
            server: Some(server),
        })
    }

    /// The `base_url` of a Codex model provider: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Sends these rate-limit figures with every answer from now on, as
    /// OpenAI's backend does (Codex turns them into
    /// `account/rateLimits/updated`); `None` sends none, the default.
    pub fn set_rate_limits(&self, limits: Option<RateLimitHeaders>) {
        self.rate_limits.set(limits);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.snapshot()
    }

    /// Resolves with the request log once `pred` holds for it, checking again
    /// on every new request and every outcome change.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[RecordedRequest]) -> bool,
    ) -> Result<Vec<RecordedRequest>, ScriptedModelError> {
        let mut changes = self.log.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            // The sender lives in `self`, so the channel cannot close while we
            // wait; the error arm only keeps this total.
            match changes.wait_for(|requests| pred(requests)).await {
                Ok(requests) => Some(requests.clone()),
                Err(_) => None,
            }
        })
        .await;
        match waited {
            Ok(Some(requests)) => Ok(requests),
            _ => Err(ScriptedModelError::WaitTimedOut {
                timeout,
                seen: self.log.snapshot().len(),
            }),
        }
    }

    /// Resolves once any request has reached `outcome`: `Streaming` means a
    /// turn is certainly under way, `ClientWentAway` that Codex hung up.
    pub async fn wait_for_outcome(
        &self,
        outcome: RequestOutcome,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, ScriptedModelError> {
        self.wait_for(timeout, |requests| {
            requests.iter().any(|request| request.outcome == outcome)
        })
        .await
    }

    /// Writes a `config.toml` into `codex_home` (created if missing) that
    /// points Codex at this server, needs no login, and never retries, so a
    /// scripted failure shows up as one failed request.
    pub fn write_codex_home(&self, codex_home: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(codex_home)?;
        let config = format!(
            r#"model = "mock-model"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "read-only"

[model_providers.mock]
name = "mock"
base_url = "{}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

# Codex starts a login shell for every new thread to snapshot the user's
# environment. Two hundred threads at once on a machine whose dotfiles are
# slow (pyenv's rehash takes a lock) drove the load past 60 on 2 cores. The
# scripted model's commands need nothing from the user's dotfiles.
#
# A local `codex resume` (the TUI) otherwise starts a managed app-server
# daemon under CODEX_HOME, copying Codex's package there first, and that
# daemon outlives the test that made it.
[features]
shell_snapshot = false
daemon_auto_start = false
"#,
            self.base_url()
        );
        std::fs::write(codex_home.join("config.toml"), config)
    }

    /// Stops serving: open streams end, idle connections close, and after
    /// [`SHUTDOWN_GRACE`] whatever is left is aborted.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            tracing::warn!("scripted model connections outlived the grace period; aborting");
            server.abort();
        }
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        // The signal also ends streams on connections the server task has
        // already handed off, which aborting the task alone would leave behind.
        self.shutdown.send_replace(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
