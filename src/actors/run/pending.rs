//! Server requests the run holds for the caller: every request gets an
//! answer, from the caller (`codex_approve`), from another client of the
//! thread, from the sandbox, or declined at the end. The decisions
//! themselves are pure and live in `actors::approvals`.

use serde_json::Value;

use super::{RunActor, RunRef, RunState, note, write};
use crate::actors::approvals::{self, Choice};
use crate::actors::audit_writer::AuditOp;
use crate::actors::broker::BrokerMsg;
use crate::actors::types::EngineError;
use crate::protocol::jsonrpc::RpcError;
use crate::protocol::{RequestId, ServerRequest, ServerRequestKind};
use crate::store::{AuditEvent, Refusal, RefusedRequest};

/// JSON-RPC code for a server request we will not serve.
const DECLINED_REQUEST: i64 = -32000;

impl RunActor {
    /// Every request gets an answer. When the caller asked for an approval
    /// policy that asks, it decides (`Approve`) and the request waits;
    /// otherwise the sandbox decides at once (see `approvals::automatic`).
    pub(super) async fn on_request(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        mut request: ServerRequest,
    ) {
        let credit = request.take_credit();
        write(
            state,
            AuditOp::credited(
                AuditEvent::ServerRequest {
                    id: request.id.clone(),
                    method: request.method.clone(),
                    params: request.params.clone(),
                },
                credit,
            ),
        );
        if state.interactive {
            state.next_approval += 1;
            let id = format!("a{}", state.next_approval);
            let files = match &request.kind {
                ServerRequestKind::FileChangeApproval(params) => {
                    state.file_changes.get(&params.item_id).cloned()
                }
                _ => None,
            };
            if let Some(approval) = approvals::pending(&request, id, files.as_deref())
                && let Some(record) = &state.record
            {
                let message = format!("waiting for the caller: approval {}", approval.approval_id);
                note(state, &message, request.params.clone());
                let _ = state.broker.cast(BrokerMsg::Pending {
                    run_id: record.run_id.clone(),
                    approval: approval.clone(),
                });
                state.pending.push((approval, request));
                self.live_changed(myself, state, true);
                return;
            }
        }
        let (answer, refused) = approvals::automatic(&request, state.sandbox);
        if let Some(reason) = refused {
            refuse(state, &request, Refusal::Declined, &reason);
        }
        respond(state, &request, answer).await;
    }

    /// The caller's answer to a pending request.
    pub(super) async fn on_approve(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        approval_id: &str,
        choice: Choice,
    ) -> Result<(), EngineError> {
        let Some(index) = state
            .pending
            .iter()
            .position(|(approval, _)| approval.approval_id == approval_id)
        else {
            return Err(EngineError::BadRequest(format!(
                "no pending approval {approval_id} on this run"
            )));
        };
        let answer = approvals::answer(&state.pending[index].1, choice).ok_or_else(|| {
            EngineError::BadRequest(
                "a question without options needs a free answer, which codex_approve cannot give; decline or cancel it"
                    .to_string(),
            )
        })?;
        let (approval, request) = state.pending.remove(index);
        let message = format!(
            "the caller chose {} for approval {}",
            choice.as_str(),
            approval.approval_id
        );
        note(state, &message, Value::Null);
        if choice != Choice::Accept {
            let refusal = if choice == Choice::Cancel {
                Refusal::Cancelled
            } else {
                Refusal::Declined
            };
            refuse(state, &request, refusal, &message);
        }
        respond(state, &request, answer).await;
        self.resolved(state, &approval.approval_id);
        self.live_changed(myself, state, true);
        Ok(())
    }

    /// Declines every request still waiting for the caller, with `reason`.
    pub(super) async fn decline_pending(&self, state: &mut RunState, reason: &str) {
        for (approval, request) in std::mem::take(&mut state.pending) {
            refuse(state, &request, Refusal::Declined, reason);
            let answer = approvals::answer(&request, Choice::Decline)
                .unwrap_or_else(|| Err(reason.to_string()));
            respond(state, &request, answer).await;
            self.resolved(state, &approval.approval_id);
        }
    }

    /// Another client of the thread (a person in the Codex terminal UI)
    /// answered a request we hold for the caller: it is no longer pending,
    /// and the caller can no longer answer it.
    /// Whether it was one of ours.
    pub(super) fn answered_elsewhere(
        &self,
        state: &mut RunState,
        id: &RequestId,
        params: &Value,
    ) -> bool {
        let Some(index) = state
            .pending
            .iter()
            .position(|(_, request)| request.id == *id)
        else {
            return false;
        };
        let (approval, _) = state.pending.remove(index);
        let message = format!(
            "approval {} was answered in another client of the thread",
            approval.approval_id
        );
        note(state, &message, params.clone());
        self.resolved(state, &approval.approval_id);
        true
    }

    pub(super) fn resolved(&self, state: &RunState, approval_id: &str) {
        if let Some(record) = &state.record {
            let _ = state.broker.cast(BrokerMsg::Resolved {
                run_id: record.run_id.clone(),
                approval_id: approval_id.to_string(),
            });
        }
    }
}

/// Sends the answer to a server request and audits it.
pub(super) async fn respond(
    state: &RunState,
    request: &ServerRequest,
    answer: Result<Value, String>,
) {
    let (sent, response) = match answer {
        Ok(result) => (
            state.connection.respond(&request.id, &result).await,
            AuditEvent::Response {
                id: request.id.clone(),
                result: Some(result),
                error: None,
            },
        ),
        Err(message) => {
            let error = RpcError {
                code: DECLINED_REQUEST,
                message,
                data: None,
            };
            let sent = state.connection.respond_error(&request.id, &error).await;
            let response = AuditEvent::Response {
                id: request.id.clone(),
                result: None,
                error: Some(error),
            };
            (sent, response)
        }
    };
    if let Err(error) = sent {
        tracing::warn!(%error, method = %request.method, "could not answer a server request");
    }
    write(state, AuditOp::event(response));
}

/// Records a request we did not grant: in the event stream and the summary.
pub(super) fn refuse(
    state: &mut RunState,
    request: &ServerRequest,
    refusal: Refusal,
    reason: &str,
) {
    note(state, reason, request.params.clone());
    if let Some(record) = state.record.as_mut() {
        record.note_refused(RefusedRequest {
            method: request.method.clone(),
            detail: request.command().map(str::to_string),
            refusal,
            reason: reason.to_string(),
        });
    }
}
