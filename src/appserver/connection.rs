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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{self, Message};

use super::token::CapabilityToken;
use crate::backpressure::{Credit, CreditPool, EVENT_CREDITS};
use crate::protocol::jsonrpc::{self, Incoming, RequestId, RpcError};
use crate::protocol::{
    ClientInfo, InitializeParams, InitializeResponse, ServerNotification, ServerRequest,
    ThreadReadParams, ThreadResponse, ThreadResumeParams, ThreadStartParams, TurnInterruptParams,
    TurnStartParams, TurnStartResponse,
};

/// TCP connect plus WebSocket upgrade on loopback: instant unless the server
/// is wedged, and then we want to say so rather than hang.
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

/// Everything that can go wrong talking to the app-server.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("{0} is not a ws://HOST:PORT or unix://PATH app-server URL")]
    InvalidUrl(String),
    #[error("could not reach the app-server at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the WebSocket upgrade to {url} failed: {source}")]
    Handshake {
        url: String,
        #[source]
        source: Box<tungstenite::Error>,
    },
    #[error(
        "the app-server at {url} refused our capability token (HTTP 401); the token file does not match the running server"
    )]
    Unauthorized { url: String },
    #[error(
        "{url} answered the WebSocket upgrade with HTTP {status}; it is not a codex app-server that accepts us"
    )]
    Rejected { url: String, status: u16 },
    #[error("connecting to {url} took longer than {CONNECT_TIMEOUT:?}")]
    ConnectTimedOut { url: String },
    #[error("the app-server connection is closed: {reason}")]
    Disconnected { reason: String },
    #[error("`{method}` got no answer within {after:?}")]
    TimedOut { method: String, after: Duration },
    #[error("`{method}` failed: {error}")]
    Rpc { method: String, error: RpcError },
    #[error("`{method}` answered with an unexpected result: {source}")]
    UnexpectedResult {
        method: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("could not encode the params of `{method}`: {source}")]
    Encode {
        method: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What the server sends us unasked.
#[derive(Debug, Clone)]
pub enum ServerEvent {
    Notification(ServerNotification),
    /// Must be answered with [`AppServerConnection::respond`] or
    /// [`AppServerConnection::respond_error`]: the turn waits until it is.
    Request(ServerRequest),
    /// The socket is gone; nothing follows.
    Disconnected {
        reason: String,
    },
}

/// How to reach the server and who we are.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `ws://127.0.0.1:PORT`, or `unix://PATH` for a server on a Unix socket.
    pub url: String,
    /// Sent as `Authorization: Bearer …`; `None` sends no header.
    pub token: Option<CapabilityToken>,
    pub client_info: ClientInfo,
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
        }
    }
}

type Reply = oneshot::Sender<Result<Value, ConnectionError>>;

