//! The person at the MCP client, asked through `elicitation/create`: the MCP
//! side of `actors::person::AskPerson`. A call made as a task puts the same
//! form in the task's `input_required` too (`tasks/get` shows it,
//! `tasks/update` answers it); the first answer wins and the other is
//! withdrawn: a `notifications/cancelled` for the direct request, an empty
//! response to our own input request for the task.

use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CancelledNotificationParam, ClientResult, ElicitRequest, ElicitRequestParams, ElicitResult,
    ElicitationAction, ElicitationSchema, InputRequest, ProtocolVersion, RequestId, ServerRequest,
};
use rmcp::service::{Peer, PeerRequestOptions, RequestContext};
use rmcp::task_manager::{TaskContext, TaskManager};
use rmcp::{RoleServer, ServiceError};
use serde_json::Value;

use crate::actors::person::{AskPerson, Asking, Person, PersonAnswer, PersonQuestion};
use crate::config::Approvals;

/// The task a call runs as, once it is spawned (a run starts before its
/// task exists, so the slot is filled a moment later).
pub(super) type TaskSlot = Arc<OnceLock<(TaskManager, TaskContext)>>;

/// Asks over one client connection.
struct ClientPerson {
    peer: Peer<RoleServer>,
    task: TaskSlot,
    /// Whether `elicitation/create` may be sent as a request of ours: not on
    /// protocol 2026-07-28, where only the task's `input_required` asks.
    direct: bool,
}

/// Whether the client that made this call declared that it shows forms (the
/// elicitation capability; with neither mode named, form is meant). On
/// protocol 2026-07-28 (Claude Code's) there is no `initialize`: the
/// capabilities come in each request's `_meta`, which the context reads.
pub(super) fn client_elicits(context: &RequestContext<RoleServer>) -> bool {
    context
        .client_capabilities()
        .and_then(|capabilities| capabilities.elicitation)
        .is_some_and(|elicitation| elicitation.form.is_some() || elicitation.url.is_none())
}

/// Whether the server may send this client requests of its own: protocol
/// 2026-07-28 forbids it (rmcp refuses them), a question travels inside an
/// answer there.
fn may_send_requests(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_none_or(|version| version < ProtocolVersion::V_2026_07_28)
}

/// The person to ask for a run started by this call, per the setting and
/// what the client declared; `None`: the caller answers. `task`: the call's
/// task, once spawned, when it runs as one. On protocol 2026-07-28 a call
/// that is no task has no way to ask (its answer has long gone when Codex
/// asks), so the caller answers.
pub(super) fn for_call(
    approvals: Approvals,
    context: &RequestContext<RoleServer>,
    task: Option<TaskSlot>,
) -> Option<Person> {
    let direct = may_send_requests(context);
    if !direct && task.is_none() {
        return None;
    }
    approvals.asks_person(client_elicits(context)).then(|| {
        Person::new(ClientPerson {
            peer: context.peer.clone(),
            task: task.unwrap_or_default(),
            direct,
        })
    })
}

impl AskPerson for ClientPerson {
    fn ask(&self, key: &str, question: PersonQuestion) -> Asking {
        let peer = self.peer.clone();
        let task = self.task.get().cloned();
        let may_send = self.direct;
        let key = format!("approval-{key}");
        Box::pin(async move {
            let params = match form(question) {
                Ok(params) => params,
                Err(reason) => return PersonAnswer::Unavailable(reason),
            };
            let params_for_direct = params.clone();
            let direct = async move {
                if may_send {
                    ask_directly(peer, params_for_direct).await
                } else {
                    // Only the task asks; its answer ends the select below.
                    std::future::pending().await
                }
            };
            let Some((tasks, context)) = task else {
                return match may_send {
                    true => direct.await,
                    false => PersonAnswer::Unavailable(NO_WAY_TO_ASK.into()),
                };
            };
            tokio::pin!(direct);
            // Answered or not, our input request leaves the task when this
            // future ends or is dropped.
            let _withdraw = WithdrawInput {
                tasks,
                task_id: context.task_id().to_string(),
                key: key.clone(),
            };
            let via_task = async {
                let input = InputRequest::Elicitation(ElicitRequest::new(params));
                match context.request_input(key, input).await {
                    Ok(value) => Some(match serde_json::from_value::<ElicitResult>(value) {
                        Ok(result) => answer_of(result),
                        Err(error) => PersonAnswer::Unavailable(format!(
                            "tasks/update answered with no elicitation result: {error}"
                        )),
                    }),
                    // The task was cancelled: its run is being interrupted.
                    Err(_) => None,
                }
            };
            tokio::pin!(via_task);
            tokio::select! {
                // A client that cannot show the form (a headless one) makes
                // it the caller's: the task's input request is withdrawn too,
                // or the run would wait on a form nobody sees.
                answer = &mut direct => answer,
                answered = &mut via_task => match answered {
                    Some(answer) => answer,
                    // The direct form still stands until the run ends.
                    None if may_send => direct.await,
                    None => PersonAnswer::Unavailable(NO_WAY_TO_ASK.into()),
                },
            }
        })
    }
}

