//! The one table of tools: each tool's name, the family that lists it
//! (`CODEX_MCP_WRAPPER_TOOLS`), the check its arguments pass before use,
//! and how it runs as an MCP task. The router (rmcp's, built from the
//! `#[tool]` methods) must route exactly these names; a test holds it to
//! that.

use serde_json::{Map, Value};

use super::params::{
    ApproveParams, ArgumentError, ChatParams, InterruptParams, LegacyCodexParams,
    LegacyReplyParams, NoParams, PlanParams, ResumeParams, ReviewParams, RunParams, RunsParams,
    WaitParams, check,
};
use crate::config::ToolFamilies;

/// Which `CODEX_MCP_WRAPPER_TOOLS` family lists a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// The run tools: `codex_run`, `codex_wait` and their kin.
    Sidecar,
    /// The conversation tools, from the persistent-conversation server this
    /// one replaces.
    Persistent,
    /// `codex` and `codex-reply`, from Codex's removed built-in MCP server.
    Legacy,
    /// codex-persistent-mcp's names for `codex_plan` and `codex_review`.
    Aliases,
}

impl Family {
    pub fn enabled(self, families: &ToolFamilies) -> bool {
        match self {
            Family::Sidecar => families.sidecar,
            Family::Persistent => families.persistent,
            Family::Legacy => families.legacy,
            Family::Aliases => families.aliases,
        }
    }
}

/// How a call runs for a client that declared the tasks extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsTask {
    /// An ordinary call: it answers quickly, or already follows a run.
    No,
    /// Starts a run, then the task follows it like `codex_wait`.
    Run,
    /// Resumes a run, then the task follows it like `codex_wait`.
    Resume,
    /// Starts a run and answers in the legacy `{threadId, content}` shape.
    Legacy,
    /// One turn of a conversation.
    Conversation(Talk),
}

/// Which conversation a conversation tool holds: it decides the prompt and
/// the field the answer comes under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Talk {
    Chat,
    Plan,
    Review,
}

type Checker = fn(&str, &Map<String, Value>) -> Result<(), ArgumentError>;

pub struct Tool {
    pub name: &'static str,
    pub family: Family,
    /// Checks the arguments against the parameters the tool takes
    /// ([`NoParams`] for none).
    pub check: Checker,
    pub as_task: AsTask,
}

const fn tool(name: &'static str, family: Family, check: Checker, as_task: AsTask) -> Tool {
    Tool {
        name,
        family,
        check,
        as_task,
    }
}

use AsTask::{Legacy, No, Resume, Run};
use Family::{Aliases as A, Legacy as L, Persistent as P, Sidecar as S};

const CHAT: AsTask = AsTask::Conversation(Talk::Chat);
const PLAN: AsTask = AsTask::Conversation(Talk::Plan);
const REVIEW: AsTask = AsTask::Conversation(Talk::Review);

pub const TOOLS: &[Tool] = &[
    tool("codex", L, check::<LegacyCodexParams>, Legacy),
    tool("codex-reply", L, check::<LegacyReplyParams>, No),
    tool("codex_run", S, check::<RunParams>, Run),
    tool("codex_resume", S, check::<ResumeParams>, Resume),
    tool("codex_wait", S, check::<WaitParams>, No),
    tool("codex_approve", S, check::<ApproveParams>, No),
    tool("codex_interrupt", S, check::<InterruptParams>, No),
    tool("codex_active_runs", S, check::<NoParams>, No),
    tool("codex_runs", S, check::<RunsParams>, No),
    tool("codex_wrapper_check", S, check::<NoParams>, No),
    tool("codex_chat", P, check::<ChatParams>, CHAT),
    tool("codex_plan", P, check::<PlanParams>, PLAN),
    tool("codex_guard_plan", A, check::<PlanParams>, PLAN),
    tool("codex_review", P, check::<ReviewParams>, REVIEW),
    tool("codex_guard_final", A, check::<ReviewParams>, REVIEW),
];

pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|tool| tool.name == name)
}

/// The names of every tool in the table (the fuzz target picks from them).
pub fn tool_names() -> impl Iterator<Item = &'static str> {
    TOOLS.iter().map(|tool| tool.name)
}

/// Checks `arguments` against what `tool` takes: every name is one of its
/// parameters and every value has the type the parameter wants. A tool
/// not in the table passes: refusing it is the router's job.
pub fn check_arguments(tool: &str, arguments: &Map<String, Value>) -> Result<(), ArgumentError> {
    match find(tool) {
        Some(entry) => (entry.check)(tool, arguments),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn good_arguments_pass_and_null_means_omitted() {
        for (tool, arguments) in [
            (
                "codex_run",
                json!({"prompt": "x", "cwd": null, "timeout_ms": 5}),
            ),
            (
                "codex_chat",
                json!({"prompt": "x", "session_id": "s", "timeout_ms": 1000}),
            ),
            (
                "codex_plan",
                json!({"requirements": "r", "plan": "p", "cwd": "/"}),
            ),
            ("codex", json!({"prompt": "x", "approval-policy": "never"})),
            ("codex-reply", json!({"threadId": "t", "prompt": "x"})),
            ("codex_active_runs", json!({})),
            ("a_tool_nobody_knows", json!({"anything": 1})),
        ] {
            assert_eq!(check_arguments(tool, &args(arguments)), Ok(()), "{tool}");
        }
    }

    #[test]
    fn an_unknown_argument_is_named_with_what_the_tool_takes() {
        let error = check_arguments(
            "codex_run",
            &args(json!({"prompt": "x", "permisions": "read-only"})),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("codex_run: unknown argument \"permisions\""),
            "{error}"
        );
        assert!(error.contains("permissions"), "{error}");
        // Flattened settings count as the tool's own.
        let error = check_arguments(
            "codex_chat",
            &args(json!({"prompt": "x", "sesion_id": "s"})),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("\"sesion_id\"") && error.contains("session_id"),
            "{error}"
        );
        let error = check_arguments("codex_wrapper_check", &args(json!({"verbose": true})))
            .unwrap_err()
            .to_string();
        assert!(error.contains("it takes: no arguments"), "{error}");
        let long = "k".repeat(10_000);
        let error = check_arguments("codex_wait", &args(json!({long: 1})))
            .unwrap_err()
            .to_string();
        assert!(error.len() < 400, "{error}");
    }

    #[test]
    fn a_wrong_type_names_the_argument() {
        for (tool, arguments, expected) in [
            (
                "codex_run",
                json!({"prompt": 5}),
                "argument prompt: invalid type: integer `5`, expected a string",
            ),
            (
                "codex_run",
                json!({"prompt": "x", "timeout_ms": -1}),
                "argument timeout_ms",
            ),
            (
                "codex_run",
                json!({"prompt": "x", "permissions": "root"}),
                "argument permissions: unknown variant `root`",
            ),
            (
                "codex_wait",
                json!({"run_id": "r", "offset": 1.5}),
                "argument offset",
            ),
            ("codex_run", json!({}), "missing field `prompt`"),
        ] {
            let error = check_arguments(tool, &args(arguments))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{tool}: {error}");
            assert!(error.starts_with(tool), "{error}");
        }
    }
}
