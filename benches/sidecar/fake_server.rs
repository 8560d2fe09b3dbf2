//! A fake `codex app-server` for B5: a WebSocket server on a Unix socket
//! that speaks just enough of the protocol for a sidecar to start runs
//! (`initialize`, `thread/start`, `turn/start`), then, when told, floods the
//! runs' turns with `item/agentMessage/delta` notifications and ends each
//! with `turn/completed`. No model, no Codex: only the sidecar's side of the
//! wire is under load.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::BenchResult;

/// What the flood sends once every run's turn has started.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    pub runs: usize,
    /// Deltas per run; each run then gets one `turn/completed`.
    pub deltas_per_run: usize,
}

pub struct FakeAppServer {
    /// `unix://PATH`, as `CODEX_MCP_WRAPPER_APP_SERVER_URL` takes it.
    pub url: String,
    go: watch::Sender<bool>,
    accept: JoinHandle<()>,
    _dir: TempDir,
}

struct Shared {
    flood: Flood,
    go: watch::Receiver<bool>,
    next_id: AtomicU64,
}

impl FakeAppServer {
    pub async fn start(flood: Flood) -> BenchResult<FakeAppServer> {
        let dir = tempfile::tempdir()?;
        let path: PathBuf = dir.path().join("fake-app-server.sock");
        let listener = UnixListener::bind(&path)?;
        let (go, going) = watch::channel(false);
        let shared = Arc::new(Shared {
            flood,
            go: going,
            next_id: AtomicU64::new(1),
        });
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve(stream, shared).await {
                        eprintln!("fake app-server connection: {error}");
                    }
                });
            }
        });
        Ok(FakeAppServer {
            url: format!("unix://{}", path.display()),
            go,
            accept,
            _dir: dir,
        })
    }

    /// Lets the connection that started every run's turn flood them.
    pub fn flood_now(&self) {
        self.go.send_replace(true);
    }

    pub fn stop(self) {
        self.accept.abort();
    }
}

/// One client connection: answers requests; floods once all turns started
/// here and the go is given.
async fn serve(stream: UnixStream, shared: Arc<Shared>) -> BenchResult<()> {
    let mut socket = tokio_tungstenite::accept_async(stream).await?;
    let mut turns: Vec<(String, String)> = Vec::new();
    let mut go = shared.go.clone();
    let mut flooded = false;
    loop {
        let ready = !flooded && turns.len() == shared.flood.runs;
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if let Some(reply) = answer(text.as_str(), &mut turns, &shared) {
                        socket.send(Message::text(reply)).await?;
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
            },
            given = async { go.wait_for(|go| *go).await.is_ok() }, if ready => {
                if !given {
                    return Err("the bench went away before the flood".into());
                }
                flooded = true;
                flood(&mut socket, &turns, shared.flood.deltas_per_run).await?;
            }
        }
    }
}

/// The answer to a request, if the frame is one.
fn answer(text: &str, turns: &mut Vec<(String, String)>, shared: &Shared) -> Option<String> {
    let frame: Value = serde_json::from_str(text).ok()?;
    let id = frame.get("id")?.clone();
    let method = frame.get("method")?.as_str()?;
    let fresh = || shared.next_id.fetch_add(1, Ordering::Relaxed);
    let result = match method {
        "initialize" => json!({ "userAgent": "fake-app-server/0" }),
        "thread/start" => {
            json!({ "thread": { "id": format!("thread-{}", fresh()) }, "model": "fake" })
        }
        "turn/start" => {
            let thread_id = frame["params"]["threadId"].as_str()?.to_string();
            let turn_id = format!("turn-{}", fresh());
            turns.push((thread_id, turn_id.clone()));
            json!({ "turn": { "id": turn_id, "status": "inProgress", "items": [] } })
        }
        _ => json!({}),
    };
    Some(json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string())
}

/// Every run's deltas, round-robin across the runs as concurrent turns
/// interleave, then each run's `turn/completed`. Frames are queued and
/// flushed in batches, so the sender is never the slow side.
async fn flood(
    socket: &mut WebSocketStream<UnixStream>,
    turns: &[(String, String)],
    deltas_per_run: usize,
) -> BenchResult<()> {
    for n in 0..deltas_per_run {
        for (thread_id, turn_id) in turns {
            let frame = format!(
                r#"{{"jsonrpc":"2.0","method":"item/agentMessage/delta","params":{{"threadId":"{thread_id}","turnId":"{turn_id}","itemId":"msg-{turn_id}","delta":"d{n} "}}}}"#
            );
            socket.feed(Message::text(frame)).await?;
        }
    }
    for (thread_id, turn_id) in turns {
        let frame = json!({
            "jsonrpc": "2.0",
            "method": "turn/completed",
            "params": {
                "threadId": thread_id,
                "turn": { "id": turn_id, "status": "completed", "items": [] },
            },
        });
        socket.feed(Message::text(frame.to_string())).await?;
    }
    socket.flush().await?;
    Ok(())
}
