//! Asking the person at the MCP client about a request Codex holds a turn
//! for. The actors name no MCP type: a run is handed a [`Person`] (the MCP
//! layer implements [`AskPerson`] over its client connection), asks it a
//! [`PersonQuestion`] built here from the request, and turns the
//! [`PersonAnswer`] into Codex's response here too. Both translations are
//! pure, so their rules are tested without a client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::actors::approvals::PendingApproval;
use crate::protocol::{ApprovalDecision, ServerRequest, ServerRequestKind};

/// What the person is shown: a message and the form (a JSON Schema object
/// of primitive fields, as MCP's `elicitation/create` takes it).
#[derive(Debug, Clone, PartialEq)]
pub struct PersonQuestion {
    pub message: String,
    pub schema: Value,
}

/// What came back from the person, or why nobody could be asked.
#[derive(Debug, Clone, PartialEq)]
pub enum PersonAnswer {
    /// The form was submitted with this content.
    Accept(Value),
    Decline,
    /// The form was dismissed.
    Cancel,
    /// The client could not show the form (it said so, or the request
    /// failed); the reason, for the audit.
    Unavailable(String),
}

/// A future that asks and resolves with the answer. Dropping it withdraws
/// the question from the client.
pub type Asking = Pin<Box<dyn Future<Output = PersonAnswer> + Send>>;

/// Asks the person at the client. `key` names the question uniquely within
/// its run (the approval id).
pub trait AskPerson: Send + Sync + 'static {
    fn ask(&self, key: &str, question: PersonQuestion) -> Asking;
}

/// Who a run asks when a request needs a person: cheap to clone, carried
/// from the MCP call to the run actor.
#[derive(Clone)]
pub struct Person(Arc<dyn AskPerson>);

impl Person {
    pub fn new(asker: impl AskPerson) -> Person {
        Person(Arc::new(asker))
    }

    pub fn ask(&self, key: &str, question: PersonQuestion) -> Asking {
        self.0.ask(key, question)
    }
}

impl std::fmt::Debug for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Person")
    }
}

/// The form field an approval's decision comes in.
const DECISION: &str = "decision";

/// The question for `request`, or `None` when it cannot be put as a form
/// (an unknown kind, a URL elicitation): then the caller answers it.
pub fn question(
    request: &ServerRequest,
    approval: &PendingApproval,
    files: Option<&[String]>,
) -> Option<PersonQuestion> {
    let params = &request.params;
    let text = |key: &str| params.get(key).and_then(Value::as_str);
    let reason = text("reason").map(|reason| format!("\nReason: {reason}"));
    let reason = reason.unwrap_or_default();
    match &request.kind {
        ServerRequestKind::CommandApproval(command) => {
            let cwd = command
                .cwd
                .as_deref()
                .map(|cwd| format!("\nin {cwd}"))
                .unwrap_or_default();
            Some(PersonQuestion {
                message: format!(
                    "Codex wants to run a command:\n{}{cwd}{reason}",
                    command.command.as_deref().unwrap_or_default()
                ),
                schema: decision_form(offered(params)),
            })
        }
        ServerRequestKind::FileChangeApproval(_) => {
            let files = files
                .filter(|files| !files.is_empty())
                .map(|files| files.join("\n"))
                .or_else(|| text("grantRoot").map(|root| format!("any file under {root}")))
                .unwrap_or_else(|| approval.summary.clone());
            Some(PersonQuestion {
                message: format!("Codex wants to change files:\n{files}{reason}"),
                schema: decision_form(vec!["accept", "acceptForSession", "decline"]),
            })
        }
        ServerRequestKind::PermissionsApproval => Some(PersonQuestion {
            message: format!(
                "Codex asks for more permissions: {}{reason}",
                approval.summary
            ),
            schema: decision_form(vec!["accept", "acceptForSession", "decline"]),
        }),
        ServerRequestKind::UserInput => user_input_question(params),
        ServerRequestKind::McpElicitation => {
            let form = matches!(
                text("mode"),
                None | Some("form" | "openai/form" | "openaiForm")
            );
            let schema = params
                .get("requestedSchema")
                .filter(|schema| schema.is_object());
            let server = text("serverName").unwrap_or("an MCP server");
            match (form, schema) {
                (true, Some(schema)) => Some(PersonQuestion {
                    message: format!(
                        "{} (asked by Codex's MCP server {server})",
                        text("message").unwrap_or_default()
                    ),
                    schema: schema.clone(),
                }),
                _ => None,
            }
        }
        ServerRequestKind::Other => None,
    }
}

