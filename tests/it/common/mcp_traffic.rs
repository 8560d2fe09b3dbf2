//! What an MCP client and the sidecar said to each other, seen from outside
//! both: a wrapper script, given to the client as the server's command,
//! copies every line each way into a log (and the server's stderr into a file
//! of its own) and runs the real server between them. A test then reads the
//! messages in order, to check what the client declared, asked and answered.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The wrapper: each stdin line goes to the log as `<< LINE`, each stdout
/// line as `>> LINE`, through `sed -u` so lines are whole; the server's
/// stderr goes to its own file. The pipeline ends when the client closes
/// stdin: `tee` ends, the server reads EOF and exits, its stdout closes.
const WRAPPER: &str = r#"#!/bin/bash
# Logs the MCP traffic of the server it runs (see tests/it/common/mcp_traffic.rs).
tee >(sed -u 's/^/<< /' >> "$MCP_TRAFFIC_LOG") \
  | "$@" 2>> "$MCP_SERVER_STDERR" \
  | tee >(sed -u 's/^/>> /' >> "$MCP_TRAFFIC_LOG")
"#;

/// A wrapper and its two logs, in a directory of the test's.
pub struct TrafficLog {
    pub wrapper: PathBuf,
    pub log: PathBuf,
    pub stderr: PathBuf,
}

impl TrafficLog {
    pub fn new(dir: &Path) -> TrafficLog {
        use std::os::unix::fs::PermissionsExt;
        let wrapper = dir.join("mcp-traffic.sh");
        std::fs::write(&wrapper, WRAPPER).unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        TrafficLog {
            wrapper,
            log: dir.join("mcp-traffic.log"),
            stderr: dir.join("mcp-server.stderr"),
        }
    }

    /// An MCP server entry (Claude Code's `mcpServers` shape) that runs
    /// `command` through the wrapper, with `env` plus the wrapper's own.
    pub fn server(&self, command: &Path, env: &serde_json::Map<String, Value>) -> Value {
        let mut env = env.clone();
        env.insert("MCP_TRAFFIC_LOG".into(), path_value(&self.log));
        env.insert("MCP_SERVER_STDERR".into(), path_value(&self.stderr));
        serde_json::json!({
            "type": "stdio",
            "command": path_value(&self.wrapper),
            "args": [path_value(command)],
            "env": env,
        })
    }

    /// Every message so far, in the order the wrapper saw them.
    pub fn messages(&self) -> Vec<Message> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(Message::parse).collect()
    }

    /// The messages, one per line, cut short and without `_meta` (Claude
    /// Code repeats its capabilities in every request), for failure messages.
    /// A run of lines that differ only in ids and times (a task polled every
    /// second) shows once, with its count.
    pub fn summary(&self) -> String {
        let mut lines: Vec<(String, String, usize)> = Vec::new();
        for message in self.messages() {
            let mut body = message.body.clone();
            if let Some(params) = body.get_mut("params").and_then(Value::as_object_mut) {
                params.remove("_meta");
            }
            let text = format!("{} {body}", message.direction.arrow());
            let cut: String = text.chars().take(SUMMARY_CHARS).collect();
            let key = without_noise(&body);
            match lines
                .iter_mut()
                .rev()
                .take(2)
                .find(|(seen, _, _)| *seen == key)
            {
                Some((_, _, count)) => *count += 1,
                None => lines.push((key, cut, 1)),
            }
        }
        lines
            .into_iter()
            .map(|(_, line, count)| match count {
                1 => format!("{line}\n"),
                count => format!("{line} (×{count})\n"),
            })
            .collect()
    }

    /// How many requests named `method` the client sent.
    pub fn client_requests(&self, method: &str) -> usize {
        self.messages()
            .iter()
            .filter(|message| {
                message.direction == Direction::ToServer && message.method() == Some(method)
            })
            .count()
    }

    /// How many of the server's answers gave a task in `status`.
    pub fn task_answers(&self, status: &str) -> usize {
        self.messages()
            .iter()
            .filter(|message| {
                message.direction == Direction::ToClient
                    && message.body["result"]["status"] == status
                    && message.body["result"]["taskId"].is_string()
            })
            .count()
    }

    /// What the server wrote to stderr (its tracing log).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// How much of each message [`TrafficLog::summary`] keeps: enough for the
