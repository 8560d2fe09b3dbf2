//! The line framing of MCP over stdio, checked before rmcp reads a line.
//!
//! rmcp drops a line that is not JSON without a word (and so leaves a
//! client that sent a request waiting forever), and treats a request
//! without an id as a notification it never answers. JSON-RPC 2.0 says to
//! answer both: this guard sits between stdin/stdout and rmcp, answers
//! every line it refuses with a JSON-RPC error, and passes the rest
//! through unchanged. Its answers and rmcp's are written whole lines each,
//! never interleaved.
//!
//! What is refused, and with which code:
//! - not UTF-8, not JSON (a truncated object, say): `-32700` (parse error);
//! - a batch (a JSON array), anything but an object, a request method
//!   without an id, a line over [`MAX_LINE_BYTES`]: `-32600` (invalid
//!   request).
//!
//! The id of the refused line is echoed when it can be read, `null`
//! otherwise. Nothing of a refused line is logged but its length and why.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// JSON-RPC 2.0: the line is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: JSON, but not a message we can take.
pub const INVALID_REQUEST: i64 = -32600;

/// rmcp's own limit for one incoming line (newline included): past it rmcp
/// drops the line unanswered, so the guard refuses it first. 16 MiB holds
/// Codex's longest prompt (1 << 20 characters) even at 4 bytes each and
/// escaped.
pub const MAX_LINE_BYTES: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;

/// The pipes between the guard and rmcp. Big enough for a burst of
/// messages, small against the 16 MiB a line may be (a long line streams).
const PIPE_BYTES: usize = 256 * 1024;

/// Refused lines waiting for the writer. A client that floods bad lines
/// waits for their answers to be written, which is the back-pressure it
/// should get.
const REFUSALS_QUEUED: usize = 64;

/// A method named in an error is cut to this many characters.
const QUOTED_METHOD_CHARS: usize = 64;

/// What to do with one line (without its `\n`).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// rmcp reads it.
    Pass,
    /// Answer with this JSON-RPC error response instead.
    Refuse(Value),
}

/// Decides about one line, without its `\n`. Pure, so it is fuzzed and
/// property-tested as it is.
pub fn classify(line: &[u8]) -> Verdict {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // rmcp ignores a byte-order mark, as RFC 8259 allows.
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Pass;
    }
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(error) => {
            // The id may still be readable around the bad bytes.
            let lossy = String::from_utf8_lossy(line);
            let id = serde_json::from_str::<Value>(&lossy)
                .ok()
                .and_then(|value| readable_id(&value));
            return refuse(
                id,
                PARSE_ERROR,
                format!(
                    "Parse error: the line is not UTF-8 (bad byte at offset {})",
                    error.valid_up_to()
                ),
            );
        }
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => return refuse(None, PARSE_ERROR, format!("Parse error: {error}")),
    };
    let Value::Object(message) = &value else {
        let message = if value.is_array() {
            "Invalid Request: batches (JSON arrays) are not supported; send one message per line"
        } else {
            "Invalid Request: a message is a JSON object"
        };
        return refuse(None, INVALID_REQUEST, message.to_string());
    };
    match (message.get("method"), message.contains_key("id")) {
        // MCP's notifications are all `notifications/...`; anything else
        // without an id is a request that could never be answered.
        (Some(Value::String(method)), false) if !method.starts_with("notifications/") => refuse(
            None,
            INVALID_REQUEST,
            format!(
                "Invalid Request: {} is a request and needs an id",
                quoted(method)
            ),
        ),
        _ => Verdict::Pass,
    }
}

fn refuse(id: Option<Value>, code: i64, message: String) -> Verdict {
    Verdict::Refuse(json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": { "code": code, "message": message },
    }))
}

/// The message's id, when it is one JSON-RPC allows (a number or a string).
fn readable_id(value: &Value) -> Option<Value> {
    value
        .get("id")
        .filter(|id| id.is_number() || id.is_string())
        .cloned()
}

fn quoted(method: &str) -> String {
    match method.char_indices().nth(QUOTED_METHOD_CHARS) {
        Some((end, _)) => format!("{:?}…", &method[..end]),
        None => format!("{method:?}"),
    }
}

/// The guard's ends: rmcp reads `to_rmcp` and writes `from_rmcp`;
/// `writer` ends once rmcp's output is closed and every answer is written
/// (await it before exiting, or the last reply may be lost).
pub struct Guarded {
    pub to_rmcp: DuplexStream,
    pub from_rmcp: DuplexStream,
    pub writer: JoinHandle<()>,
}