/// The decisions Codex offers for a command (`availableDecisions`), of
/// those a form can carry: accept, acceptForSession when offered, decline.
fn offered(params: &Value) -> Vec<&'static str> {
    let available: Vec<&str> = params["availableDecisions"]
        .as_array()
        .map(|decisions| decisions.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut decisions = vec!["accept"];
    if available.contains(&"acceptForSession") {
        decisions.push("acceptForSession");
    }
    decisions.push("decline");
    decisions
}

fn decision_form(decisions: Vec<&'static str>) -> Value {
    json!({
        "type": "object",
        "properties": {
            DECISION: {
                "type": "string",
                "title": "Decision",
                "description": "accept: this once; acceptForSession: also later ones like it; decline: refuse",
                "enum": decisions,
            }
        },
        "required": [DECISION],
    })
}

/// One field per question (its id): the options' labels as an enum, or
/// free text for a question without options.
fn user_input_question(params: &Value) -> Option<PersonQuestion> {
    let questions = params["questions"].as_array()?;
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut lines = Vec::new();
    for question in questions {
        let id = question["id"].as_str()?;
        let text = question["question"].as_str().unwrap_or(id);
        let labels: Vec<&str> = question["options"]
            .as_array()
            .map(|options| options.iter().filter_map(|o| o["label"].as_str()).collect())
            .unwrap_or_default();
        let mut field = json!({"type": "string", "title": text});
        if !labels.is_empty() {
            field["enum"] = json!(labels);
        }
        properties.insert(id.to_string(), field);
        required.push(id.to_string());
        lines.push(text.to_string());
    }
    Some(PersonQuestion {
        message: format!("Codex asks:\n{}", lines.join("\n")),
        schema: json!({"type": "object", "properties": properties, "required": required}),
    })
}

/// What the person's answer comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send this to Codex now. `choice` is what the person chose, in a
    /// word, for the audit; `granted` whether Codex may go ahead.
    Answer {
        result: Result<Value, String>,
        choice: String,
        granted: bool,
    },
    /// Nobody decided: the caller answers after all (`codex_approve`).
    HandBack(String),
}

