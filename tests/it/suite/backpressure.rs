//! Backpressure from the disk to the app-server's socket (issue 14 item 6):
//! events held downstream stop the reads, and nothing is lost once they
//! move again. A real app-server cannot flood on demand, so these use a
//! fake one: a WebSocket server on a Unix socket in a temporary directory,
//! whose writer counts the frames the kernel took from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use codex_mcp_sidecar::appserver::{AppServerConnection, ConnectOptions, ServerEvent};
use codex_mcp_sidecar::backpressure::EVENT_CREDITS;
use codex_mcp_sidecar::store::{self, AuditEvent, RunPaths, RunStatus};
use futures_util::{SinkExt, StreamExt};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::common::EVENT_TIMEOUT;
use crate::common::engine::{EngineRig, SLICE};

/// Far more than the credits, and with padded frames far more bytes than
/// a Unix socket buffers, so a reader that stops leaves the fake server's
/// writes blocked well before the end.
const FLOOD: usize = EVENT_CREDITS * 8;
/// Padding of each delta: about 1 KB a frame, 8 MB a flood.
const DELTA_PADDING: usize = 1000;
/// How long the fake server's count must stand still to call its writes
/// blocked: a reader that goes on would move it within milliseconds even on
/// a loaded machine.
const STALL: Duration = Duration::from_secs(1);
/// Waiting for something that happens at once unless the code is wrong;
/// generous for a loaded machine.
const PROMPT: Duration = Duration::from_secs(20);

/// A fake `codex app-server`: answers `initialize`, `thread/start`,
/// `turn/start` (and anything else with `{}`), and floods on demand. Every
/// frame goes through one writer queue, so an answer queued after a flood
/// reaches the client only after the flood's frames.
struct FakeServer {
    url: String,
    /// Frames the writer has handed to the socket.
    sent: Arc<AtomicUsize>,
    frames: mpsc::UnboundedSender<String>,
    /// Thread and turn of each `turn/start`, in order.
    turns: mpsc::UnboundedReceiver<(String, String)>,
    _dir: TempDir,
}

impl FakeServer {
    async fn start() -> FakeServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app-server.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let sent = Arc::new(AtomicUsize::new(0));
        let (frames, mut queued) = mpsc::unbounded_channel::<String>();
        let (turn_tx, turns) = mpsc::unbounded_channel();
        let (counter, answers) = (sent.clone(), frames.clone());
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let socket = tokio_tungstenite::accept_async(stream).await.unwrap();
            let (mut writer, mut reader) = socket.split();
            tokio::spawn(async move {
                while let Some(frame) = queued.recv().await {
                    if writer.send(Message::text(frame)).await.is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
            let mut next = 0;
            while let Some(Ok(message)) = reader.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                let (Some(id), Some(method)) = (frame.get("id"), frame["method"].as_str()) else {
                    continue;
                };
                next += 1;
                let result = match method {
                    "initialize" => json!({ "userAgent": "fake-app-server/0" }),
                    "thread/start" => {
                        json!({ "thread": { "id": format!("thread-{next}") }, "model": "fake" })
                    }
                    "turn/start" => {
                        let thread = frame["params"]["threadId"].as_str().unwrap().to_string();
                        let turn = format!("turn-{next}");
                        let _ = turn_tx.send((thread, turn.clone()));
                        json!({ "turn": { "id": turn, "status": "inProgress", "items": [] } })
                    }
                    _ => json!({}),
                };
                let answer = json!({ "jsonrpc": "2.0", "id": id, "result": result });
                let _ = answers.send(answer.to_string());
            }
        });
        FakeServer {
            url: format!("unix://{}", path.display()),
            sent,
            frames,
            turns,
            _dir: dir,
        }
    }

    /// Queues `count` numbered deltas on a turn, then its `turn/completed`.
    fn flood(&self, thread: &str, turn: &str, count: usize) {
        let padding = "x".repeat(DELTA_PADDING);
        for n in 0..count {
            let delta = json!({
                "jsonrpc": "2.0",
                "method": "item/agentMessage/delta",
                "params": {
                    "threadId": thread, "turnId": turn, "itemId": "msg",
                    "delta": format!("{n} {padding}"),
                },
            });
            self.frames.send(delta.to_string()).unwrap();
        }
        let completed = json!({
            "jsonrpc": "2.0",
            "method": "turn/completed",
            "params": {
                "threadId": thread,
                "turn": { "id": turn, "status": "completed", "items": [] },
            },
        });
        self.frames.send(completed.to_string()).unwrap();
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Waits until the count stands still for [`STALL`]; returns it.
    async fn stalled(&self) -> usize {
        let deadline = tokio::time::Instant::now() + PROMPT;
        let mut last = self.sent();
        loop {
            tokio::time::sleep(STALL).await;
            let now = self.sent();
            if now == last {
                return now;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fake server's writes never stalled ({now} sent)"
            );
            last = now;
        }
    }
}