/// Why a person on protocol 2026-07-28 cannot be asked: no request of the
/// server's may reach the client there, and the call has no task (yet, or
/// any more) whose `input_required` could carry the form.
const NO_WAY_TO_ASK: &str =
    "protocol 2026-07-28 carries no request from the server, and the call has no task to ask in";

/// The form as MCP carries it.
fn form(question: PersonQuestion) -> Result<ElicitRequestParams, String> {
    let requested_schema = serde_json::from_value::<ElicitationSchema>(question.schema)
        .map_err(|error| format!("the form cannot be put as an MCP elicitation: {error}"))?;
    Ok(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: question.message,
        requested_schema,
    })
}

async fn ask_directly(peer: Peer<RoleServer>, params: ElicitRequestParams) -> PersonAnswer {
    let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
    let handle = match peer
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
    {
        Ok(handle) => handle,
        Err(error) => return PersonAnswer::Unavailable(error.to_string()),
    };
    let mut withdraw = CancelOnDrop {
        peer: peer.clone(),
        id: Some(handle.id.clone()),
    };
    let response = handle.await_response().await;
    withdraw.id = None;
    match response {
        Ok(ClientResult::ElicitResult(result)) => answer_of(result),
        Ok(_) => PersonAnswer::Unavailable("the client answered with something else".into()),
        Err(ServiceError::McpError(error)) => PersonAnswer::Unavailable(error.message.to_string()),
        Err(error) => PersonAnswer::Unavailable(error.to_string()),
    }
}

fn answer_of(result: ElicitResult) -> PersonAnswer {
    match result.action {
        ElicitationAction::Accept => PersonAnswer::Accept(result.content.unwrap_or(Value::Null)),
        ElicitationAction::Decline => PersonAnswer::Decline,
        ElicitationAction::Cancel => PersonAnswer::Cancel,
        // An action newer than this sidecar: nobody decided.
        _ => PersonAnswer::Unavailable("the client answered with an unknown action".into()),
    }
}

/// Withdraws an elicitation still open when its asker is dropped (the
/// request was answered another way): the client may close its form.
struct CancelOnDrop {
    peer: Peer<RoleServer>,
    id: Option<RequestId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let peer = self.peer.clone();
        runtime.spawn(async move {
            let reason = "answered elsewhere, or the run ended".to_string();
            let param = CancelledNotificationParam::new(Some(id), Some(reason));
            if let Err(error) = peer.notify_cancelled(param).await {
                tracing::debug!(%error, "could not withdraw an elicitation");
            }
        });
    }
}

/// Takes our input request out of the task, so `tasks/get` no longer shows
/// `input_required` (an answered key is ignored).
struct WithdrawInput {
    tasks: TaskManager,
    task_id: String,
    key: String,
}

impl Drop for WithdrawInput {
    fn drop(&mut self) {
        let withdrawn = [(std::mem::take(&mut self.key), Value::Null)];
        // A task already gone has nothing to withdraw.
        let _ = self.tasks.update_task(&self.task_id, withdrawn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::approvals;
    use crate::actors::person::question;
    use crate::protocol::{RequestId, ServerRequest as CodexRequest};
    use serde_json::json;

    /// Every form the actors build is one MCP can carry: rmcp's schema type
    /// takes it, and it goes out as it was built.
    #[test]
    fn every_question_is_a_valid_elicitation() {
        let requests = [
            (
                "item/commandExecution/requestApproval",
                json!({"threadId": "t", "turnId": "u",
                "itemId": "i", "command": "ls", "availableDecisions": ["accept", "acceptForSession"]}),
            ),
            (
                "item/fileChange/requestApproval",
                json!({"threadId": "t", "turnId": "u", "itemId": "i"}),
            ),
            (
                "item/permissions/requestApproval",
                json!({"permissions": {"network": {"enabled": true}}}),
            ),
            (
                "item/tool/requestUserInput",
                json!({"questions": [
                {"id": "colour", "question": "Which?", "options": [{"label": "Red"}]},
                {"id": "name", "question": "Your name?"}]}),
            ),
            (
                "mcpServer/elicitation/request",
                json!({"serverName": "s", "mode": "form",
                "message": "Which?", "requestedSchema": {"type": "object",
                    "properties": {"ok": {"type": "boolean"}}}}),
            ),
        ];
        for (method, params) in requests {
            let request = CodexRequest::new(RequestId::Integer(1), method.into(), params);
            let approval = approvals::pending(&request, "a1".into(), None).unwrap();
            let asked = question(&request, &approval, None).unwrap();
            let schema = asked.schema.clone();
            let ElicitRequestParams::FormElicitationParams {
                requested_schema, ..
            } = form(asked).unwrap_or_else(|error| panic!("{method}: {error}"))
            else {
                panic!("{method}: not a form");
            };
            assert_eq!(
                serde_json::to_value(requested_schema).unwrap(),
                schema,
                "{method}"
            );
        }
    }
}
