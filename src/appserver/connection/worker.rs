//! The task that owns the socket: it writes the handles' commands, reads
//! frames while it holds a credit (or an answer is awaited), matches answers
//! to pending requests by id, and hands everything else to the owner as
//! [`ServerEvent`]s. When the socket ends it fails what is pending and says
//! why, once. It pings the server every [`PING_INTERVAL`], and a link that
//! brings no frame (a pong or anything else) for [`SILENCE_LIMIT`] while it
//! reads is dead: a cable pulled or a link down closes nothing, and TCP
//! alone would wait for minutes before it gives up.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::ack::PromptAck;
use super::{ConnectionError, LATENCY_TARGET};
use crate::backpressure::{Credit, CreditPool};
use crate::protocol::jsonrpc::{Incoming, RequestId, RpcError};
use crate::protocol::{ServerNotification, ServerRequest, ThreadId};

/// How often the worker pings the server. A ping is a few bytes, and the
/// server answers it without involving a turn; often enough that a silent
/// link is noticed within [`SILENCE_LIMIT`] plus one interval.
pub const PING_INTERVAL: Duration = Duration::from_millis(500);

/// A link that brings no frame for this long while the worker reads is
/// dead: four pings unanswered. A pong is one round trip, so this leaves a
/// slow network or a busy server well over a second; a false alarm costs
/// only a reconnect and a catch-up (nothing is lost), while a dead link
/// noticed late holds every run still for as long.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(2);

/// What the server sends us unasked.
#[derive(Debug, Clone)]
pub enum ServerEvent {
    Notification(ServerNotification),
    /// Must be answered with [`super::AppServerConnection::respond`] or
    /// [`super::AppServerConnection::respond_error`]: the turn waits until it is.
    Request(ServerRequest),
    /// The socket is gone; nothing follows.
    Disconnected {
        reason: String,
    },
}

pub(super) type Reply = oneshot::Sender<Result<Value, ConnectionError>>;

pub(super) enum Command {
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

pub(super) type Subscriptions = Arc<Mutex<HashSet<ThreadId>>>;

/// What the worker shares with the handles.
pub(super) struct WorkerShared {
    pub(super) closed: Arc<Mutex<Option<String>>>,
    pub(super) subscribed: Subscriptions,
    pub(super) credits: CreditPool,
}

pub(super) struct Worker<S> {
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

impl<S: AsyncRead + AsyncWrite + Unpin + PromptAck> Worker<S> {
    pub(super) fn new(
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

    pub(super) async fn run(mut self) {
        // The first ping one interval in, not at once: the link has just
        // answered the upgrade, and a pong racing the first answers (which
        // Codex may write in two parts) is only a chance of a delayed-ACK
        // wait on the call a fresh sidecar is timed by (B7).
        let mut pings =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // When a frame last came in, or the worker last chose not to read
        // (frames it does not read say nothing about the link).
        let mut heard = Instant::now();
        let reason = loop {
            let may_read = self.may_read();
            let wants_credit = self.credit.is_none();
            let overflowing = !self.overflow.is_empty();
            if !may_read {
                heard = Instant::now();
            }
            tokio::select! {
                _ = pings.tick() => {
                    if heard.elapsed() >= SILENCE_LIMIT {
                        break format!(
                            "the link went silent: no frame or pong from the app-server in {:?}",
                            heard.elapsed()
                        );
                    }
                    if let Err(error) = self.socket.send(Message::Ping(Default::default())).await {
                        break format!("the connection broke: {error}");
                    }
                }
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
                frame = self.socket.next(), if may_read => {
                    heard = Instant::now();
                    match frame {
                    Some(Ok(Message::Text(text))) => {
                        if !self.pending.is_empty() {
                            self.socket.get_ref().ack_promptly();
                        }
                        self.handle_frame(text.as_str()).await
                    }
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
                    // Pongs only count as heard; pings are answered by
                    // tungstenite itself.
                    Some(Ok(_)) => {}
                    Some(Err(error)) => break format!("the connection broke: {error}"),
                    None => break "the app-server closed the connection".to_string(),
                    }
                }
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
        let sent = self
            .socket
            .send(Message::text(frame))
            .await
            .map_err(|error| format!("sending to the app-server failed: {error}"));
        // Its answer may come in parts: acknowledge the first at once.
        if !self.pending.is_empty() {
            self.socket.get_ref().ack_promptly();
        }
        sent
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
