//! A tool's arguments as an engine request: paths made absolute, enums
//! mapped to the engine's, timeouts bounded, a profile read, a
//! conversation's prompt built. Each refusal is a tool error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rmcp::model::CallToolResult;

use super::catalog::Talk;
use super::params::*;
use super::{SidecarServer, replies};
use crate::actors::person::Person;
use crate::actors::{
    ChatRequest, ResumeRequest, ResumeTarget, RunRequest, ThreadExtras, TurnSettings,
};
use crate::config::Permissions;
use crate::protocol::{ApprovalPolicy, SandboxMode, ThreadId};
use crate::store::RunId;

/// A run may be given at most a day: a larger number is a mistake (seconds
/// for milliseconds, say), not a plan.
const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// Conversations answer within this range (ms), 2 minutes by default: long
/// enough for a considered reply, short enough to stay a conversation.
const CHAT_TIMEOUT_MIN_MS: u64 = 1_000;
const CHAT_TIMEOUT_MAX_MS: u64 = 600_000;
const CHAT_TIMEOUT_DEFAULT_MS: u64 = 120_000;

/// `codex_run` and `codex_resume` name the six turn settings alike (each
/// with its own doc comments, which the model reads, so not one shared
/// params struct); this reads them from either.
macro_rules! turn_settings_of {
    ($params:ident) => {
        turn_settings(
            $params.permissions,
            $params.sandbox,
            $params.approval_policy,
            $params.model,
            $params.reasoning_effort,
            $params.timeout_ms,
        )
    };
}

impl SidecarServer {
    /// `codex_run`'s parameters as an engine request; `person` is asked
    /// before the caller when the approval policy asks.
    pub(super) fn run_request(
        &self,
        params: RunParams,
        person: Option<Person>,
    ) -> Result<RunRequest, CallToolResult> {
        let mut turn = turn_settings_of!(params)?;
        turn.person = person.filter(|_| turn.interactive);
        let cwd = self.cwd_on(params.endpoint.as_deref(), params.cwd.as_deref());
        let mut request = RunRequest::new(params.prompt, cwd);
        request.endpoint = params.endpoint;
        request.run_name = params.run_name;
        request.turn = turn;
        Ok(request)
    }

    /// `codex_resume`'s parameters as an engine request.
    pub(super) fn resume_request(
        &self,
        params: ResumeParams,
        person: Option<Person>,
    ) -> Result<ResumeRequest, CallToolResult> {
        let mut turn = turn_settings_of!(params)?;
        turn.person = person.filter(|_| turn.interactive);
        let mut request =
            ResumeRequest::new(ResumeTarget::Run(run_id(&params.run_id)?), params.prompt);
        request.cwd = params.cwd.as_deref().map(|cwd| self.absolute(cwd));
        request.turn = turn;
        Ok(request)
    }

    /// The legacy `codex` tool's parameters as an engine request.
    pub(super) fn legacy_request(
        &self,
        params: LegacyCodexParams,
    ) -> Result<RunRequest, CallToolResult> {
        let cwd = self.cwd_on(params.endpoint.as_deref(), params.cwd.as_deref());
        let mut request = RunRequest::new(params.prompt, cwd);
        request.endpoint = params.endpoint;
        request.turn.sandbox = params.sandbox.map(sandbox);
        request.turn.approval_policy = params.approval_policy.map(approval);
        request.turn.model = params.model;
        // A profile's settings first, so explicit config overrides win.
        let mut config = match &params.profile {
            Some(profile) => profile_settings(&self.config.codex_home, profile)?,
            None => serde_json::Map::new(),
        };
        config.extend(params.config.unwrap_or_default());
        if let Some(compact_prompt) = params.compact_prompt {
            config.insert("compact_prompt".into(), compact_prompt.into());
        }
        request.extras = ThreadExtras {
            config: (!config.is_empty()).then_some(config),
            base_instructions: params.base_instructions,
            developer_instructions: params.developer_instructions,
        };
        Ok(request)
    }

