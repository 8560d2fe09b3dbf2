//! What the scripted model answers, and how a request names it: a `SCRIPT{…}`
//! marker in the last user message of the Responses-API request.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Prefix of a marker; the script's JSON object follows it directly.
const MARKER_PREFIX: &str = "SCRIPT";

/// How the model answers one request. The JSON shapes are kept short because
/// people type them into prompts; each variant is told apart by its keys.
///
/// | behaviour | marker JSON |
/// |---|---|
/// | plain text | `{"text":"hello"}` |
/// | streamed deltas | `{"stream":["a","b"],"delay_ms":200}` |
/// | `exec_command`, then a final answer | `{"exec":"touch x","then":"done"}` (+ `"escalate":true`) |
/// | any tool call, then a final answer | `{"call":"request_permissions","arguments":{…},"then":"done"}` |
/// | HTTP error | `{"http_error":500}` |
/// | stream cut mid-answer | `{"cut":"partial"}` |
/// | never-ending stream | `{"hang":true}` |
/// | echo every user message | `{"echo_history":true}` |
///
/// Unknown keys are rejected, so a typo makes the marker malformed (and the
/// request gets the default answer) rather than silently meaning something
/// else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Script {
    /// One finished assistant message.
    Text { text: String },
    /// The parts as `response.output_text.delta` events, each after
    /// `delay_ms`; a long delay keeps the turn running.
    Stream {
        stream: Vec<String>,
        #[serde(default)]
        delay_ms: u64,
    },
    /// An `exec_command` call running `exec`; once Codex posts the call's
    /// output, the answer is `then`. `escalate` asks to run outside the
    /// sandbox, which makes Codex ask for approval under `untrusted` /
    /// `on-request`.
    Exec {
        exec: String,
        then: String,
        #[serde(default, skip_serializing_if = "is_false")]
        escalate: bool,
    },
    /// A call of the tool named `call` with these JSON `arguments` (Codex
    /// tools such as `request_permissions` or `request_user_input`); once
    /// Codex posts the call's output, the answer is `then`.
    Call {
        call: String,
        /// The namespace of a tool Codex lists inside one (MCP servers'
        /// tools: `mcp__<server>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        arguments: Value,
        then: String,
    },
    /// An HTTP error with this status and a JSON error body.
    HttpError { http_error: u16 },
    /// `response.created` and a delta of this text, then the body breaks off
    /// without `response.completed`.
    Cut { cut: String },
    /// `response.created`, then an open stream with no more events until the
    /// client goes away. The flag's value is ignored.
    Hang { hang: bool },
    /// The texts of all user messages in the request, in order, one per line.
    /// The flag's value is ignored.
    EchoHistory { echo_history: bool },
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

impl Script {
    pub fn text(text: impl Into<String>) -> Script {
        Script::Text { text: text.into() }
    }

    pub fn stream(parts: &[&str], delay_ms: u64) -> Script {
        Script::Stream {
            stream: parts.iter().map(|part| (*part).to_owned()).collect(),
            delay_ms,
        }
    }

    pub fn exec(command: impl Into<String>, then: impl Into<String>) -> Script {
        Script::Exec {
            exec: command.into(),
            then: then.into(),
            escalate: false,
        }
    }

    /// Like [`Script::exec`], but the call asks to run outside the sandbox.
    pub fn exec_escalated(command: impl Into<String>, then: impl Into<String>) -> Script {
        Script::Exec {
            exec: command.into(),
            then: then.into(),
            escalate: true,
        }
    }

    pub fn call(tool: impl Into<String>, arguments: Value, then: impl Into<String>) -> Script {
        Script::Call {
            call: tool.into(),
            namespace: None,
            arguments,
            then: then.into(),
        }
    }

    /// A call of `tool` of the MCP server Codex knows as `server`.
    pub fn mcp_call(
        server: &str,
        tool: impl Into<String>,
        arguments: Value,
        then: impl Into<String>,
    ) -> Script {
        Script::Call {
            call: tool.into(),
            namespace: Some(format!("mcp__{server}")),
            arguments,
            then: then.into(),
        }
    }

    pub fn http_error(status: u16) -> Script {
        Script::HttpError { http_error: status }
    }

    pub fn cut(partial: impl Into<String>) -> Script {
        Script::Cut {
            cut: partial.into(),
        }
    }

    pub fn hang() -> Script {
        Script::Hang { hang: true }
    }

    pub fn echo_history() -> Script {
        Script::EchoHistory { echo_history: true }
    }

    /// `SCRIPT` followed by this script's compact JSON, to put in a prompt.
    pub fn marker(&self) -> String {
        // Serialising these plain strings, numbers and bools cannot fail; the
        // empty object only keeps this infallible, and parses as no script.
        let json = serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"));
        format!("{MARKER_PREFIX}{json}")
    }

    /// The script named by the last marker in `text`. Text after the JSON is
    /// ignored. A malformed last marker means no script (the default answer):
    /// falling back to an earlier marker would answer with something the
    /// prompt's author did not ask for last.
    pub fn find_in(text: &str) -> Option<Script> {
        let needle = format!("{MARKER_PREFIX}{{");
        let start = text.rfind(&needle)? + MARKER_PREFIX.len();
        serde_json::Deserializer::from_str(&text[start..])
            .into_iter::<Script>()
            .next()?
            .ok()
    }

