//! A raw MCP client of the built binary: it writes bytes to the server's
//! stdin and reads its stdout line by line, so a test can send what no SDK
//! would (broken framing, invalid UTF-8) and see every byte that comes back.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::EVENT_TIMEOUT;

pub struct RawMcp {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: i64,
    /// Every line the server wrote to stdout, as written.
    pub transcript: Vec<String>,
}

impl RawMcp {
    /// Spawns `command` (its environment and stderr set by the caller) with
    /// piped stdin and stdout, and does the MCP handshake.
    pub async fn spawn(command: Command) -> RawMcp {
        RawMcp::spawn_with(command, json!({})).await
    }

    /// [`Self::spawn`] declaring `capabilities` at `initialize`.
    pub async fn spawn_with(mut command: Command, capabilities: Value) -> RawMcp {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let mut client = RawMcp {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
            next_id: 1000,
            transcript: Vec::new(),
        };
        let init = client
            .request(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": capabilities,
                       "clientInfo": {"name": "raw-test-client", "version": "1"}}),
            )
            .await;
        assert!(init["result"]["serverInfo"].is_object(), "{init}");
        client
            .send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        client
    }

    /// Writes `line` and a newline.
    pub async fn send(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(line).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// The next response (a line with `result` or `error`); notifications
    /// and requests from the server are skipped.
    pub async fn response(&mut self) -> Value {
        let read = async {
            loop {
                let mut line = String::new();
                let read = self.stdout.read_line(&mut line).await.unwrap();
                assert!(read > 0, "the server closed stdout");
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|error| panic!("not JSON ({error}): {line:.300}"));
                self.transcript.push(line);
                if value.get("result").is_some() || value.get("error").is_some() {
                    return value;
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, read)
            .await
            .expect("a response in time")
    }

    /// The first message the server wrote from transcript line `since` on
    /// (seen already, or read now, answering nothing) whose `method` is
    /// `method`: a request or a notification from the server.
    pub async fn server_message(&mut self, method: &str, since: usize) -> Value {
        let mut seen = since;
        let read = async {
            loop {
                for line in &self.transcript[seen..] {
                    let value: Value = serde_json::from_str(line).unwrap_or_default();
                    if value["method"] == method {
                        return value;
                    }
                }
                seen = self.transcript.len();
                let mut line = String::new();
                let read = self.stdout.read_line(&mut line).await.unwrap();
                assert!(read > 0, "the server closed stdout");
                self.transcript.push(line);
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| panic!("{method} from the server in time"))
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send(line.to_string().as_bytes()).await;
        let response = self.response().await;
        assert_eq!(response["id"], id, "{response:.300}");
        response
    }

    pub async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await
    }

    /// A tool call that must succeed; its structured content.
    pub async fn call_ok(&mut self, tool: &str, arguments: Value) -> Value {
        let response = self.call(tool, arguments).await;
        assert_ne!(
            response["result"]["isError"], true,
            "{tool}: {response:.500}"
        );
        response["result"]["structuredContent"].clone()
    }

    pub async fn assert_alive(&mut self, after: &str) {
        let pong = self.request("ping", json!({})).await;
        assert!(pong["result"].is_object(), "no pong after {after}: {pong}");
    }

    /// Closes stdin and waits for the server to exit, successfully.
    pub async fn finish(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(EVENT_TIMEOUT, self.child.wait())
            .await
            .expect("the server exits when stdin closes")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}