/// method, ids and the start of the params.
const SUMMARY_CHARS: usize = 400;

/// A message without what changes between two polls of the same state: its
/// id and its times.
fn without_noise(body: &Value) -> String {
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        object.remove("id");
    }
    if let Some(result) = body.get_mut("result").and_then(Value::as_object_mut) {
        result.remove("lastUpdatedAt");
    }
    body.to_string()
}

fn path_value(path: &Path) -> Value {
    Value::String(path.display().to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

impl Direction {
    fn arrow(self) -> &'static str {
        match self {
            Direction::ToServer => "<<",
            Direction::ToClient => ">>",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Message {
    pub direction: Direction,
    pub body: Value,
}

impl Message {
    fn parse(line: &str) -> Option<Message> {
        let (direction, json) = if let Some(json) = line.strip_prefix("<< ") {
            (Direction::ToServer, json)
        } else {
            (Direction::ToClient, line.strip_prefix(">> ")?)
        };
        Some(Message {
            direction,
            body: serde_json::from_str(json).ok()?,
        })
    }

    pub fn method(&self) -> Option<&str> {
        self.body["method"].as_str()
    }

    /// The capabilities a client request declares: in `_meta` on protocol
    /// 2026-07-28, in `initialize`'s params before it.
    pub fn client_capabilities(&self) -> Option<&Value> {
        let params = &self.body["params"];
        let meta = &params["_meta"]["io.modelcontextprotocol/clientCapabilities"];
        if meta.is_object() {
            return Some(meta);
        }
        (self.method() == Some("initialize")).then_some(&params["capabilities"])
    }

    /// The protocol version a client request names.
    pub fn protocol_version(&self) -> Option<&str> {
        let params = &self.body["params"];
        params["_meta"]["io.modelcontextprotocol/protocolVersion"]
            .as_str()
            .or_else(|| params["protocolVersion"].as_str())
    }
}

/// A question for the person found in the traffic, however it travelled.
#[derive(Clone, Debug)]
pub struct Question {
    /// `elicitation/create`'s params.
    pub params: Value,
    pub how: Carrier,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// A request of the server's own (protocol before 2026-07-28).
    Request,
    /// In a task's `inputRequests` (`tasks/get` answering `input_required`).
    Task,
    /// In a call's `input_required` result (MRTR).
    CallResult,
}

/// Every `elicitation/create` the server sent, in order. A task's question
/// is shown by every `tasks/get` while it waits; it counts once per key.
pub fn questions(messages: &[Message]) -> Vec<Question> {
    let mut found = Vec::new();
    let mut task_keys = std::collections::BTreeSet::new();
    for message in messages
        .iter()
        .filter(|message| message.direction == Direction::ToClient)
    {
        if message.method() == Some("elicitation/create") {
            found.push(Question {
                params: message.body["params"].clone(),
                how: Carrier::Request,
            });
            continue;
        }
        let result = &message.body["result"];
        let Some(requests) = result["inputRequests"].as_object() else {
            continue;
        };
        let how = if result["status"] == "input_required" {
            Carrier::Task
        } else {
            Carrier::CallResult
        };
        for (key, request) in requests {
            if request["method"] != "elicitation/create" {
                continue;
            }
            if how == Carrier::Task
                && !task_keys.insert((result["taskId"].to_string(), key.clone()))
            {
                continue;
            }
            found.push(Question {
                params: request["params"].clone(),
                how: how.clone(),
            });
        }
    }
    found
}

/// Every answer the client gave to a question, in order: the result of a
/// request of the server's, or a value of `inputResponses` (in `tasks/update`
/// or a retried call).
pub fn answers(messages: &[Message]) -> Vec<Value> {
    let mut found = Vec::new();
    for message in messages
        .iter()
        .filter(|message| message.direction == Direction::ToServer)
    {
        let body = &message.body;
        if let Some(responses) = body["params"]["inputResponses"].as_object() {
            found.extend(responses.values().cloned());
        } else if body.get("method").is_none() && body["result"]["action"].is_string() {
            found.push(body["result"].clone());
        }
    }
    found
}
