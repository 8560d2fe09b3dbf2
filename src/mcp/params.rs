//! Tool parameters. Their doc comments are the documentation a model reads,
//! so they say when to use a field and what it defaults to, briefly.
//!
//! [`check`], named per tool in the table of tools (`catalog`), is the gate
//! every call passes before its arguments are used: an argument the tool
//! does not take, or one of the wrong type, is a tool error that names the
//! argument.

use rmcp::handler::server::common::schema_for_type;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Why a tool's arguments were refused. Each names the tool and the
/// argument, so a model can correct the call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgumentError {
    /// Refused rather than ignored: a misspelt `permisions: "read-only"`
    /// would otherwise run with the default, full access.
    #[error("{tool}: unknown argument {name:?}; it takes: {known}")]
    Unknown {
        tool: String,
        name: String,
        known: String,
    },
    #[error("{tool}: {problem}")]
    Invalid { tool: String, problem: String },
}

/// Checks `arguments` against the parameters `T` describes (the table of
/// tools, `catalog`, names the `T` of each tool).
pub(super) fn check<T: DeserializeOwned + JsonSchema + 'static>(
    tool: &str,
    arguments: &Map<String, Value>,
) -> Result<(), ArgumentError> {
    // The same schema tools/list shows the client, so the names accepted
    // are exactly the names advertised.
    let schema = schema_for_type::<T>();
    let known = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().map(String::as_str).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(name) = arguments
        .keys()
        .find(|name| !known.contains(&name.as_str()))
    {
        return Err(ArgumentError::Unknown {
            tool: tool.to_string(),
            name: quoted_name(name),
            known: if known.is_empty() {
                "no arguments".to_string()
            } else {
                known.join(", ")
            },
        });
    }
    let value = Value::Object(arguments.clone());
    match serde_path_to_error::deserialize::<_, T>(&value) {
        Ok(_) => Ok(()),
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let problem = if path == "." {
                inner.to_string()
            } else {
                format!("argument {path}: {inner}")
            };
            Err(ArgumentError::Invalid {
                tool: tool.to_string(),
                problem,
            })
        }
    }
}

/// An unknown argument's name as the error quotes it: a name can be as long
/// as a client likes, a reply should not be.
fn quoted_name(name: &str) -> String {
    const QUOTED_NAME_CHARS: usize = 64;
    crate::text::cut(name, QUOTED_NAME_CHARS)
}

/// The arguments of a tool that takes none.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoParams {}

