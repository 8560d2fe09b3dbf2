//! A WebSocket connection to a `codex app-server`.
//!
//! One worker task owns the socket and the map of pending request ids; the
//! [`AppServerConnection`] handle sends it commands and can be cloned freely.
//! Notifications and server requests come out of the event receiver that
//! [`AppServerConnection::connect`] returns, in the order the server sent them.
//! When the socket closes, every pending request fails at once with
//! [`ConnectionError::Disconnected`], the receiver gets one final
//! [`ServerEvent::Disconnected`], and later requests fail the same way.
//!
//! The worker reads the next frame only while it holds a credit of the
//! connection's [`CreditPool`] (nothing is dropped): each event carries its
//! credit until whoever writes it to disk drops it, so a slow disk slows the
//! reads ([`crate::backpressure`]). While a request of ours is unanswered it
//! reads on without credits, so an owner awaiting an answer that queues
//! behind events it holds still gets it. Commands (our requests and our
//! answers to the server's requests) go out whether or not it reads.
//!
//! Parts: `dial.rs` opens the socket and upgrades it, `worker.rs` is the
//! task that owns it (framing, the pending map, credits), `error.rs` says
//! what can go wrong; this file is the handle.

mod ack;
mod dial;
mod error;
mod worker;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use self::error::ConnectionError;
pub use self::worker::ServerEvent;
use self::worker::{Command, Subscriptions, WorkerShared};
use super::token::CapabilityToken;
use crate::backpressure::{CreditPool, EVENT_CREDITS};
use crate::protocol::jsonrpc::{self, RequestId, RpcError};
use crate::protocol::{
    ClientInfo, InitializeParams, InitializeResponse, ThreadId, ThreadReadParams, ThreadResponse,
    ThreadResumeParams, ThreadStartParams, TurnInterruptParams, TurnStartParams, TurnStartResponse,
};

/// TCP connect plus WebSocket upgrade (and TLS for `wss://`): instant on
/// loopback, a few round trips to another host; 10 s is far beyond either
/// unless the server or the path is wedged, and then we want to say so
/// rather than hang.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Ordinary requests (`thread/start`, `turn/start`, …). `thread/start` writes
/// the session file and loads model metadata: about a second when cold on a
/// busy 2-core machine, so 30 s only trips when the server is really stuck.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Notifications and server requests buffered for the owner. The credits
/// bound what is in flight ([`EVENT_CREDITS`]), so every credited event
/// fits; only events read without credits, while an answer is awaited, can
/// find it full, and those wait in the worker's overflow, in order.
const EVENT_CHANNEL_CAPACITY: usize = EVENT_CREDITS;

/// Commands queued for the worker; each is one small frame to write.
const COMMAND_CHANNEL_CAPACITY: usize = 256;

/// The tracing target of the two events that time a run's completion: this
/// connection reading a `turn/completed` frame, and `codex_wait` handing its
/// reply to the MCP transport (`src/mcp`). Debug level, so off unless
/// `RUST_LOG` names it (`codex_mcp_sidecar::latency=debug`); off, each costs
/// one comparison of the method and tracing's cached level check. The
/// benchmarks read the events' microsecond timestamps (B3 in
/// `docs/benchmarks.md`).
pub const LATENCY_TARGET: &str = "codex_mcp_sidecar::latency";

/// How to reach the server and who we are.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `ws://127.0.0.1:PORT`, or `unix://PATH` for a server on a Unix socket.
    pub url: String,
    /// Sent as `Authorization: Bearer …`; `None` sends no header.
    pub token: Option<CapabilityToken>,
    pub client_info: ClientInfo,
    /// A remote server: TLS for `wss://`, and the settings its errors name.
    pub remote: Option<RemoteTransport>,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>, token: Option<CapabilityToken>) -> ConnectOptions {
        ConnectOptions {
            url: url.into(),
            token,
            client_info: ClientInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            remote: None,
        }
    }

    /// The same, to a remote server reached as `remote` says.
    pub fn with_remote(mut self, remote: Option<RemoteTransport>) -> ConnectOptions {
        self.remote = remote;
        self
    }
}