    /// Who a run started by this call asks, per CODEX_MCP_WRAPPER_APPROVALS
    /// and the capabilities the call declares; `task`: the call's task, once
    /// spawned, when it runs as one.
    pub(super) fn person(
        &self,
        context: &rmcp::service::RequestContext<rmcp::RoleServer>,
        task: Option<super::person::TaskSlot>,
    ) -> Option<Person> {
        super::person::for_call(self.config.approvals, context, task)
    }

    pub(super) fn page(&self, offset: usize) -> replies::Page {
        replies::Page {
            offset,
            max_chars: self.config.max_result_chars,
        }
    }

    fn absolute(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.cwd.join(path)
        }
    }

    fn cwd_or_default(&self, cwd: Option<&str>) -> PathBuf {
        cwd.map(|cwd| self.absolute(cwd))
            .unwrap_or_else(|| self.cwd.clone())
    }

    /// A named endpoint's `cwd` is a path on its host, passed as given (the
    /// engine refuses a relative or missing one); else as [`Self::cwd_or_default`].
    fn cwd_on(&self, endpoint: Option<&str>, cwd: Option<&str>) -> PathBuf {
        match endpoint {
            Some(endpoint) if endpoint != crate::config::DEFAULT_ENDPOINT => {
                PathBuf::from(cwd.unwrap_or_default())
            }
            _ => self.cwd_or_default(cwd),
        }
    }

    /// A conversation tool's prompt and settings as an engine request.
    pub(super) fn chat_request(
        &self,
        prompt: String,
        settings: ConversationSettings,
    ) -> Result<ChatRequest, CallToolResult> {
        {
            let timeout_ms = settings.timeout_ms.unwrap_or(CHAT_TIMEOUT_DEFAULT_MS);
            if !(CHAT_TIMEOUT_MIN_MS..=CHAT_TIMEOUT_MAX_MS).contains(&timeout_ms) {
                return Err(replies::failure(format!(
                    "timeout_ms must be {CHAT_TIMEOUT_MIN_MS}..={CHAT_TIMEOUT_MAX_MS}, not {timeout_ms}"
                )));
            }
            let cwd = match (&settings.session_id, settings.cwd.as_deref()) {
                (None, cwd) => Some(self.cwd_on(settings.endpoint.as_deref(), cwd)),
                (Some(_), Some(cwd)) => Some(self.absolute(cwd)),
                (Some(_), None) => None,
            };
            Ok(ChatRequest {
                session_id: settings.session_id.map(ThreadId::from),
                prompt,
                cwd,
                model: settings.model,
                reasoning_effort: settings.reasoning_effort,
                timeout: Duration::from_millis(timeout_ms),
                started: None,
                endpoint: settings.endpoint,
            })
        }
    }
}

/// A Codex profile's settings, as `codex --profile NAME` reads them:
/// `$CODEX_HOME/NAME.config.toml`. The app-server takes no profile per
/// thread, so they travel as config overrides.
fn profile_settings(
    codex_home: &Path,
    name: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, CallToolResult> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(replies::failure(format!(
            "profile {name:?} is not a profile name"
        )));
    }
    let path = codex_home.join(format!("{name}.config.toml"));
    let text = std::fs::read_to_string(&path).map_err(|error| {
        replies::failure(format!(
            "profile {name}: cannot read {}: {error}",
            path.display()
        ))
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|error| {
        replies::failure(format!(
            "profile {name}: {} is not valid TOML: {error}",
            path.display()
        ))
    })?;
    match serde_json::to_value(table) {
        Ok(serde_json::Value::Object(settings)) => Ok(settings),
        _ => Err(replies::failure(format!(
            "profile {name}: unusable settings"
        ))),
    }
}

pub(super) fn run_id(text: &str) -> Result<RunId, CallToolResult> {
    RunId::parse(text).map_err(replies::failure)
}