/// Codex's response to `request` for the person's `answer`.
pub fn verdict(request: &ServerRequest, answer: &PersonAnswer) -> Verdict {
    let content = match answer {
        PersonAnswer::Cancel => {
            return Verdict::HandBack("the person dismissed the form".to_string());
        }
        PersonAnswer::Unavailable(reason) => {
            return Verdict::HandBack(format!("the client could not ask the person: {reason}"));
        }
        PersonAnswer::Decline => None,
        PersonAnswer::Accept(content) => Some(content),
    };
    let declined = |result| Verdict::Answer {
        result,
        choice: "decline".to_string(),
        granted: false,
    };
    match &request.kind {
        ServerRequestKind::CommandApproval(_) | ServerRequestKind::FileChangeApproval(_) => {
            let Some(content) = content else {
                return declined(Ok(ApprovalDecision::Decline.to_result()));
            };
            match decision(content) {
                Some(decision) => Verdict::Answer {
                    result: Ok(decision.to_result()),
                    choice: decision.as_str().to_string(),
                    granted: decision != ApprovalDecision::Decline,
                },
                None => unusable(content),
            }
        }
        ServerRequestKind::PermissionsApproval => {
            let Some(content) = content else {
                return declined(Err("declined by the person".to_string()));
            };
            let scope = match decision(content) {
                Some(ApprovalDecision::Accept) => "turn",
                Some(ApprovalDecision::AcceptForSession) => "session",
                Some(_) => return declined(Err("declined by the person".to_string())),
                None => return unusable(content),
            };
            Verdict::Answer {
                result: Ok(json!({
                    "permissions": request.params.get("permissions").cloned().unwrap_or(Value::Null),
                    "scope": scope,
                })),
                choice: if scope == "turn" {
                    "accept"
                } else {
                    "acceptForSession"
                }
                .to_string(),
                granted: true,
            }
        }
        ServerRequestKind::UserInput => {
            let Some(content) = content else {
                return declined(Err("declined by the person".to_string()));
            };
            match answers(&request.params, content) {
                Some(result) => Verdict::Answer {
                    result: Ok(result),
                    choice: "accept".to_string(),
                    granted: true,
                },
                None => unusable(content),
            }
        }
        ServerRequestKind::McpElicitation => match content {
            Some(content) => Verdict::Answer {
                result: Ok(json!({"action": "accept", "content": content})),
                choice: "accept".to_string(),
                granted: true,
            },
            None => declined(Ok(json!({"action": "decline"}))),
        },
        ServerRequestKind::Other => {
            Verdict::HandBack("the sidecar does not serve this request".to_string())
        }
    }
}

fn unusable(content: &Value) -> Verdict {
    Verdict::HandBack(format!(
        "the form came back with an answer it did not offer: {content}"
    ))
}

fn decision(content: &Value) -> Option<ApprovalDecision> {
    match content.get(DECISION)?.as_str()? {
        "accept" => Some(ApprovalDecision::Accept),
        "acceptForSession" => Some(ApprovalDecision::AcceptForSession),
        "decline" => Some(ApprovalDecision::Decline),
        _ => None,
    }
}