/// Puts the guard between `input`/`output` (stdin/stdout) and rmcp.
pub fn guard<R, W>(input: R, output: W) -> Guarded
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (to_rmcp, guard_in) = tokio::io::duplex(PIPE_BYTES);
    let (from_rmcp, guard_out) = tokio::io::duplex(PIPE_BYTES);
    let (refusals, refused) = mpsc::channel(REFUSALS_QUEUED);
    tokio::spawn(read_lines(input, guard_in, refusals));
    let writer = tokio::spawn(write_lines(guard_out, refused, output));
    Guarded {
        to_rmcp,
        from_rmcp,
        writer,
    }
}

/// Reads `input` line by line (never holding more than one line of at most
/// [`MAX_LINE_BYTES`]), passes good lines to rmcp and refusals to the
/// writer. Ends at EOF, which rmcp then sees.
async fn read_lines<R: AsyncRead + Unpin>(
    input: R,
    mut rmcp: DuplexStream,
    refusals: mpsc::Sender<Value>,
) {
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    let mut oversized = false;
    loop {
        let (consumed, ended, eof) = match input.fill_buf().await {
            Ok([]) => (0, !line.is_empty() || oversized, true),
            Ok(available) => {
                let newline = available.iter().position(|&byte| byte == b'\n');
                let take = newline.map_or(available.len(), |at| at + 1);
                if !oversized && line.len() + take > MAX_LINE_BYTES {
                    oversized = true;
                    line = Vec::new();
                }
                if !oversized {
                    line.extend_from_slice(&available[..take]);
                }
                (take, newline.is_some(), false)
            }
            Err(error) => {
                tracing::warn!(%error, "reading stdin failed");
                break;
            }
        };
        input.consume(consumed);
        if ended {
            let verdict = if oversized {
                refuse(
                    None,
                    INVALID_REQUEST,
                    format!("Invalid Request: a message is at most {MAX_LINE_BYTES} bytes"),
                )
            } else {
                classify(line.strip_suffix(b"\n").unwrap_or(&line))
            };
            match verdict {
                Verdict::Pass if eof => {
                    // A last line without its newline: rmcp reads it too.
                    line.push(b'\n');
                    if rmcp.write_all(&line).await.is_err() {
                        break;
                    }
                }
                Verdict::Pass => {
                    if rmcp.write_all(&line).await.is_err() {
                        break;
                    }
                }
                Verdict::Refuse(answer) => {
                    tracing::warn!(
                        bytes = line.len(),
                        error = %answer["error"]["message"],
                        "refused a line on stdin"
                    );
                    if refusals.send(answer).await.is_err() {
                        break;
                    }
                }
            }
            line.clear();
            oversized = false;
        }
        if eof {
            break;
        }
    }
    // Dropping our end is rmcp's EOF.
    let _ = rmcp.shutdown().await;
}

/// Copies rmcp's output to `output` line by line, and writes each refusal
/// between two lines, never inside one.
async fn write_lines<W: AsyncWrite + Unpin>(
    rmcp: DuplexStream,
    mut refused: mpsc::Receiver<Value>,
    mut output: W,
) {
    let mut rmcp = BufReader::new(rmcp);
    let mut line = Vec::new();
    let mut waiting: Vec<Value> = Vec::new();
    let mut refusals_open = true;
    loop {
        tokio::select! {
            // `read_until` keeps what it read in `line` when the other
            // branch wins, and goes on from there on the next call.
            read = rmcp.read_until(b'\n', &mut line) => {
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.ends_with(b"\n") => {
                        if output.write_all(&line).await.is_err() {
                            return;
                        }
                        line.clear();
                        for answer in waiting.drain(..) {
                            if write_answer(&mut output, &answer).await.is_err() {
                                return;
                            }
                        }
                        if output.flush().await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                }
            }
            answer = refused.recv(), if refusals_open => match answer {
                Some(answer) if line.is_empty() => {
                    if write_answer(&mut output, &answer).await.is_err()
                        || output.flush().await.is_err()
                    {
                        return;
                    }
                }
                Some(answer) => waiting.push(answer),
                None => refusals_open = false,
            },
        }
    }
    // rmcp is done; answer what is left.
    while let Ok(answer) = refused.try_recv() {
        waiting.push(answer);
    }
    for answer in &waiting {
        if write_answer(&mut output, answer).await.is_err() {
            return;
        }
    }
    let _ = output.flush().await;
}