enum Command {
    Request {
        id: RequestId,
        method: String,
        frame: String,
        reply: Reply,
    },
    /// The caller stopped waiting (timeout); drop its pending entry.
    Forget(RequestId),
    /// A frame that needs no answer: a notification or our response.
    Send(String),
    Close,
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

type Subscriptions = Arc<Mutex<HashSet<String>>>;

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Request { id, method, .. } => write!(f, "Request({id}, {method})"),
            Command::Forget(id) => write!(f, "Forget({id})"),
            Command::Send(_) => f.write_str("Send"),
            Command::Close => f.write_str("Close"),
        }
    }
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
            open_and_spawn(&options, command_rx, event_tx, worker),
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
    pub fn is_subscribed(&self, thread_id: &str) -> bool {
        self.subscribed
            .lock()
            .is_ok_and(|subscribed| subscribed.contains(thread_id))
    }

    fn note_subscribed(&self, thread_id: &str) {
        if let Ok(mut subscribed) = self.subscribed.lock() {
            subscribed.insert(thread_id.to_string());
        }
    }

    pub async fn thread_read(
        &self,
        thread_id: &str,
        include_turns: bool,
    ) -> Result<ThreadResponse, ConnectionError> {
        let params = ThreadReadParams {
            thread_id: thread_id.to_string(),
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
        thread_id: &str,
        turn_id: &str,
    ) -> Result<(), ConnectionError> {
        let params = TurnInterruptParams {
            thread_id: thread_id.to_string(),
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

/// Opens the stream (TCP for `ws://`, a Unix socket for `unix://PATH`) and
/// performs the WebSocket upgrade with our token, then starts the worker.
async fn open_and_spawn(
    options: &ConnectOptions,
    command_rx: mpsc::Receiver<Command>,
    event_tx: mpsc::Sender<ServerEvent>,
    shared: WorkerShared,
) -> Result<(), ConnectionError> {
    let url = options.url.as_str();
    let invalid = || ConnectionError::InvalidUrl(url.to_string());
    let connect_error = |source| ConnectionError::Connect {
        url: url.to_string(),
        source,
    };
    if let Some(path) = url.strip_prefix("unix://") {
        // The upgrade request still needs an http URI; the host is unused.
        let request = upgrade_request("ws://localhost/", options, url)?;
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(connect_error)?;
        let socket = upgrade(request, stream, url).await?;
        tokio::spawn(Worker::new(socket, command_rx, event_tx, shared).run());
        return Ok(());
    }
    let authority = url
        .strip_prefix("ws://")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .filter(|authority| !authority.is_empty())
        .ok_or_else(invalid)?;
    let request = upgrade_request(url, options, url)?;
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(connect_error)?;
    // Frames are small JSON messages; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    let socket = upgrade(request, stream, url).await?;
    tokio::spawn(Worker::new(socket, command_rx, event_tx, shared).run());
    Ok(())
}

fn upgrade_request(
    uri: &str,
    options: &ConnectOptions,
    url: &str,
) -> Result<tungstenite::handshake::client::Request, ConnectionError> {
    let mut request = uri
        .into_client_request()
        .map_err(|_| ConnectionError::InvalidUrl(url.to_string()))?;
    if let Some(token) = &options.token {
        let value = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
            .map_err(|_| ConnectionError::InvalidUrl(url.to_string()))?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    Ok(request)
}

async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    request: tungstenite::handshake::client::Request,
    stream: S,
    url: &str,
) -> Result<WebSocketStream<S>, ConnectionError> {
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _response)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED {
                Err(ConnectionError::Unauthorized {
                    url: url.to_string(),
                })
            } else {
                Err(ConnectionError::Rejected {
                    url: url.to_string(),
                    status: status.as_u16(),
                })
            }
        }
        Err(source) => Err(ConnectionError::Handshake {
            url: url.to_string(),
            source: Box::new(source),
        }),
    }
}

/// What the worker shares with the handles.
struct WorkerShared {
    closed: Arc<Mutex<Option<String>>>,
    subscribed: Subscriptions,
    credits: CreditPool,
}

struct Worker<S> {
    socket: WebSocketStream<S>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ServerEvent>,
    /// Requests sent and not yet answered, with their method for errors.
    pending: HashMap<RequestId, (String, Reply)>,
    closed: Arc<Mutex<Option<String>>>,
    /// A thread the server closes is no longer subscribed.
    subscribed: Subscriptions,
    credits: CreditPool,
    /// The credit the next event read takes; the worker reads only with
    /// one in hand, unless an answer is awaited.
    credit: Option<Credit>,
    /// Events read while the channel was full, oldest first; the worker
    /// reads no further (but for an awaited answer) until they are out.
    overflow: VecDeque<ServerEvent>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Worker<S> {
    fn new(
        socket: WebSocketStream<S>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<ServerEvent>,
        shared: WorkerShared,
    ) -> Worker<S> {
        Worker {
            socket,
            commands,
            events,
            pending: HashMap::new(),
            closed: shared.closed,
            subscribed: shared.subscribed,
            credits: shared.credits,
            credit: None,
            overflow: VecDeque::new(),
        }
    }

    /// Whether to read the next frame: with a credit and nothing left over,
    /// or while an answer is awaited (it may sit behind events whose credits
    /// its awaiter holds; see [`crate::backpressure`]).
    fn may_read(&self) -> bool {
        (self.credit.is_some() && self.overflow.is_empty()) || !self.pending.is_empty()
    }

    async fn run(mut self) {
        let reason = loop {
            let may_read = self.may_read();
            let wants_credit = self.credit.is_none();
            let overflowing = !self.overflow.is_empty();
            tokio::select! {
                credit = self.credits.acquire(), if wants_credit => self.credit = Some(credit),
                room = self.events.clone().reserve_owned(), if overflowing => match (room, self.overflow.pop_front()) {
                    (Ok(room), Some(event)) => {
                        room.send(event);
                    }
                    // The owner stopped listening; what is left has nowhere to go.
                    _ => self.overflow.clear(),
                },
                command = self.commands.recv() => match command {
                    Some(command) => {
                        if let Err(reason) = self.handle_command(command).await {
                            break reason;
                        }
                    }
                    None => {
                        let _ = self.socket.close(None).await;
                        break "every handle was dropped".to_string();
                    }
                },
                frame = self.socket.next(), if may_read => match frame {
                    Some(Ok(Message::Text(text))) => self.handle_frame(text.as_str()).await,
                    Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                        Ok(text) => self.handle_frame(text).await,
                        Err(_) => tracing::warn!("ignoring a binary frame that is not UTF-8"),
                    },
                    Some(Ok(Message::Close(frame))) => {
                        break match frame {
                            Some(frame) if !frame.reason.is_empty() => {
                                format!("the app-server closed the connection: {}", frame.reason)
                            }
                            _ => "the app-server closed the connection".to_string(),
                        };
                    }
                    // Pings are answered by tungstenite itself.
                    Some(Ok(_)) => {}
                    Some(Err(error)) => break format!("the connection broke: {error}"),
                    None => break "the app-server closed the connection".to_string(),
                },
            }
        };
        self.shut(reason).await;
    }