/// The delta's number, from the text the fake server put first.
fn delta_number(event: &ServerEvent) -> Option<usize> {
    match event {
        ServerEvent::Notification(note) if note.method == "item/agentMessage/delta" => note.params
            ["delta"]
            .as_str()?
            .split(' ')
            .next()?
            .parse()
            .ok(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_events_stop_the_reads_and_nothing_is_lost_when_they_move() {
    let server = FakeServer::start().await;
    let (_connection, mut events) =
        AppServerConnection::connect(ConnectOptions::new(server.url.clone(), None))
            .await
            .unwrap();
    server.flood("thread-x", "turn-x", FLOOD);

    // Hold every event, as a disk that takes none would.
    let mut held = Vec::new();
    while held.len() < EVENT_CREDITS {
        let event = tokio::time::timeout(PROMPT, events.recv())
            .await
            .expect("the credited events arrive")
            .unwrap();
        held.push(event);
    }
    let sent = server.stalled().await;
    assert!(
        sent < FLOOD,
        "the server's writes block while the events are held ({sent} of {FLOOD} sent)"
    );
    assert!(
        tokio::time::timeout(STALL, events.recv()).await.is_err(),
        "nothing is read beyond the credits while they are all held"
    );

    // The disk catches up: everything arrives, in order, once.
    let mut numbers: Vec<usize> = held.iter().filter_map(delta_number).collect();
    drop(held);
    let mut completed = false;
    while !completed {
        let event = tokio::time::timeout(EVENT_TIMEOUT, events.recv())
            .await
            .expect("the rest of the flood arrives")
            .unwrap();
        completed =
            matches!(&event, ServerEvent::Notification(note) if note.method == "turn/completed");
        numbers.extend(delta_number(&event));
    }
    assert_eq!(numbers, (0..FLOOD).collect::<Vec<_>>());
    assert_eq!(
        server.sent(),
        FLOOD + 2,
        "the initialize answer, the flood, its end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_behind_held_events_still_arrives() {
    let server = FakeServer::start().await;
    let (connection, mut events) =
        AppServerConnection::connect(ConnectOptions::new(server.url.clone(), None))
            .await
            .unwrap();
    server.flood("thread-x", "turn-x", FLOOD);
    let mut held = Vec::new();
    while held.len() < EVENT_CREDITS {
        let event = tokio::time::timeout(PROMPT, events.recv())
            .await
            .expect("the credited events arrive")
            .unwrap();
        held.push(event);
    }
    server.stalled().await;

    // An actor that awaits an answer while it holds events (its mailbox
    // full of them) must get it, or the two wait on each other: the answer
    // is queued behind the rest of the flood.
    let answered =
        tokio::time::timeout(PROMPT, connection.thread_read(&"thread-x".into(), false)).await;
    assert!(
        answered.is_ok(),
        "the answer behind held events arrives while they are still held"
    );
    drop(held);
    let mut rest = 0;
    while rest < FLOOD + 1 - EVENT_CREDITS {
        tokio::time::timeout(EVENT_TIMEOUT, events.recv())
            .await
            .expect("the rest arrives")
            .unwrap();
        rest += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_audit_stops_the_socket_and_every_notification_is_audited() {
    let mut server = FakeServer::start().await;
    let rig = EngineRig::start(&[("CODEX_MCP_WRAPPER_APP_SERVER_URL", &server.url)]).await;
    let started = rig.run("flood").await;
    let (thread, turn) = server.turns.recv().await.unwrap();
    let run_id = started.run_id.clone();
    let events_file = RunPaths::new(&rig.run_dir(), &run_id).events;

    // A disk that takes nothing: the audit writer appends under this lock.
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&events_file)
        .unwrap();
    let lock = Flock::lock(file, FlockArg::LockExclusive).unwrap();
    server.flood(&thread, &turn, FLOOD);
    let sent = server.stalled().await;
    assert!(
        sent < FLOOD,
        "a stuck audit stops the sidecar reading the socket ({sent} of {FLOOD} sent)"
    );
    let waited = rig.engine.wait(&started.run_id, Some(SLICE)).await.unwrap();
    assert!(
        !matches!(waited, codex_mcp_sidecar::actors::WaitOutcome::Finished(_)),
        "the run cannot end before its audit is written"
    );

    drop(lock);
    let result = rig.finish(&started).await;
    assert_eq!(result.status, RunStatus::Completed);
    let deltas = store::read_events(&rig.run_dir(), &run_id)
        .unwrap()
        .into_iter()
        .filter(|record| {
            matches!(&record.event, AuditEvent::Notification { method, .. }
                if method == "item/agentMessage/delta")
        })
        .count();
    assert_eq!(deltas, FLOOD, "every notification is audited");
    rig.stop().await;
}
