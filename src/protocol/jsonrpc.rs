//! JSON-RPC framing as the app-server speaks it: one message per WebSocket
//! text frame, `"jsonrpc": "2.0"` optional in both directions.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request id. We only send integers, but the server may use strings for
/// the requests it sends us, and we must echo them back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Integer(i64),
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Integer(id) => write!(f, "{id}"),
            RequestId::String(id) => f.write_str(id),
        }
    }
}

/// The error object of a JSON-RPC error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

/// Standard JSON-RPC code for "the method exists but we will not serve it";
/// used when declining a server request we have no handler for.
pub const METHOD_NOT_FOUND: i64 = -32601;

/// One message received from the server, classified by which fields it has.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `id` + `method`: the server asks us something and waits for an answer.
    Request {
        id: RequestId,
        method: String,
        params: Value,
    },
    /// `method` without `id`.
    Notification { method: String, params: Value },
    /// `id` + `result`.
    Response { id: RequestId, result: Value },
    /// `id` + `error`.
    Error { id: RequestId, error: RpcError },
}

/// Why a frame could not be read as a JSON-RPC message.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("frame is JSON but not a JSON-RPC message: {0}")]
    NotJsonRpc(String),
}

/// The fields every JSON-RPC message may carry; which ones are present
/// decides the kind. Unknown fields (`jsonrpc`, `trace`, …) are ignored.
#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<RpcError>,
}

impl Incoming {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Incoming, FrameError> {
        // serde reads a struct from a JSON array too, field by field in
        // order, so `["x","turn/completed"]` would be a request. A message
        // is an object; anything else is refused before serde sees it.
        if !text.trim_start().starts_with('{') {
            return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => Err(FrameError::NotJsonRpc(truncate(text))),
                Err(error) => Err(FrameError::NotJson(error)),
            };
        }
        let raw: RawMessage = serde_json::from_str(text)?;
        let params = raw.params.unwrap_or(Value::Null);
        match (raw.id, raw.method) {
            (Some(id), Some(method)) => Ok(Incoming::Request { id, method, params }),
            (None, Some(method)) => Ok(Incoming::Notification { method, params }),
            (Some(id), None) => match (raw.result, raw.error) {
                (_, Some(error)) => Ok(Incoming::Error { id, error }),
                (Some(result), None) => Ok(Incoming::Response { id, result }),
                // `"result": null` deserialises as None; it is still a success.
                (None, None) => Ok(Incoming::Response {
                    id,
                    result: Value::Null,
                }),
            },
            (None, None) => Err(FrameError::NotJsonRpc(truncate(text))),
        }
    }
}

/// Serialises a request we send.
pub fn request_frame(id: &RequestId, method: &str, params: &Value) -> String {
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
        .to_string()
}

/// Serialises a notification we send (`initialized`).
pub fn notification_frame(method: &str, params: Option<&Value>) -> String {
    match params {
        Some(params) => {
            serde_json::json!({ "jsonrpc": "2.0", "method": method, "params": params })
        }
        None => serde_json::json!({ "jsonrpc": "2.0", "method": method }),
    }
    .to_string()
}

/// Serialises our answer to a server request.
pub fn response_frame(id: &RequestId, result: &Value) -> String {
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string()
}

/// Serialises an error answer to a server request.
pub fn error_frame(id: &RequestId, error: &RpcError) -> String {
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error }).to_string()
}

/// Error messages quote the offending frame, but never a whole flood of it.
fn truncate(text: &str) -> String {
    const QUOTED_FRAME_LIMIT: usize = 200;
    crate::text::cut(text, QUOTED_FRAME_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_with_and_without_jsonrpc_field() {
        let request = Incoming::parse(r#"{"id":7,"method":"item/x","params":{"a":1}}"#).unwrap();
        assert_eq!(
            request,
            Incoming::Request {
                id: RequestId::Integer(7),
                method: "item/x".into(),
                params: json!({"a":1})
            }
        );
        let note = Incoming::parse(r#"{"jsonrpc":"2.0","method":"turn/started"}"#).unwrap();
        assert_eq!(
            note,
            Incoming::Notification {
                method: "turn/started".into(),
                params: Value::Null
            }
        );
        let null_result = Incoming::parse(r#"{"id":"a","result":null}"#).unwrap();
        assert_eq!(
            null_result,
            Incoming::Response {
                id: RequestId::String("a".into()),
                result: Value::Null
            }
        );
        let error = Incoming::parse(r#"{"id":3,"error":{"code":-32600,"message":"bad"}}"#).unwrap();
        assert!(matches!(error, Incoming::Error { error, .. } if error.message == "bad"));
    }

    #[test]
    fn rejects_frames_that_are_not_messages() {
        assert!(matches!(
            Incoming::parse("not json"),
            Err(FrameError::NotJson(_))
        ));
        let long = format!(r#"{{"x":"{}"}}"#, "y".repeat(1000));
        match Incoming::parse(&long) {
            Err(FrameError::NotJsonRpc(quoted)) => assert!(quoted.chars().count() <= 201),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Found by the property tests: serde reads a struct from an array,
    /// field by field, so an array frame used to decode as a message.
    #[test]
    fn an_array_is_not_a_message() {
        for frame in [r#"[""]"#, r#"[7,"turn/completed",{}]"#, " [1]", "[]"] {
            assert!(
                matches!(Incoming::parse(frame), Err(FrameError::NotJsonRpc(_))),
                "{frame}"
            );
        }
        assert!(matches!(
            Incoming::parse("[1,"),
            Err(FrameError::NotJson(_))
        ));
    }

    #[test]
    fn string_ids_round_trip_unchanged() {
        let id = RequestId::String("srv-1".into());
        let frame: Value = serde_json::from_str(&response_frame(&id, &json!({}))).unwrap();
        assert_eq!(frame["id"], json!("srv-1"));
    }
}
