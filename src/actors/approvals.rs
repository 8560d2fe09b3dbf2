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
/// request that is not for the caller (an unknown kind).
pub fn pending(request: &ServerRequest, approval_id: String) -> Option<PendingApproval> {
    let text = |key: &str| request.params.get(key).and_then(Value::as_str);
    let (kind, summary) = match &request.kind {
        ServerRequestKind::CommandApproval(params) => {
            ("command", params.command.clone().unwrap_or_default())
        }
        ServerRequestKind::FileChangeApproval(params) => (
            "fileChange",
            params
                .reason
                .clone()
                .or_else(|| text("grantRoot").map(|root| format!("writes under {root}")))
                .unwrap_or_else(|| "file changes".to_string()),
        ),
        ServerRequestKind::PermissionsApproval => (
            "permissions",
            request
                .params
                .get("permissions")
                .map(Value::to_string)
                .unwrap_or_default(),
        ),
        ServerRequestKind::UserInput => ("userInput", request.params.to_string()),
        ServerRequestKind::McpElicitation => (
            "mcpElicitation",
            text("message").unwrap_or_default().to_string(),
        ),
        ServerRequestKind::Other => return None,
    };
    let summary = match summary.char_indices().nth(SUMMARY_CHARS) {
        Some((end, _)) => format!("{}…", &summary[..end]),
        None => summary,
    };
    Some(PendingApproval {
        approval_id,
        kind,
        summary,
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
            Choice::Accept => None,
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
        let shown = pending(&command, "a1".into()).unwrap();
        assert_eq!(
            (shown.kind, shown.summary.as_str()),
            ("command", "rm -rf build")
        );
        assert_eq!(
            answer(&command, Choice::Cancel),
            Some(Ok(json!({"decision": "cancel"})))
        );

        let question = request("item/tool/requestUserInput", json!({"questions": []}));
        assert_eq!(
            answer(&question, Choice::Accept),
            None,
            "accepting needs answers"
        );
        assert!(matches!(answer(&question, Choice::Decline), Some(Err(_))));

        let elicitation = request(
            "mcpServer/elicitation/request",
            json!({"message": "token?"}),
        );
        assert_eq!(
            answer(&elicitation, Choice::Accept),
            Some(Ok(json!({"action": "accept"})))
        );
        assert!(pending(&request("future/ask", json!({})), "a2".into()).is_none());
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
