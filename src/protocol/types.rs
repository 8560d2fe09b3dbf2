//! Typed params and results of the app-server methods this crate calls, and
//! the records they carry (threads, turns, items). camelCase on the wire.
//! Fields we do not model are kept in `extra`, and item kinds we do not know
//! are kept whole as raw JSON, so a newer Codex never breaks us.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::ThreadId;

// ---- initialize -----------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub client_info: ClientInfo,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResponse {
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub codex_home: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---- settings shared by thread/start, thread/resume and turn/start -------

/// When Codex asks before acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalPolicy {
    Never,
    OnRequest,
    OnFailure,
    Untrusted,
}

/// What Codex's sandbox lets commands touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    ReadOnly,
    WorkspaceWrite,
    DangerFullAccess,
}

/// `turn/start`'s sandbox override: a policy object where the thread
/// settings take a mode name. The defaults of each kind (no network, no
/// extra writable roots) are Codex's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SandboxPolicy {
    ReadOnly,
    WorkspaceWrite,
    DangerFullAccess,
}

impl From<SandboxMode> for SandboxPolicy {
    fn from(mode: SandboxMode) -> SandboxPolicy {
        match mode {
            SandboxMode::ReadOnly => SandboxPolicy::ReadOnly,
            SandboxMode::WorkspaceWrite => SandboxPolicy::WorkspaceWrite,
            SandboxMode::DangerFullAccess => SandboxPolicy::DangerFullAccess,
        }
    }
}

// ---- thread/start, thread/resume, thread/read -----------------------------

/// How a thread runs: where, under which approval policy and sandbox, with
/// which model. `None` leaves the setting to Codex's config (or, on resume,
/// to what the thread already has).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<ApprovalPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Codex config overrides for this thread (`config.toml` keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_instructions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub developer_instructions: Option<String>,
}

