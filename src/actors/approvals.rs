//! What a run answers to Codex's requests (approvals, questions). Either the
//! caller decides (`codex_approve`), when it asked for an approval policy
//! that asks, or the sidecar does, from the run's sandbox: it grants only
//! what the sandbox already allows.

use serde::Serialize;
use serde_json::{Value, json};

use crate::protocol::{ApprovalDecision, SandboxMode, ServerRequest, ServerRequestKind};

/// A request waiting for the caller, as `codex_wait` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    pub approval_id: String,
    /// `command`, `fileChange`, `permissions`, `userInput` or
    /// `mcpElicitation`.
    pub kind: &'static str,
    /// The command, or what the change is about.
    pub summary: String,
    /// The person at the MCP client is being asked (an elicitation form):
    /// the caller waits and does not answer.
    pub asked_person: bool,
}

/// The caller's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Accept,
    Decline,
    Cancel,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Accept => "accept",
            Choice::Decline => "decline",
            Choice::Cancel => "cancel",
        }
    }
}

/// Summaries stay short in replies; the request is whole in the audit.
const SUMMARY_CHARS: usize = 200;

/// The kind and summary of a request the caller may answer; `None` for a
/// request that is not for the caller (an unknown kind). `files`: the paths
/// of the file change a file-change request is about, when known.
pub fn pending(
    request: &ServerRequest,
    approval_id: String,
    files: Option<&[String]>,
) -> Option<PendingApproval> {
    let text = |key: &str| request.params.get(key).and_then(Value::as_str);
    let (kind, summary) = match &request.kind {
        ServerRequestKind::CommandApproval(params) => {
            ("command", params.command.clone().unwrap_or_default())
        }
        ServerRequestKind::FileChangeApproval(params) => (
            "fileChange",
            files
                .filter(|files| !files.is_empty())
                .map(|files| files.join(", "))
                .or_else(|| params.reason.clone())
                .or_else(|| text("grantRoot").map(|root| format!("writes under {root}")))
                .unwrap_or_else(|| "file changes".to_string()),
        ),
        ServerRequestKind::PermissionsApproval => (
            "permissions",
            permissions_summary(request.params.get("permissions").unwrap_or(&Value::Null)),
        ),
        ServerRequestKind::UserInput => ("userInput", questions_summary(&request.params)),
        ServerRequestKind::McpElicitation => (
            "mcpElicitation",
            text("message").unwrap_or_default().to_string(),
        ),
        ServerRequestKind::Other => return None,
    };
    let summary = crate::text::cut(&summary, SUMMARY_CHARS);
    Some(PendingApproval {
        approval_id,
        kind,
        summary,
        asked_person: false,
    })
}

/// The response to send for the caller's choice: `Ok(result)`, or
/// `Err(message)` for a JSON-RPC error. `None` when the choice cannot be
/// expressed for this kind (accepting a question without its answers).
pub fn answer(request: &ServerRequest, choice: Choice) -> Option<Result<Value, String>> {
    let decision = match choice {
        Choice::Accept => ApprovalDecision::Accept,
        Choice::Decline => ApprovalDecision::Decline,
        Choice::Cancel => ApprovalDecision::Cancel,
    };
    match &request.kind {
        ServerRequestKind::CommandApproval(_) | ServerRequestKind::FileChangeApproval(_) => {
            Some(Ok(decision.to_result()))
        }
        ServerRequestKind::McpElicitation => Some(Ok(json!({ "action": choice.as_str() }))),
        ServerRequestKind::PermissionsApproval => match choice {
            Choice::Accept => Some(Ok(json!({
                "permissions": request.params.get("permissions").cloned().unwrap_or(Value::Null),
                "scope": "turn",
            }))),
            _ => Some(Err(format!("{} by the caller", past(choice)))),
        },
        ServerRequestKind::UserInput => match choice {
            Choice::Accept => recommended_answers(&request.params).map(Ok),
            _ => Some(Err(format!("{} by the caller", past(choice)))),
        },
        ServerRequestKind::Other => Some(Err("not served by the sidecar".to_string())),
    }
}

/// The sidecar's own answer when the caller is not asked: approvals are
/// granted only under full access; elicitations declined; anything else
/// refused. The reason is `Some` when the request was not granted.
pub fn automatic(
    request: &ServerRequest,
    sandbox: Option<SandboxMode>,
) -> (Result<Value, String>, Option<String>) {
    match &request.kind {
        ServerRequestKind::CommandApproval(_) | ServerRequestKind::FileChangeApproval(_) => {
            if sandbox == Some(SandboxMode::DangerFullAccess) {
                (Ok(ApprovalDecision::Accept.to_result()), None)
            } else {
                let sandbox = sandbox
                    .map(|sandbox| format!("{sandbox:?}"))
                    .unwrap_or_else(|| "unknown".into());
                let reason = format!(
                    "declined {}: the run's sandbox is {sandbox}, and the sidecar grants nothing beyond it",
                    request.method
                );
                (Ok(ApprovalDecision::Decline.to_result()), Some(reason))
            }
        }
        ServerRequestKind::McpElicitation => (
            Ok(json!({"action": "decline"})),
            Some("declined an MCP elicitation: no person is attached to answer it".to_string()),
        ),
        _ => {
            let reason = format!(
                "refused {}: the sidecar does not serve this request",
                request.method
            );
            (Err(reason.clone()), Some(reason))
        }
    }
}