async fn write_answer<W: AsyncWrite + Unpin>(
    output: &mut W,
    answer: &Value,
) -> std::io::Result<()> {
    let mut bytes = answer.to_string().into_bytes();
    bytes.push(b'\n');
    output.write_all(&bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn error_of(line: &[u8]) -> (Value, i64, String) {
        match classify(line) {
            Verdict::Refuse(answer) => (
                answer["id"].clone(),
                answer["error"]["code"].as_i64().unwrap(),
                answer["error"]["message"].as_str().unwrap().to_string(),
            ),
            Verdict::Pass => panic!("passed: {}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn good_messages_pass() {
        for line in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#[..],
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            br#"{"jsonrpc":"2.0","id":"a","result":{}}"#,
            b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r",
            b"",
            b"   ",
        ] {
            assert_eq!(classify(line), Verdict::Pass, "{line:?}");
        }
    }

    #[test]
    fn bad_lines_get_the_json_rpc_error_they_deserve() {
        let (id, code, message) = error_of(b"not json");
        assert_eq!((id, code), (Value::Null, PARSE_ERROR));
        assert!(message.starts_with("Parse error"), "{message}");
        let (_, code, _) = error_of(br#"{"jsonrpc":"2.0","id":7,"method":"tools/li"#);
        assert_eq!(code, PARSE_ERROR);
        let (id, code, message) = error_of(b"{\"id\":7,\"method\":\"tools/call\",\"x\":\"\xff\"}");
        assert_eq!((id, code), (json!(7), PARSE_ERROR));
        assert!(message.contains("not UTF-8"), "{message}");
        let (_, code, message) = error_of(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
        assert_eq!(code, INVALID_REQUEST);
        assert!(message.contains("batches"), "{message}");
        let (_, code, _) = error_of(b"42");
        assert_eq!(code, INVALID_REQUEST);
        let (_, code, message) =
            error_of(br#"{"jsonrpc":"2.0","method":"tools/call","params":{}}"#);
        assert_eq!(code, INVALID_REQUEST);
        assert!(
            message.contains("\"tools/call\" is a request and needs an id"),
            "{message}"
        );
    }

    /// A stand-in for rmcp: echoes each line it reads, as a reply would be.
    async fn through_the_guard(input: Vec<u8>) -> String {
        let (mut client, server_stdin) = tokio::io::duplex(1 << 16);
        let (server_stdout, mut client_out) = tokio::io::duplex(1 << 16);
        let guarded = guard(server_stdin, server_stdout);
        let echo = tokio::spawn(async move {
            let mut from = BufReader::new(guarded.to_rmcp);
            let mut to = guarded.from_rmcp;
            let mut line = Vec::new();
            while from.read_until(b'\n', &mut line).await.unwrap() > 0 {
                to.write_all(b"{\"echo\":").await.unwrap();
                to.write_all(&line[..line.len() - 1]).await.unwrap();
                to.write_all(b"}\n").await.unwrap();
                line.clear();
            }
            drop(to);
            guarded.writer.await.unwrap();
        });
        client.write_all(&input).await.unwrap();
        drop(client);
        let mut output = String::new();
        client_out.read_to_string(&mut output).await.unwrap();
        echo.await.unwrap();
        output
    }

    #[tokio::test]
    async fn refusals_and_passed_lines_come_out_as_whole_lines() {
        let mut input = Vec::new();
        input.extend_from_slice(b"{\"id\":1,\"method\":\"ping\"}\n");
        input.extend_from_slice(b"garbage\n");
        input.extend_from_slice(&vec![b'x'; MAX_LINE_BYTES + 10]);
        input.extend_from_slice(b"\n{\"id\":2,\"method\":\"ping\"}");
        let output = through_the_guard(input).await;
        let lines: Vec<Value> = output
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "{output:.400}");
        let echoed: Vec<&Value> = lines
            .iter()
            .filter(|line| line.get("echo").is_some())
            .collect();
        assert_eq!(echoed.len(), 2);
        assert_eq!(
            echoed[1]["echo"]["id"], 2,
            "a last line without newline is read"
        );
        let codes: Vec<i64> = lines
            .iter()
            .filter_map(|line| line["error"]["code"].as_i64())
            .collect();
        assert_eq!(codes, [PARSE_ERROR, INVALID_REQUEST]);
    }
}