    /// Err carries the reason the connection ends.
    async fn handle_command(&mut self, command: Command) -> Result<(), String> {
        let frame = match command {
            Command::Request {
                id,
                method,
                frame,
                reply,
            } => {
                tracing::trace!(%id, %method, "request");
                self.pending.insert(id, (method, reply));
                frame
            }
            Command::Forget(id) => {
                self.pending.remove(&id);
                return Ok(());
            }
            Command::Send(frame) => frame,
            Command::Close => {
                let _ = self.socket.close(None).await;
                return Err("closed by us".to_string());
            }
        };
        self.socket
            .send(Message::text(frame))
            .await
            .map_err(|error| format!("sending to the app-server failed: {error}"))
    }

    async fn handle_frame(&mut self, text: &str) {
        let event = match Incoming::parse(text) {
            Ok(Incoming::Response { id, result }) => {
                self.answer(&id, Ok(result));
                return;
            }
            Ok(Incoming::Error { id, error }) => {
                self.answer(&id, Err(error));
                return;
            }
            Ok(Incoming::Notification { method, params }) => {
                let credit = self.credit.take().unwrap_or_default();
                if method == "thread/closed"
                    && let (Some(thread_id), Ok(mut subscribed)) =
                        (params["threadId"].as_str(), self.subscribed.lock())
                {
                    subscribed.remove(thread_id);
                }
                if method == "turn/completed" {
                    tracing::debug!(
                        target: LATENCY_TARGET,
                        thread_id = params["threadId"].as_str(),
                        turn_id = params["turn"]["id"].as_str(),
                        "turn/completed received"
                    );
                }
                ServerEvent::Notification(
                    ServerNotification::new(method, params).with_credit(credit),
                )
            }
            Ok(Incoming::Request { id, method, params }) => {
                let credit = self.credit.take().unwrap_or_default();
                ServerEvent::Request(ServerRequest::new(id, method, params).with_credit(credit))
            }
            Err(error) => {
                tracing::warn!(%error, "ignoring a frame from the app-server");
                return;
            }
        };
        self.deliver(event);
    }

    /// Hands an event to the owner without waiting, so that commands keep
    /// flowing; behind earlier leftovers, it joins them.
    fn deliver(&mut self, event: ServerEvent) {
        if !self.overflow.is_empty() {
            self.overflow.push_back(event);
            return;
        }
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => self.overflow.push_back(event),
            // A dropped receiver means the owner stopped listening; events
            // then have nowhere to go, which is the owner's choice.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn answer(&mut self, id: &RequestId, result: Result<Value, RpcError>) {
        match self.pending.remove(id) {
            Some((method, reply)) => {
                let _ = reply.send(result.map_err(|error| ConnectionError::Rpc { method, error }));
            }
            None => tracing::debug!(%id, "answer to a request nobody waits for"),
        }
    }

    /// Fails every pending request with the reason and tells the owner.
    async fn shut(mut self, reason: String) {
        tracing::debug!(%reason, "app-server connection ended");
        if let Ok(mut closed) = self.closed.lock() {
            *closed = Some(reason.clone());
        }
        // Stop accepting commands first, so that nothing new becomes pending
        // after the sweep below.
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Request {
                id, method, reply, ..
            } = command
            {
                self.pending.insert(id, (method, reply));
            }
        }
        for (_, (_, reply)) in self.pending.drain() {
            let _ = reply.send(Err(ConnectionError::Disconnected {
                reason: reason.clone(),
            }));
        }
        while let Some(event) = self.overflow.pop_front() {
            if self.events.send(event).await.is_err() {
                return;
            }
        }
        let _ = self.events.send(ServerEvent::Disconnected { reason }).await;
    }
}
