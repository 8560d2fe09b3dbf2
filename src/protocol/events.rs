//! What the server sends us unasked: notifications, and requests that wait
//! for our answer (approvals and the like).
//!
//! Each keeps its raw `method` and `params`, because the audit stores events
//! exactly as received, and adds a typed view of the kinds this crate acts on.
//! A kind we do not know, or a known kind whose params no longer match our
//! types, is `Other`: kept, logged, never an error.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::ids::ThreadId;
use super::jsonrpc::RequestId;
use super::types::{ThreadItem, TokenUsage, Turn, TurnError};
use crate::backpressure::Credit;

/// A notification from the server.
#[derive(Debug, Clone)]
pub struct ServerNotification {
    pub method: String,
    pub params: Value,
    pub kind: NotificationKind,
    /// Its place between the socket and the disk ([`crate::backpressure`]).
    credit: Credit,
}

#[derive(Debug, Clone)]
pub enum NotificationKind {
    /// `turn/started`
    TurnStarted(TurnEvent),
    /// `turn/completed`: the turn is over, whatever its status.
    TurnCompleted(TurnEvent),
    /// `item/started`
    ItemStarted(ItemEvent),
    /// `item/completed`
    ItemCompleted(ItemEvent),
    /// `item/agentMessage/delta`
    AgentMessageDelta(AgentMessageDelta),
    /// `thread/tokenUsage/updated`
    TokenUsageUpdated(TokenUsageUpdated),
    /// `error`
    Error(ErrorEvent),
    /// `account/rateLimits/updated` (no thread: the account's)
    RateLimitsUpdated(super::limits::RateLimitsUpdated),
    /// `warning`
    Warning(super::limits::WarningNote),
    /// `configWarning` (no thread: the connection's)
    ConfigWarning(super::limits::ConfigWarningNote),
    Other,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnEvent {
    pub thread_id: ThreadId,
    pub turn: Turn,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemEvent {
    pub thread_id: ThreadId,
    pub turn_id: String,
    pub item: ThreadItem,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentMessageDelta {
    pub thread_id: ThreadId,
    pub turn_id: String,
    pub item_id: String,
    pub delta: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsageUpdated {
    pub thread_id: ThreadId,
    pub turn_id: String,
    pub token_usage: TokenUsage,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEvent {
    pub thread_id: ThreadId,
    pub turn_id: String,
    pub error: TurnError,
    #[serde(default)]
    pub will_retry: bool,
}

impl ServerNotification {
    pub fn new(method: String, params: Value) -> ServerNotification {
        let kind = match method.as_str() {
            "turn/started" => typed(&method, &params).map(NotificationKind::TurnStarted),
            "turn/completed" => typed(&method, &params).map(NotificationKind::TurnCompleted),
            "item/started" => typed(&method, &params).map(NotificationKind::ItemStarted),
            "item/completed" => typed(&method, &params).map(NotificationKind::ItemCompleted),
            "item/agentMessage/delta" => {
                typed(&method, &params).map(NotificationKind::AgentMessageDelta)
            }
            "thread/tokenUsage/updated" => {
                typed(&method, &params).map(NotificationKind::TokenUsageUpdated)
            }
            "error" => typed(&method, &params).map(NotificationKind::Error),
            "account/rateLimits/updated" => {
                typed(&method, &params).map(NotificationKind::RateLimitsUpdated)
            }
            "warning" => typed(&method, &params).map(NotificationKind::Warning),
            "configWarning" => typed(&method, &params).map(NotificationKind::ConfigWarning),
            _ => None,
        }
        .unwrap_or(NotificationKind::Other);
        ServerNotification {
            method,
            params,
            kind,
            credit: Credit::none(),
        }
    }

    /// Counts it against the connection's credits until the credit is
    /// taken and dropped, or the notification is.
    pub fn with_credit(mut self, credit: Credit) -> ServerNotification {
        self.credit = credit;
        self
    }

    /// Hands the credit on, to whoever writes the notification to disk.
    pub fn take_credit(&mut self) -> Credit {
        std::mem::take(&mut self.credit)
    }

    /// The thread this notification is about, when it names one. Read from
    /// the raw params so that routing works for kinds we do not model too.
    pub fn thread_id(&self) -> Option<&str> {
        thread_id_of(&self.params)
    }

    /// The turn this notification is about, when it names one.
    pub fn turn_id(&self) -> Option<&str> {
        turn_id_of(&self.params)
    }

    /// An `error` notification, whether or not its params match our type.
    pub fn is_error(&self) -> bool {
        self.method == "error"
    }

    /// `serverRequest/resolved`: the request another client of the thread
    /// answered (a person in the Codex terminal UI, say).
    pub fn resolved_request(&self) -> Option<RequestId> {
        if self.method != "serverRequest/resolved" {
            return None;
        }
        let id = self.params.get("requestId")?;
        serde_json::from_value(id.clone()).ok()
    }

    /// `item/started` of a file change. Read from the raw params, since the
    /// item's approval request needs its paths even when the rest of the
    /// event does not match our types.
    pub fn file_change_started(&self) -> Option<FileChangeStarted> {
        let item = &self.params["item"];
        if self.method != "item/started" || item["type"] != "fileChange" {
            return None;
        }
        let paths = item["changes"]
            .as_array()
            .map(|changes| {
                changes
                    .iter()
                    .filter_map(|change| change["path"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let item_id = item["id"].as_str()?.to_string();
        Some(FileChangeStarted { item_id, paths })
    }
}

/// A file change starting: its approval request names only the item, and
/// the caller wants the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChangeStarted {
    pub item_id: String,
    pub paths: Vec<String>,
}

/// A request from the server. It must be answered: the turn that sent it
/// waits until it is.
#[derive(Debug, Clone)]
pub struct ServerRequest {
    pub id: RequestId,
    pub method: String,
    pub params: Value,
    pub kind: ServerRequestKind,
    /// Its place between the socket and the disk ([`crate::backpressure`]).
    credit: Credit,
}

#[derive(Debug, Clone)]
pub enum ServerRequestKind {
    /// `item/commandExecution/requestApproval`
    CommandApproval(ApprovalParams),
    /// `item/fileChange/requestApproval`
    FileChangeApproval(ApprovalParams),
    /// `item/permissions/requestApproval`
    PermissionsApproval,
    /// `item/tool/requestUserInput`
    UserInput,
    /// `mcpServer/elicitation/request`
    McpElicitation,
    Other,
}

/// What the command and file-change approval requests share.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalParams {
    pub thread_id: ThreadId,
    pub turn_id: String,
    pub item_id: String,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Our answer to a command or file-change approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalDecision {
    Accept,
    AcceptForSession,
    /// Refuse this action; the turn goes on.
    Decline,
    /// Refuse and interrupt the turn.
    Cancel,
}

impl ApprovalDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDecision::Accept => "accept",
            ApprovalDecision::AcceptForSession => "acceptForSession",
            ApprovalDecision::Decline => "decline",
            ApprovalDecision::Cancel => "cancel",
        }
    }

    /// The `result` of the response to an approval request.
    pub fn to_result(self) -> Value {
        json!({ "decision": self.as_str() })
    }
}

impl ServerRequest {
    pub fn new(id: RequestId, method: String, params: Value) -> ServerRequest {
        let kind = match method.as_str() {
            "item/commandExecution/requestApproval" => {
                typed(&method, &params).map(ServerRequestKind::CommandApproval)
            }
            "item/fileChange/requestApproval" => {
                typed(&method, &params).map(ServerRequestKind::FileChangeApproval)
            }
            "item/permissions/requestApproval" => Some(ServerRequestKind::PermissionsApproval),
            "item/tool/requestUserInput" => Some(ServerRequestKind::UserInput),
            "mcpServer/elicitation/request" => Some(ServerRequestKind::McpElicitation),
            _ => None,
        }
        .unwrap_or(ServerRequestKind::Other);
        ServerRequest {
            id,
            method,
            params,
            kind,
            credit: Credit::none(),
        }
    }

    /// Counts it against the connection's credits until the credit is
    /// taken and dropped, or the request is.
    pub fn with_credit(mut self, credit: Credit) -> ServerRequest {
        self.credit = credit;
        self
    }

    /// Hands the credit on, to whoever writes the request to disk: a
    /// request held for the caller's answer then holds no credit.
    pub fn take_credit(&mut self) -> Credit {
        std::mem::take(&mut self.credit)
    }

    pub fn thread_id(&self) -> Option<&str> {
        thread_id_of(&self.params)
    }

    pub fn turn_id(&self) -> Option<&str> {
        turn_id_of(&self.params)
    }

    /// The command a command approval asks to run, as Codex shows it; read
    /// from the raw params so a refusal names it even when the rest does
    /// not match our types.
    pub fn command(&self) -> Option<&str> {
        self.params.get("command").and_then(Value::as_str)
    }
}

fn thread_id_of(params: &Value) -> Option<&str> {
    params
        .get("threadId")
        .or_else(|| params.get("thread").and_then(|thread| thread.get("id")))
        .and_then(Value::as_str)
}

fn turn_id_of(params: &Value) -> Option<&str> {
    params
        .get("turnId")
        .or_else(|| params.get("turn").and_then(|turn| turn.get("id")))
        .and_then(Value::as_str)
}

/// The typed view of known params; a mismatch is logged and the message
/// kept raw, so a protocol change degrades to "unknown", never to a failure.
fn typed<T: DeserializeOwned>(method: &str, params: &Value) -> Option<T> {
    match T::deserialize(params) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(%method, %error, "params do not match our types; kept raw");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolved_request_names_its_id_and_other_methods_none() {
        let resolved = ServerNotification::new(
            "serverRequest/resolved".into(),
            json!({"threadId": "th", "requestId": 7}),
        );
        assert_eq!(resolved.resolved_request(), Some(RequestId::Integer(7)));
        let other = ServerNotification::new("turn/started".into(), json!({"requestId": 7}));
        assert_eq!(other.resolved_request(), None);
        assert!(ServerNotification::new("error".into(), json!({"odd": true})).is_error());
    }

    #[test]
    fn a_file_change_starting_gives_its_item_and_paths() {
        let started = ServerNotification::new(
            "item/started".into(),
            json!({"item": {"type": "fileChange", "id": "fc1",
                "changes": [{"path": "a.rs"}, {"kind": "odd"}, {"path": "b.rs"}]}}),
        );
        assert_eq!(
            started.file_change_started(),
            Some(FileChangeStarted {
                item_id: "fc1".into(),
                paths: vec!["a.rs".into(), "b.rs".into()],
            })
        );
        let command = ServerNotification::new(
            "item/started".into(),
            json!({"item": {"type": "commandExecution", "id": "c1"}}),
        );
        assert_eq!(command.file_change_started(), None);
        let no_id = ServerNotification::new(
            "item/started".into(),
            json!({"item": {"type": "fileChange", "changes": []}}),
        );
        assert_eq!(no_id.file_change_started(), None);
    }

    #[test]
    fn a_request_names_its_command_when_it_has_one() {
        let request = ServerRequest::new(
            RequestId::Integer(1),
            "item/commandExecution/requestApproval".into(),
            json!({"command": "cargo test"}),
        );
        assert_eq!(request.command(), Some("cargo test"));
        let other = ServerRequest::new(RequestId::Integer(2), "x".into(), json!({}));
        assert_eq!(other.command(), None);
    }

    #[test]
    fn turn_completed_is_typed_and_routable() {
        let note = ServerNotification::new(
            "turn/completed".into(),
            json!({"threadId": "th", "turn": {"id": "tu", "status": "completed", "items": [
                {"type": "agentMessage", "id": "m", "text": "done"}
            ]}}),
        );
        assert_eq!(note.thread_id(), Some("th"));
        assert_eq!(note.turn_id(), Some("tu"));
        match note.kind {
            NotificationKind::TurnCompleted(event) => {
                assert_eq!(event.turn.final_message(), Some("done"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_and_mismatched_notifications_are_kept_raw() {
        let unknown = ServerNotification::new("future/thing".into(), json!({"threadId": "th"}));
        assert!(matches!(unknown.kind, NotificationKind::Other));
        assert_eq!(unknown.thread_id(), Some("th"));
        let mismatched = ServerNotification::new("turn/completed".into(), json!({"turn": 3}));
        assert!(matches!(mismatched.kind, NotificationKind::Other));
        assert_eq!(mismatched.params, json!({"turn": 3}));
    }

    #[test]
    fn approval_requests_are_typed() {
        let request = ServerRequest::new(
            RequestId::Integer(0),
            "item/commandExecution/requestApproval".into(),
            json!({"threadId": "th", "turnId": "tu", "itemId": "it", "command": "touch x",
                   "startedAtMs": 1, "availableDecisions": ["accept", "cancel"]}),
        );
        match &request.kind {
            ServerRequestKind::CommandApproval(params) => {
                assert_eq!(params.command.as_deref(), Some("touch x"));
                assert!(params.extra.contains_key("availableDecisions"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            ApprovalDecision::Decline.to_result(),
            json!({"decision": "decline"})
        );
    }
}