    /// The script of a Responses-API request body: the marker in its last
    /// user message.
    pub fn from_request(body: &Value) -> Option<Script> {
        let last = user_message_texts(body).pop()?;
        Script::find_in(&last)
    }
}

/// The text of every user message in a request's `input`, in order. A message
/// with several `input_text` parts is joined by newlines.
pub fn user_message_texts(body: &Value) -> Vec<String> {
    let Some(items) = body.get("input").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|item| {
            item.get("type")
                .and_then(Value::as_str)
                .unwrap_or("message")
                == "message"
                && item.get("role").and_then(Value::as_str) == Some("user")
        })
        .map(|item| match item.get("content") {
            // The Responses API also accepts a bare string as content.
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter(|part| part.get("type").and_then(Value::as_str) == Some("input_text"))
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .collect()
}

/// Whether the request continues after a tool call: its last input item is
/// the call's output.
pub fn is_tool_follow_up(body: &Value) -> bool {
    body.get("input")
        .and_then(Value::as_array)
        .and_then(|items| items.last())
        .and_then(|item| item.get("type"))
        .and_then(Value::as_str)
        == Some("function_call_output")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(text: &str) -> Value {
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    }

    fn request(items: Vec<Value>) -> Value {
        json!({"model": "mock-model", "stream": true, "input": items})
    }

    #[test]
    fn markers_round_trip_for_every_behaviour() {
        let scripts = [
            Script::text("hello"),
            Script::stream(&["a", "b"], 200),
            Script::exec("touch x", "done"),
            Script::exec_escalated("touch x", "done"),
            Script::http_error(500),
            Script::cut("partial"),
            Script::hang(),
            Script::echo_history(),
        ];
        for script in scripts {
            let prompt = format!("please {} thanks", script.marker());
            assert_eq!(Script::find_in(&prompt), Some(script));
        }
    }

    #[test]
    fn marker_json_is_short_and_compact() {
        assert_eq!(Script::text("hello").marker(), r#"SCRIPT{"text":"hello"}"#);
        assert_eq!(
            Script::stream(&["a", "b"], 200).marker(),
            r#"SCRIPT{"stream":["a","b"],"delay_ms":200}"#
        );
        assert_eq!(
            Script::exec("ls", "ok").marker(),
            r#"SCRIPT{"exec":"ls","then":"ok"}"#
        );
    }

    #[test]
    fn the_last_user_message_wins() {
        let body = request(vec![
            user(&Script::text("first").marker()),
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "SCRIPT{\"text\":\"assistant\"}"}]}),
            user(&format!("again {}", Script::text("second").marker())),
        ]);
        assert_eq!(Script::from_request(&body), Some(Script::text("second")));
    }

    #[test]
    fn an_unmarked_last_user_message_has_no_script() {
        let body = request(vec![user(&Script::text("first").marker()), user("plain")]);
        assert_eq!(Script::from_request(&body), None);
    }

    #[test]
    fn the_last_marker_in_the_message_wins_and_trailing_text_is_ignored() {
        let text = r#"SCRIPT{"text":"one"} then SCRIPT{"text":"two"} and {"more": 1} }"#;
        assert_eq!(Script::find_in(text), Some(Script::text("two")));
    }

    #[test]
    fn no_marker_means_no_script() {
        assert_eq!(Script::find_in("just a prompt"), None);
        assert_eq!(Script::find_in("SCRIPT without json"), None);
        assert_eq!(Script::from_request(&request(vec![])), None);
        assert_eq!(Script::from_request(&Value::Null), None);
    }

    #[test]
    fn a_malformed_last_marker_means_no_script() {
        assert_eq!(
            Script::find_in(r#"SCRIPT{"text":"ok"} SCRIPT{"text":"#),
            None
        );
        assert_eq!(Script::find_in(r#"SCRIPT{"txet":"typo"}"#), None);
        assert_eq!(Script::find_in(r#"SCRIPT{"text":"x","delay_ms":3}"#), None);
    }

    #[test]
    fn defaults_apply_to_optional_keys() {
        assert_eq!(
            Script::find_in(r#"SCRIPT{"stream":["a"]}"#),
            Some(Script::stream(&["a"], 0))
        );
        assert_eq!(
            Script::find_in(r#"SCRIPT{"exec":"ls","then":"ok","escalate":true}"#),
            Some(Script::exec_escalated("ls", "ok"))
        );
    }

    #[test]
    fn user_texts_skip_other_roles_and_join_parts() {
        let body = request(vec![
            json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"}]}),
            json!({"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "a"},
                {"type": "input_image", "image_url": "x"},
                {"type": "input_text", "text": "b"}
            ]}),
            json!({"type": "function_call_output", "call_id": "c", "output": "out"}),
        ]);
        assert_eq!(user_message_texts(&body), vec!["a\nb".to_owned()]);
        assert!(is_tool_follow_up(&body));
        assert!(!is_tool_follow_up(&request(vec![user("x")])));
    }
}