/// What a permissions request asks for, in words: `write /a, read /b,
/// network`.
fn permissions_summary(permissions: &Value) -> String {
    let paths = |access: &str| -> Vec<String> {
        permissions["fileSystem"][access]
            .as_array()
            .map(|paths| {
                paths
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|path| format!("{access} {path}"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut parts = paths("write");
    parts.extend(paths("read"));
    if permissions["network"]["enabled"] == Value::Bool(true) {
        parts.push("network".to_string());
    }
    if parts.is_empty() {
        permissions.to_string()
    } else {
        parts.join(", ")
    }
}

/// The questions of a user-input request with their options:
/// `Which colour? (Red | Blue)`.
fn questions_summary(params: &Value) -> String {
    let questions = params["questions"].as_array().cloned().unwrap_or_default();
    questions
        .iter()
        .map(|question| {
            let text = question["question"].as_str().unwrap_or_default();
            let options: Vec<&str> = question["options"]
                .as_array()
                .map(|options| options.iter().filter_map(|o| o["label"].as_str()).collect())
                .unwrap_or_default();
            if options.is_empty() {
                text.to_string()
            } else {
                format!("{text} ({})", options.join(" | "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Accepting a question takes its first option, the one Codex recommends
/// (its tool asks the model to put the recommended option first). `None`
/// when a question has no options: only a free answer would do.
fn recommended_answers(params: &Value) -> Option<Value> {
    let mut answers = serde_json::Map::new();
    for question in params["questions"].as_array()? {
        let id = question["id"].as_str()?;
        let first = question["options"].as_array()?.first()?["label"].as_str()?;
        answers.insert(id.to_string(), json!({ "answers": [first] }));
    }
    Some(json!({ "answers": answers }))
}

fn past(choice: Choice) -> &'static str {
    match choice {
        Choice::Accept => "accepted",
        Choice::Decline => "declined",
        Choice::Cancel => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RequestId;

    fn request(method: &str, params: Value) -> ServerRequest {
        ServerRequest::new(RequestId::Integer(1), method.into(), params)
    }

    #[test]
    fn each_kind_has_its_answer() {
        let command = request(
            "item/commandExecution/requestApproval",
            json!({"threadId": "t", "turnId": "u", "itemId": "i", "command": "rm -rf build"}),
        );
        let shown = pending(&command, "a1".into(), None).unwrap();
        assert_eq!(
            (shown.kind, shown.summary.as_str()),
            ("command", "rm -rf build")
        );
        assert_eq!(
            answer(&command, Choice::Cancel),
            Some(Ok(json!({"decision": "cancel"})))
        );

        let question = request(
            "item/tool/requestUserInput",
            json!({"questions": [{"id": "colour", "question": "Which colour?",
                "options": [{"label": "Red (Recommended)"}, {"label": "Blue"}]}]}),
        );
        assert_eq!(
            pending(&question, "a3".into(), None).unwrap().summary,
            "Which colour? (Red (Recommended) | Blue)"
        );
        assert_eq!(
            answer(&question, Choice::Accept),
            Some(Ok(
                json!({"answers": {"colour": {"answers": ["Red (Recommended)"]}}})
            )),
            "accepting takes the recommended option"
        );
        assert!(matches!(answer(&question, Choice::Decline), Some(Err(_))));
        let open = request(
            "item/tool/requestUserInput",
            json!({"questions": [{"id": "name", "question": "Your name?", "options": []}]}),
        );
        assert_eq!(
            answer(&open, Choice::Accept),
            None,
            "a free answer is needed"
        );

        let permissions = request(
            "item/permissions/requestApproval",
            json!({"permissions": {"fileSystem": {"write": ["/srv/out"], "read": ["/etc/x"]},
                "network": {"enabled": true}}}),
        );
        assert_eq!(
            pending(&permissions, "a4".into(), None).unwrap().summary,
            "write /srv/out, read /etc/x, network"
        );

        let elicitation = request(
            "mcpServer/elicitation/request",
            json!({"message": "token?"}),
        );
        assert_eq!(
            answer(&elicitation, Choice::Accept),
            Some(Ok(json!({"action": "accept"})))
        );
        assert!(pending(&request("future/ask", json!({})), "a2".into(), None).is_none());
    }

    #[test]
    fn automatically_only_full_access_grants() {
        let command = request(
            "item/commandExecution/requestApproval",
            json!({"threadId": "t", "turnId": "u", "itemId": "i", "command": "ls"}),
        );
        let (granted, reason) = automatic(&command, Some(SandboxMode::DangerFullAccess));
        assert_eq!((granted, reason), (Ok(json!({"decision": "accept"})), None));
        let (declined, reason) = automatic(&command, Some(SandboxMode::WorkspaceWrite));
        assert_eq!(declined, Ok(json!({"decision": "decline"})));
        assert!(reason.unwrap().contains("WorkspaceWrite"));
    }
}