/// `yolo`: full access (usual default); `workspace-write`: writes in cwd
/// only; `read-only`. `sandbox`, `approval_policy` override it.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PermissionsParam {
    Yolo,
    WorkspaceWrite,
    ReadOnly,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxParam {
    ReadOnly,
    WorkspaceWrite,
    DangerFullAccess,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalParam {
    Never,
    OnRequest,
    OnFailure,
    Untrusted,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunParams {
    pub prompt: String,
    /// Absolute project dir (default: the server's).
    pub cwd: Option<String>,
    /// Title for listings.
    pub run_name: Option<String>,
    /// false: answer at the end (default true).
    #[serde(rename = "async")]
    pub run_async: Option<bool>,
    pub permissions: Option<PermissionsParam>,
    pub sandbox: Option<SandboxParam>,
    /// Not never: the person (a form), else you, answers.
    pub approval_policy: Option<ApprovalParam>,
    pub model: Option<String>,
    /// e.g. low, medium, high.
    pub reasoning_effort: Option<String>,
    /// Interrupt after this many ms (default 30 min).
    pub timeout_ms: Option<u64>,
    // No description: this tool is at its size budget (the name of an
    // endpoints.toml entry; cwd is then a path on that host).
    pub endpoint: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResumeParams {
    /// The runId of an earlier run; the new turn continues its conversation.
    pub run_id: String,
    pub prompt: String,
    /// Default: the earlier run's directory.
    pub cwd: Option<String>,
    #[serde(rename = "async")]
    pub run_async: Option<bool>,
    pub timeout_ms: Option<u64>,
    /// As in codex_run. Omitted (all three): the thread keeps what it has.
    pub permissions: Option<PermissionsParam>,
    pub sandbox: Option<SandboxParam>,
    pub approval_policy: Option<ApprovalParam>,
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitParams {
    pub run_id: Option<String>,
    /// Up to 32 runs instead of run_id; drop those already returned.
    pub run_ids: Option<Vec<String>>,
    /// any (default): the first to end, a line per other; all: every result.
    pub mode: Option<WaitModeParam>,
    /// Return `still_running` after this many ms (default 240000; 0 blocks
    /// until the run ends).
    pub soft_timeout_ms: Option<u64>,
    /// Upper bound for this call in ms, if lower than the soft timeout.
    pub timeout_ms: Option<u64>,
    /// A long result's page to return: the previous reply's nextOffset.
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum WaitModeParam {
    Any,
    All,
}

/// The `codex` tool of Codex's removed built-in MCP server, field for field.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct LegacyCodexParams {
    /// The initial user prompt to start the Codex conversation.
    pub prompt: String,
    /// untrusted, on-failure, on-request or never.
    pub approval_policy: Option<ApprovalParam>,
    /// read-only, workspace-write or danger-full-access.
    pub sandbox: Option<SandboxParam>,
    /// Working directory for the session (default: the server's).
    pub cwd: Option<String>,
    pub model: Option<String>,
    /// A profile from config.toml to take default options from.
    pub profile: Option<String>,
    /// Individual config settings that override config.toml.
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    /// Instructions used instead of the defaults.
    pub base_instructions: Option<String>,
    /// Developer instructions added to the conversation.
    pub developer_instructions: Option<String>,
    /// The prompt used when compacting the conversation.
    pub compact_prompt: Option<String>,
    // No description: this tool is at its size budget (the name of an
    // endpoints.toml entry; cwd is then a path on that host).
    pub endpoint: Option<String>,
}

/// The `codex-reply` tool of Codex's removed built-in MCP server.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LegacyReplyParams {
    /// The thread to continue (from the `codex` tool's reply).
    #[serde(rename = "threadId")]
    pub thread_id: Option<String>,
    /// Deprecated name of threadId.
    #[serde(rename = "conversationId")]
    pub conversation_id: Option<String>,
    /// The next user prompt.
    pub prompt: String,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecisionParam {
    Accept,
    Decline,
    /// Decline and stop the turn.
    Cancel,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ApproveParams {
    pub run_id: String,
    /// The pendingApproval's approvalId.
    pub approval_id: String,
    pub decision: DecisionParam,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct InterruptParams {
    pub run_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunsParams {
    /// How many recent runs (default 20, at most 200).
    pub limit: Option<u64>,
}

/// Settings every conversation tool takes.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ConversationSettings {
    /// Continue this session; omit to start a new one.
    pub session_id: Option<String>,
    /// Absolute project directory of a new session (default: the server's).
    pub cwd: Option<String>,
    /// For this request only.
    pub model: Option<String>,
    /// For this request only.
    pub reasoning_effort: Option<String>,
    /// 1000..=600000 ms (default 120000).
    pub timeout_ms: Option<u64>,
    // No description, as on codex_run: the default list is at its size
    // budget (a new session's host, the name of an endpoints.toml entry).
    pub endpoint: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChatParams {
    pub prompt: String,
    #[serde(flatten)]
    pub settings: ConversationSettings,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PlanParams {
    /// What the change must achieve.
    pub requirements: String,
    /// The plan to critique.
    pub plan: String,
    pub constraints: Option<String>,
    #[serde(flatten)]
    pub settings: ConversationSettings,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReviewParams {
    /// What changed and why.
    pub change_summary: String,
    pub test_results: Option<String>,
    pub open_questions: Option<String>,
    #[serde(flatten)]
    pub settings: ConversationSettings,
}