/// `thread/start` takes the settings alone.
pub type ThreadStartParams = ThreadSettings;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadResumeParams {
    pub thread_id: ThreadId,
    #[serde(flatten)]
    pub settings: ThreadSettings,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadParams {
    pub thread_id: ThreadId,
    pub include_turns: bool,
}

/// The result of `thread/start`, `thread/resume` and `thread/read`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadResponse {
    pub thread: Thread,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ThreadResponse {
    /// The model the thread runs with (what a turn without overrides uses).
    pub fn model(&self) -> Option<String> {
        self.text("model")
    }

    /// The reasoning effort the thread runs with.
    pub fn reasoning_effort(&self) -> Option<String> {
        self.text("reasoningEffort")
    }

    /// The sandbox the thread runs in, as a mode name (`read-only`) or a
    /// policy object (`{"type": "readOnly", …}`); `None` when absent or of
    /// a kind this sidecar does not know.
    pub fn sandbox(&self) -> Option<SandboxMode> {
        let value = self.extra.get("sandbox")?;
        let name = value
            .as_str()
            .or_else(|| value.get("type").and_then(Value::as_str))?;
        match name {
            "read-only" | "readOnly" => Some(SandboxMode::ReadOnly),
            "workspace-write" | "workspaceWrite" => Some(SandboxMode::WorkspaceWrite),
            "danger-full-access" | "dangerFullAccess" => Some(SandboxMode::DangerFullAccess),
            _ => None,
        }
    }

    fn text(&self, key: &str) -> Option<String> {
        self.extra
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thread {
    /// Also the session id that `codex resume` takes.
    pub id: ThreadId,
    #[serde(default)]
    pub turns: Vec<Turn>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---- turn/start, turn/interrupt --------------------------------------------

/// One piece of user input. Only text is sent by this crate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UserInput {
    Text {
        text: String,
    },
    #[serde(untagged)]
    Other(Value),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartParams {
    pub thread_id: ThreadId,
    pub input: Vec<UserInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<ApprovalPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_policy: Option<SandboxPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Reasoning effort (`low`, `medium`, `high`, …), passed through as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
}

impl TurnStartParams {
    /// A turn with one text input and every setting left to the thread.
    pub fn text(thread_id: impl Into<ThreadId>, text: impl Into<String>) -> TurnStartParams {
        TurnStartParams {
            thread_id: thread_id.into(),
            input: vec![UserInput::Text { text: text.into() }],
            cwd: None,
            approval_policy: None,
            sandbox_policy: None,
            model: None,
            effort: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartResponse {
    pub turn: Turn,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnInterruptParams {
    pub thread_id: ThreadId,
    pub turn_id: String,
}

// ---- records -----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TurnStatus {
    InProgress,
    Completed,
    Interrupted,
    Failed,
    /// A status a newer Codex added; treated as "not finished by us".
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Turn {
    pub id: String,
    pub status: TurnStatus,
    #[serde(default)]
    pub items: Vec<ThreadItem>,
    #[serde(default)]
    pub error: Option<TurnError>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Turn {
    /// The last agent message of the turn: what Codex answered.
    pub fn final_message(&self) -> Option<&str> {
        self.items.iter().rev().find_map(|item| match item {
            ThreadItem::AgentMessage { text, .. } => Some(text.as_str()),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnError {
    pub message: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One item of a turn. The kinds we read are typed; any other kind is kept
/// whole so that the audit loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ThreadItem {
    #[serde(rename_all = "camelCase")]
    UserMessage {
        id: String,
        #[serde(default)]
        content: Vec<UserInput>,
    },
    #[serde(rename_all = "camelCase")]
    AgentMessage { id: String, text: String },
    #[serde(rename_all = "camelCase")]
    CommandExecution {
        id: String,
        command: String,
        #[serde(default)]
        cwd: Option<String>,
        #[serde(default)]
        status: Option<String>,
        #[serde(default)]
        exit_code: Option<i64>,
        #[serde(default)]
        aggregated_output: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    FileChange {
        id: String,
        #[serde(default)]
        changes: Vec<Value>,
        #[serde(default)]
        status: Option<String>,
    },
    #[serde(untagged)]
    Other(Value),
}

/// Token counts as Codex reports them in `thread/tokenUsage/updated`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenCounts {
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub reasoning_output_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Totals for the whole thread so far.
    pub total: TokenCounts,
    /// The last model call alone.
    #[serde(default)]
    pub last: TokenCounts,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_thread_response_gives_the_threads_model_and_effort() {
        let response: ThreadResponse = serde_json::from_value(json!({
            "thread": {"id": "th"}, "model": "gpt-x", "reasoningEffort": "high"
        }))
        .unwrap();
        assert_eq!(response.model().as_deref(), Some("gpt-x"));
        assert_eq!(response.reasoning_effort().as_deref(), Some("high"));
        let bare: ThreadResponse = serde_json::from_value(json!({"thread": {"id": "th"}})).unwrap();
        assert_eq!(bare.model(), None);
    }

    #[test]
    fn unknown_item_kinds_are_kept_whole() {
        let raw = json!({"type": "hologram", "id": "i1", "beams": 3});
        let item: ThreadItem = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(item, ThreadItem::Other(raw));
    }

    #[test]
    fn known_items_and_unknown_status_parse() {
        let turn: Turn = serde_json::from_value(json!({
            "id": "t1",
            "status": "paused",
            "items": [
                {"type": "agentMessage", "id": "a", "text": "first"},
                {"type": "commandExecution", "id": "c", "command": "ls", "exitCode": 0},
                {"type": "agentMessage", "id": "b", "text": "last", "phase": null}
            ],
            "durationMs": 12
        }))
        .unwrap();
        assert_eq!(turn.status, TurnStatus::Unknown);
        assert_eq!(turn.final_message(), Some("last"));
        assert_eq!(turn.extra["durationMs"], json!(12));
    }

    #[test]
    fn settings_use_the_wire_spelling() {
        let params = ThreadStartParams {
            approval_policy: Some(ApprovalPolicy::OnRequest),
            sandbox: Some(SandboxMode::DangerFullAccess),
            ..ThreadStartParams::default()
        };
        assert_eq!(
            serde_json::to_value(params).unwrap(),
            json!({"approvalPolicy": "on-request", "sandbox": "danger-full-access"})
        );
    }

    /// The thread's sandbox reads as a mode name or as a policy object.
    #[test]
    fn the_sandbox_reads_from_a_name_or_a_policy() {
        let response = |sandbox: Value| -> ThreadResponse {
            serde_json::from_value(serde_json::json!({
                "thread": {"id": "th"},
                "model": "m",
                "sandbox": sandbox,
            }))
            .unwrap()
        };
        let named = response(Value::from("workspace-write"));
        assert_eq!(named.sandbox(), Some(SandboxMode::WorkspaceWrite));
        let policy = response(serde_json::json!({"type": "readOnly", "networkAccess": false}));
        assert_eq!(policy.sandbox(), Some(SandboxMode::ReadOnly));
        assert_eq!(response(Value::from("other")).sandbox(), None);
        assert_eq!(named.model().as_deref(), Some("m"));
    }
}