/// How to reach one remote server beyond its URL, built for each connection
/// (by `remote_tls`) from the endpoint's settings.
#[derive(Clone)]
pub struct RemoteTransport {
    /// `Some` for `wss://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// What a 401 tells the person to check.
    pub auth_hint: String,
    /// The setting that adds a CA, for a certificate we could not verify.
    pub ca_setting: String,
}

impl std::fmt::Debug for RemoteTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTransport")
            .field("tls", &self.tls.is_some())
            .field("auth_hint", &self.auth_hint)
            .finish()
    }
}

/// A handle on one initialized connection.
#[derive(Debug, Clone)]
pub struct AppServerConnection {
    commands: mpsc::Sender<Command>,
    next_id: Arc<AtomicI64>,
    /// Why the worker stopped, once it has; every later call reports it.
    closed: Arc<Mutex<Option<String>>>,
    initialize: Arc<InitializeResponse>,
    /// Threads this connection gets the events of: added when a
    /// `thread/start` or `thread/resume` succeeds, removed when the server
    /// closes (unloads) the thread. Subscriptions belong to the connection,
    /// so a new connection starts with none.
    subscribed: Subscriptions,
}

impl AppServerConnection {
    /// Connects, performs `initialize` / `initialized`, and returns the handle
    /// with the receiver of everything the server sends unasked.
    pub async fn connect(
        options: ConnectOptions,
    ) -> Result<(AppServerConnection, mpsc::Receiver<ServerEvent>), ConnectionError> {
        let url = options.url.clone();
        let (commands, command_rx) = mpsc::channel(COMMAND_CHANNEL_CAPACITY);
        let (event_tx, event_rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let closed = Arc::new(Mutex::new(None));
        let subscribed = Subscriptions::default();
        let worker = WorkerShared {
            closed: closed.clone(),
            subscribed: subscribed.clone(),
            credits: CreditPool::new(EVENT_CREDITS),
        };
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            dial::open_and_spawn(&options, command_rx, event_tx, worker),
        )
        .await
        .map_err(|_| ConnectionError::ConnectTimedOut { url: url.clone() })??;

        let mut connection = AppServerConnection {
            commands,
            next_id: Arc::new(AtomicI64::new(1)),
            closed,
            initialize: Arc::new(InitializeResponse {
                user_agent: None,
                codex_home: None,
                extra: Default::default(),
            }),
            subscribed,
        };
        let initialize: InitializeResponse = connection
            .request(
                "initialize",
                &InitializeParams {
                    client_info: options.client_info,
                },
            )
            .await?;
        connection.initialize = Arc::new(initialize);
        connection.notify("initialized", None).await?;
        tracing::debug!(%url, "app-server connection initialized");
        Ok((connection, event_rx))
    }

    /// What the server said about itself in `initialize`.
    pub fn server_info(&self) -> &InitializeResponse {
        &self.initialize
    }

    /// Sends a request and waits for its result, up to [`REQUEST_TIMEOUT`].
    pub async fn request<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ConnectionError> {
        self.request_with_timeout(method, params, REQUEST_TIMEOUT)
            .await
    }

