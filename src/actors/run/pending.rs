//! Server requests the run holds: every request gets exactly one answer,
//! from the person at the MCP client (an elicitation form), from the caller
//! (`codex_approve`), from another client of the thread, from the sandbox,
//! or declined at the end. The decisions themselves are pure and live in
//! `actors::approvals` and `actors::person`.

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::{RunActor, RunMsg, RunRef, RunState, note, write};
use crate::actors::approvals::{self, Choice, PendingApproval};
use crate::actors::audit_writer::AuditOp;
use crate::actors::broker::BrokerMsg;
use crate::actors::person::{self, Person, PersonAnswer, PersonQuestion, Verdict};
use crate::actors::types::EngineError;
use crate::protocol::jsonrpc::RpcError;
use crate::protocol::{RequestId, ServerRequest, ServerRequestKind};
use crate::store::{AnsweredRequest, Answerer, AuditEvent, Refusal, RefusedRequest};

/// A request the run holds until someone answers it.
pub(super) struct Held {
    pub(super) approval: PendingApproval,
    pub(super) request: ServerRequest,
    /// Set while the person is asked; dropping it (the request answered
    /// any other way, or handed back) withdraws the question.
    asking: Option<oneshot::Sender<()>>,
}

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
            if let Some(mut approval) = approvals::pending(&request, id, files.as_deref())
                && let Some(record) = &state.record
            {
                let question = state.person.as_ref().and_then(|person| {
                    person::question(&request, &approval, files.as_deref())
                        .map(|question| (person.clone(), question))
                });
                let asking = question.map(|(person, question)| {
                    ask(myself, &person, &approval.approval_id, question)
                });
                approval.asked_person = asking.is_some();
                let message = if approval.asked_person {
                    format!(
                        "asking the person in the MCP client: approval {}",
                        approval.approval_id
                    )
                } else {
                    format!("waiting for the caller: approval {}", approval.approval_id)
                };
                note(state, &message, request.params.clone());
                let _ = state.broker.cast(BrokerMsg::Pending {
                    run_id: record.run_id.clone(),
                    approval: approval.clone(),
                });
                state.pending.push(Held {
                    approval,
                    request,
                    asking,
                });
                self.live_changed(myself, state, true);
                return;
            }
        }
        let (answer, refused) = approvals::automatic(&request, state.sandbox);
        if let Some(reason) = refused {
            refuse(state, &request, Refusal::Declined, &reason);
        }
        respond(state, &request, answer, Answerer::Sidecar).await;
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
            .position(|held| held.approval.approval_id == approval_id)
        else {
            return Err(EngineError::BadRequest(format!(
                "no pending approval {approval_id} on this run"
            )));
        };
        if state.pending[index].asking.is_some() {
            return Err(EngineError::PersonAsked(approval_id.to_string()));
        }
        let answer = approvals::answer(&state.pending[index].request, choice).ok_or_else(|| {
            EngineError::BadRequest(
                "a question without options needs a free answer, which codex_approve cannot give; decline or cancel it"
                    .to_string(),
            )
        })?;
        let Held {
            approval, request, ..
        } = state.pending.remove(index);
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
        answered(state, &request, Some(choice.as_str()), Answerer::Caller);
        respond(state, &request, answer, Answerer::Caller).await;
        self.resolved(state, &approval.approval_id);
        self.live_changed(myself, state, true);
        Ok(())
    }

    /// The person's answer to a request they were asked about: it goes to
    /// Codex at once, or (dismissed, no form) the request is the caller's
    /// again. An answer to a request no longer held is only audited.
    pub(super) async fn on_person_answered(
        &self,
        myself: &RunRef,
        state: &mut RunState,
        approval_id: &str,
        answer: PersonAnswer,
    ) {
        let Some(index) = state
            .pending
            .iter()
            .position(|held| held.approval.approval_id == approval_id && held.asking.is_some())
        else {
            let message = format!(
                "ignored the person's late answer to approval {approval_id}: it was answered already"
            );
            note(state, &message, json!({ "answer": format!("{answer:?}") }));
            return;
        };
        match person::verdict(&state.pending[index].request, &answer) {
            Verdict::HandBack(reason) => {
                let held = &mut state.pending[index];
                held.asking = None;
                held.approval.asked_person = false;
                let approval = held.approval.clone();
                let message =
                    format!("approval {approval_id} is the caller's to answer now: {reason}");
                note(state, &message, Value::Null);
                if let Some(record) = &state.record {
                    let _ = state.broker.cast(BrokerMsg::Pending {
                        run_id: record.run_id.clone(),
                        approval,
                    });
                }
                self.live_changed(myself, state, true);
            }
            Verdict::Answer {
                result,
                choice,
                granted,
            } => {
                let held = state.pending.remove(index);
                let message = format!(
                    "the person in the MCP client chose {choice} for approval {approval_id}"
                );
                note(state, &message, Value::Null);
                if !granted {
                    refuse(state, &held.request, Refusal::Declined, &message);
                }
                answered(state, &held.request, Some(&choice), Answerer::Person);
                respond(state, &held.request, result, Answerer::Person).await;
                self.resolved(state, approval_id);
                self.live_changed(myself, state, true);
            }
        }
    }

    /// Declines every request still waiting for the caller, with `reason`.
    pub(super) async fn decline_pending(&self, state: &mut RunState, reason: &str) {
        for Held {
            approval, request, ..
        } in std::mem::take(&mut state.pending)
        {
            refuse(state, &request, Refusal::Declined, reason);
            let answer = approvals::answer(&request, Choice::Decline)
                .unwrap_or_else(|| Err(reason.to_string()));
            respond(state, &request, answer, Answerer::Sidecar).await;
            self.resolved(state, &approval.approval_id);
        }
    }

    /// Another client of the thread (a person in the Codex terminal UI)
    /// answered a request we hold: it is no longer pending, the caller can no
    /// longer answer it, and a question to the person is withdrawn.
    /// Whether it was one of ours.
    pub(super) fn answered_elsewhere(
        &self,
        state: &mut RunState,
        id: &RequestId,
        params: &Value,
    ) -> bool {
        let Some(index) = state.pending.iter().position(|held| held.request.id == *id) else {
            return false;
        };
        let Held {
            approval, request, ..
        } = state.pending.remove(index);
        answered(state, &request, None, Answerer::OtherClient);
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

/// Asks the person in a task of its own (never in `handle`), which casts
/// the answer back; returns the handle whose drop withdraws the question.
fn ask(
    myself: &RunRef,
    person: &Person,
    approval_id: &str,
    question: PersonQuestion,
) -> oneshot::Sender<()> {
    let (withdraw, withdrawn) = oneshot::channel::<()>();
    let asking = person.ask(approval_id, question);
    let run = myself.clone();
    let approval_id = approval_id.to_string();
    tokio::spawn(async move {
        tokio::select! {
            answer = asking => {
                let _ = run.cast(RunMsg::PersonAnswered { approval_id, answer });
            }
            // Answered some other way: dropping `asking` withdraws the form.
            _ = withdrawn => {}
        }
    });
    withdraw
}

/// Sends the answer to a server request and audits it, with who decided.
pub(super) async fn respond(
    state: &RunState,
    request: &ServerRequest,
    answer: Result<Value, String>,
    by: Answerer,
) {
    let (sent, response) = match answer {
        Ok(result) => (
            state.connection.respond(&request.id, &result).await,
            AuditEvent::Response {
                id: request.id.clone(),
                result: Some(result),
                error: None,
                answered_by: Some(by),
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
                answered_by: Some(by),
            };
            (sent, response)
        }
    };
    if let Err(error) = sent {
        tracing::warn!(%error, method = %request.method, "could not answer a server request");
    }
    write(state, AuditOp::event(response));
}

/// Records who answered a request held for an answer, for the summary.
fn answered(state: &mut RunState, request: &ServerRequest, answer: Option<&str>, by: Answerer) {
    if let Some(record) = state.record.as_mut() {
        record.note_answered(AnsweredRequest {
            method: request.method.clone(),
            detail: request.command().map(str::to_string),
            answer: answer.map(str::to_string),
            by,
        });
    }
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