/// `None` for 0 (no bound), an error beyond a day.
pub(super) fn bounded(ms: u64, name: &str) -> Result<Option<Duration>, CallToolResult> {
    if ms > MAX_TIMEOUT_MS {
        return Err(replies::failure(format!(
            "{name} must be at most {MAX_TIMEOUT_MS} ms, not {ms}"
        )));
    }
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

/// The six turn settings `codex_run` and `codex_resume` share, mapped to
/// the engine's types once; the policy decides who answers Codex's requests.
fn turn_settings(
    permissions_param: Option<PermissionsParam>,
    sandbox_param: Option<SandboxParam>,
    approval_param: Option<ApprovalParam>,
    model: Option<String>,
    reasoning_effort: Option<String>,
    timeout_ms: Option<u64>,
) -> Result<TurnSettings, CallToolResult> {
    let approval_policy = approval_param.map(approval);
    Ok(TurnSettings {
        permissions: permissions_param.map(permissions),
        sandbox: sandbox_param.map(sandbox),
        approval_policy,
        model,
        reasoning_effort,
        timeout: run_timeout(timeout_ms)?,
        interactive: asks(approval_policy),
        person: None,
        // Taken by the engine.
        slot: None,
    })
}

fn run_timeout(ms: Option<u64>) -> Result<Option<Duration>, CallToolResult> {
    match ms {
        None => Ok(None),
        Some(0) => Err(replies::failure("timeout_ms must be greater than 0")),
        Some(ms) => bounded(ms, "timeout_ms"),
    }
}

/// A policy that asks makes the caller the one who answers.
fn asks(policy: Option<ApprovalPolicy>) -> bool {
    policy.is_some_and(|policy| policy != ApprovalPolicy::Never)
}

fn permissions(param: PermissionsParam) -> Permissions {
    match param {
        PermissionsParam::Yolo => Permissions::Yolo,
        PermissionsParam::WorkspaceWrite => Permissions::WorkspaceWrite,
        PermissionsParam::ReadOnly => Permissions::ReadOnly,
    }
}

fn sandbox(param: SandboxParam) -> SandboxMode {
    match param {
        SandboxParam::ReadOnly => SandboxMode::ReadOnly,
        SandboxParam::WorkspaceWrite => SandboxMode::WorkspaceWrite,
        SandboxParam::DangerFullAccess => SandboxMode::DangerFullAccess,
    }
}

fn approval(param: ApprovalParam) -> ApprovalPolicy {
    match param {
        ApprovalParam::Never => ApprovalPolicy::Never,
        ApprovalParam::OnRequest => ApprovalPolicy::OnRequest,
        ApprovalParam::OnFailure => ApprovalPolicy::OnFailure,
        ApprovalParam::Untrusted => ApprovalPolicy::Untrusted,
    }
}

/// One turn of a conversation tool: its prompt (built here, and only here,
/// from the tool's arguments), its settings, and the field its answer comes
/// under.
pub(super) struct Conversation {
    pub(super) prompt: String,
    pub(super) settings: ConversationSettings,
    pub(super) field: &'static str,
}

impl Conversation {
    /// The call's arguments as the conversation `talk` holds.
    pub(super) fn from_arguments(
        talk: Talk,
        arguments: serde_json::Value,
    ) -> Result<Conversation, serde_json::Error> {
        Ok(match talk {
            Talk::Chat => serde_json::from_value::<ChatParams>(arguments)?.into(),
            Talk::Plan => serde_json::from_value::<PlanParams>(arguments)?.into(),
            Talk::Review => serde_json::from_value::<ReviewParams>(arguments)?.into(),
        })
    }
}

impl From<ChatParams> for Conversation {
    fn from(params: ChatParams) -> Conversation {
        Conversation {
            prompt: params.prompt,
            settings: params.settings,
            field: "reply",
        }
    }
}

impl From<PlanParams> for Conversation {
    fn from(params: PlanParams) -> Conversation {
        Conversation {
            prompt: crate::prompts::plan_critique(
                &params.requirements,
                &params.plan,
                params.constraints.as_deref(),
            ),
            settings: params.settings,
            field: "critique",
        }
    }
}

impl From<ReviewParams> for Conversation {
    fn from(params: ReviewParams) -> Conversation {
        Conversation {
            prompt: crate::prompts::change_review(
                &params.change_summary,
                params.test_results.as_deref(),
                params.open_questions.as_deref(),
            ),
            settings: params.settings,
            field: "review",
        }
    }
}