/// Codex's `answers` for a question form: every question answered.
fn answers(params: &Value, content: &Value) -> Option<Value> {
    let mut answers = Map::new();
    for question in params["questions"].as_array()? {
        let id = question["id"].as_str()?;
        let answer = content.get(id)?.as_str()?;
        answers.insert(id.to_string(), json!({ "answers": [answer] }));
    }
    Some(json!({ "answers": answers }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::approvals;
    use crate::protocol::RequestId;

    fn request(method: &str, params: Value) -> ServerRequest {
        ServerRequest::new(RequestId::Integer(7), method.into(), params)
    }

    fn asked(request: &ServerRequest) -> PersonQuestion {
        let approval = approvals::pending(request, "a1".into(), None).unwrap();
        question(request, &approval, None).unwrap()
    }

    #[test]
    fn a_command_form_names_it_and_offers_what_codex_offers() {
        let command = request(
            "item/commandExecution/requestApproval",
            json!({"threadId": "t", "turnId": "u", "itemId": "i", "command": "rm -rf build",
                "cwd": "/srv/p", "availableDecisions": ["accept", "acceptForSession", "cancel"]}),
        );
        let asked = asked(&command);
        assert!(asked.message.contains("rm -rf build"), "{}", asked.message);
        assert!(asked.message.contains("/srv/p"), "{}", asked.message);
        assert_eq!(
            asked.schema["properties"]["decision"]["enum"],
            json!(["accept", "acceptForSession", "decline"])
        );
        let once = request(
            "item/commandExecution/requestApproval",
            json!({"threadId": "t", "turnId": "u", "itemId": "i", "command": "ls",
                "availableDecisions": ["accept", "cancel"]}),
        );
        assert_eq!(
            self::asked(&once).schema["properties"]["decision"]["enum"],
            json!(["accept", "decline"]),
            "acceptForSession only where Codex offers it"
        );
        let chosen = |decision: &str| {
            verdict(
                &command,
                &PersonAnswer::Accept(json!({ "decision": decision })),
            )
        };
        assert!(matches!(chosen("acceptForSession"),
            Verdict::Answer { result: Ok(result), granted: true, .. } if result == json!({"decision": "acceptForSession"})));
        assert!(matches!(chosen("decline"),
            Verdict::Answer { result: Ok(result), granted: false, .. } if result == json!({"decision": "decline"})));
        assert!(matches!(chosen("rm everything"), Verdict::HandBack(_)));
        assert!(matches!(verdict(&command, &PersonAnswer::Decline),
            Verdict::Answer { result: Ok(result), .. } if result == json!({"decision": "decline"})));
        assert!(matches!(
            verdict(&command, &PersonAnswer::Cancel),
            Verdict::HandBack(_)
        ));
        assert!(matches!(
            verdict(&command, &PersonAnswer::Unavailable("no forms".into())),
            Verdict::HandBack(_)
        ));
    }

    #[test]
    fn a_question_form_carries_its_options_and_the_choice_goes_back() {
        let question = request(
            "item/tool/requestUserInput",
            json!({"questions": [{"id": "colour", "question": "Which colour?",
                "options": [{"label": "Red (Recommended)"}, {"label": "Blue"}]}]}),
        );
        let asked = asked(&question);
        assert_eq!(
            asked.schema["properties"]["colour"]["enum"],
            json!(["Red (Recommended)", "Blue"])
        );
        assert!(asked.message.contains("Which colour?"));
        assert_eq!(
            verdict(&question, &PersonAnswer::Accept(json!({"colour": "Blue"}))),
            Verdict::Answer {
                result: Ok(json!({"answers": {"colour": {"answers": ["Blue"]}}})),
                choice: "accept".into(),
                granted: true,
            }
        );
        assert!(matches!(
            verdict(&question, &PersonAnswer::Accept(json!({}))),
            Verdict::HandBack(_)
        ));
    }

    #[test]
    fn an_mcp_elicitation_passes_its_schema_and_content_through() {
        let schema = json!({"type": "object", "properties": {"target": {"type": "string", "enum": ["prod", "staging"]}}});
        let elicitation = request(
            "mcpServer/elicitation/request",
            json!({"serverName": "deploy", "mode": "form", "message": "Which target?", "requestedSchema": schema}),
        );
        let asked = asked(&elicitation);
        assert_eq!(asked.schema, schema);
        assert!(asked.message.contains("Which target?") && asked.message.contains("deploy"));
        assert!(matches!(
            verdict(&elicitation, &PersonAnswer::Accept(json!({"target": "prod"}))),
            Verdict::Answer { result: Ok(result), .. }
                if result == json!({"action": "accept", "content": {"target": "prod"}})
        ));
        let url = request(
            "mcpServer/elicitation/request",
            json!({"serverName": "s", "mode": "url", "message": "log in", "url": "https://x", "elicitationId": "e"}),
        );
        let approval = approvals::pending(&url, "a2".into(), None).unwrap();
        assert_eq!(
            question(&url, &approval, None),
            None,
            "a URL stays the caller's"
        );
    }

    #[test]
    fn permissions_for_the_turn_or_the_session() {
        let permissions = request(
            "item/permissions/requestApproval",
            json!({"permissions": {"network": {"enabled": true}}, "reason": "fetch deps"}),
        );
        let asked = asked(&permissions);
        assert!(
            asked.message.contains("network") && asked.message.contains("fetch deps"),
            "{}",
            asked.message
        );
        assert!(matches!(
            verdict(&permissions, &PersonAnswer::Accept(json!({"decision": "acceptForSession"}))),
            Verdict::Answer { result: Ok(result), .. } if result["scope"] == "session"
        ));
        assert!(matches!(
            verdict(&permissions, &PersonAnswer::Decline),
            Verdict::Answer {
                result: Err(_),
                granted: false,
                ..
            }
        ));
    }
}