    pub async fn request_with_timeout<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
        timeout: Duration,
    ) -> Result<R, ConnectionError> {
        let params = serde_json::to_value(params).map_err(|source| ConnectionError::Encode {
            method: method.to_string(),
            source,
        })?;
        let id = RequestId::Integer(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (reply, answer) = oneshot::channel();
        let frame = jsonrpc::request_frame(&id, method, &params);
        self.send_command(Command::Request {
            id: id.clone(),
            method: method.to_string(),
            frame,
            reply,
        })
        .await?;
        let result = match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result?,
            // The worker dropped our reply sender: it has stopped.
            Ok(Err(_)) => return Err(self.disconnected()),
            Err(_) => {
                let _ = self.commands.try_send(Command::Forget(id));
                return Err(ConnectionError::TimedOut {
                    method: method.to_string(),
                    after: timeout,
                });
            }
        };
        serde_json::from_value(result).map_err(|source| ConnectionError::UnexpectedResult {
            method: method.to_string(),
            source,
        })
    }

    /// Starts a thread; this connection is subscribed to it.
    pub async fn thread_start(
        &self,
        params: &ThreadStartParams,
    ) -> Result<ThreadResponse, ConnectionError> {
        let response: ThreadResponse = self.request("thread/start", params).await?;
        self.note_subscribed(&response.thread.id);
        Ok(response)
    }

    /// Subscribes this connection to a thread's live events (and loads it if
    /// the server had unloaded it).
    pub async fn thread_resume(
        &self,
        params: &ThreadResumeParams,
    ) -> Result<ThreadResponse, ConnectionError> {
        let response: ThreadResponse = self.request("thread/resume", params).await?;
        self.note_subscribed(&response.thread.id);
        Ok(response)
    }

    /// Whether this connection already gets the thread's events (it started
    /// or resumed it, and the server has not closed it since): a new turn on
    /// it then needs no `thread/resume`, which returns the whole thread and
    /// grows with it.
    pub fn is_subscribed(&self, thread_id: &ThreadId) -> bool {
        self.subscribed
            .lock()
            .is_ok_and(|subscribed| subscribed.contains(thread_id))
    }

    fn note_subscribed(&self, thread_id: &ThreadId) {
        if let Ok(mut subscribed) = self.subscribed.lock() {
            subscribed.insert(thread_id.clone());
        }
    }

    pub async fn thread_read(
        &self,
        thread_id: &ThreadId,
        include_turns: bool,
    ) -> Result<ThreadResponse, ConnectionError> {
        let params = ThreadReadParams {
            thread_id: thread_id.clone(),
            include_turns,
        };
        self.request("thread/read", &params).await
    }

    /// Starts a turn; it runs on after this returns.
    pub async fn turn_start(
        &self,
        params: &TurnStartParams,
    ) -> Result<TurnStartResponse, ConnectionError> {
        self.request("turn/start", params).await
    }

    /// Asks the server to stop a turn; it then ends with `turn/completed`
    /// and status `interrupted`.
    pub async fn turn_interrupt(
        &self,
        thread_id: &ThreadId,
        turn_id: &str,
    ) -> Result<(), ConnectionError> {
        let params = TurnInterruptParams {
            thread_id: thread_id.clone(),
            turn_id: turn_id.to_string(),
        };
        let _: Value = self.request("turn/interrupt", &params).await?;
        Ok(())
    }

    /// Answers a server request.
    pub async fn respond(&self, id: &RequestId, result: &Value) -> Result<(), ConnectionError> {
        self.send_command(Command::Send(jsonrpc::response_frame(id, result)))
            .await
    }

    /// Answers a server request with an error.
    pub async fn respond_error(
        &self,
        id: &RequestId,
        error: &RpcError,
    ) -> Result<(), ConnectionError> {
        self.send_command(Command::Send(jsonrpc::error_frame(id, error)))
            .await
    }

    async fn notify(&self, method: &str, params: Option<&Value>) -> Result<(), ConnectionError> {
        self.send_command(Command::Send(jsonrpc::notification_frame(method, params)))
            .await
    }

    /// Closes the socket. Pending requests fail; other handles see the
    /// connection as closed.
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
    }

    /// Whether the worker has stopped.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    async fn send_command(&self, command: Command) -> Result<(), ConnectionError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| self.disconnected())
    }

    fn disconnected(&self) -> ConnectionError {
        let reason = self
            .closed
            .lock()
            .ok()
            .and_then(|closed| closed.clone())
            .unwrap_or_else(|| "the connection worker stopped".to_string());
        ConnectionError::Disconnected { reason }
    }
}
