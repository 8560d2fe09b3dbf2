//! `Conversations`: persistent conversations with Codex (`codex_chat`,
//! `codex_plan`, `codex_review`). A session is a Codex thread; its id is the
//! thread id, so a person can continue it with `codex resume`. Requests for
//! one session run one at a time, in the order they came; each is an ordinary
//! run (same actors, same audit) that the actor waits out before answering.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::Engine;
use crate::actors::types::{
    EngineError, ResumeRequest, ResumeTarget, RunRequest, RunStatus, TurnSettings, WaitOutcome,
};
use crate::protocol::{ThreadId, TokenCounts};
use crate::store::RunId;

pub struct Conversations;

pub type ConversationsRef = ActorRef<ConversationMsg>;

/// One message to a session (a new one when `session_id` is `None`).
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub session_id: Option<ThreadId>,
    pub prompt: String,
    /// Needed for a new session; a resumed one runs where it last ran.
    pub cwd: Option<PathBuf>,
    /// For this request only.
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    pub timeout: Duration,
    /// Told the run id as soon as the request's run starts (an MCP task
    /// shows it, and interrupts it on cancel).
    pub started: Option<tokio::sync::mpsc::UnboundedSender<RunId>>,
    /// A new session's endpoint (`None`: the default); a resumed one goes
    /// where it went.
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatReply {
    pub session_id: ThreadId,
    pub run_id: RunId,
    pub reply: String,
    pub usage: TokenCounts,
}

type Reply = RpcReplyPort<Result<ChatReply, EngineError>>;

pub enum ConversationMsg {
    /// Call: ask, and answer when Codex has replied.
    Ask(ChatRequest, Reply),
    /// A session's request finished; start its next one (sent by the task
    /// that ran it).
    Done { session: ThreadId },
}

pub struct ConversationsArgs {
    /// The engine without this actor: runs, resumes, waits.
    pub engine: Engine,
    /// Tells Codex the message came from an agent, not a person.
    pub origin: String,
}

pub struct ConversationsState {
    engine: Engine,
    origin: String,
    /// Sessions with a request in flight.
    busy: HashSet<ThreadId>,
    /// Requests waiting for their session, oldest first.
    waiting: HashMap<ThreadId, VecDeque<(ChatRequest, Reply)>>,
}

impl Actor for Conversations {
    type Msg = ConversationMsg;
    type State = ConversationsState;
    type Arguments = ConversationsArgs;

    async fn pre_start(
        &self,
        _myself: ConversationsRef,
        args: ConversationsArgs,
    ) -> Result<ConversationsState, ActorProcessingErr> {
        Ok(ConversationsState {
            engine: args.engine,
            origin: args.origin,
            busy: HashSet::new(),
            waiting: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ConversationsRef,
        message: ConversationMsg,
        state: &mut ConversationsState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ConversationMsg::Ask(request, reply) => match request.session_id.clone() {
                // Nobody else knows a new session's id yet: nothing to order.
                None => state.spawn_turn(&myself, request, reply),
                Some(session) if state.busy.contains(&session) => {
                    state
                        .waiting
                        .entry(session)
                        .or_default()
                        .push_back((request, reply));
                }
                Some(session) => {
                    state.busy.insert(session);
                    state.spawn_turn(&myself, request, reply);
                }
            },
            ConversationMsg::Done { session } => {
                let next = state
                    .waiting
                    .get_mut(&session)
                    .and_then(VecDeque::pop_front);
                match next {
                    Some((request, reply)) => state.spawn_turn(&myself, request, reply),
                    None => {
                        state.waiting.remove(&session);
                        state.busy.remove(&session);
                    }
                }
            }
        }
        Ok(())
    }
}

impl ConversationsState {
    /// Runs one request in a task of its own, so the actor stays free for
    /// other sessions while Codex thinks.
    fn spawn_turn(&self, myself: &ConversationsRef, request: ChatRequest, reply: Reply) {
        let engine = self.engine.clone();
        let prompt = with_origin(&self.origin, &request.prompt);
        let myself = myself.clone();
        tokio::spawn(async move {
            let session = request.session_id.clone();
            let answer = ask(&engine, request, prompt).await;
            let _ = reply.send(answer);
            if let Some(session) = session {
                let _ = myself.cast(ConversationMsg::Done { session });
            }
        });
    }
}

/// The header every prompt carries, so Codex can tell an agent's message
/// from one a person typed into the same session.
pub fn with_origin(origin: &str, prompt: &str) -> String {
    format!("[message from {origin}, an agent, not a person]\n\n{prompt}")
}

async fn ask(
    engine: &Engine,
    request: ChatRequest,
    prompt: String,
) -> Result<ChatReply, EngineError> {
    // Checked before the origin header makes every prompt look non-empty.
    if request.prompt.trim().is_empty() {
        return Err(EngineError::BadRequest("the prompt is empty".to_string()));
    }
    let turn = TurnSettings {
        model: request.model.clone(),
        reasoning_effort: request.reasoning_effort.clone(),
        timeout: Some(request.timeout),
        ..TurnSettings::default()
    };
    let started = match &request.session_id {
        None => {
            let cwd = request
                .cwd
                .clone()
                .ok_or_else(|| EngineError::BadRequest("a new session needs a cwd".to_string()))?;
            let mut run = RunRequest::new(prompt, cwd);
            run.turn = turn;
            run.endpoint = request.endpoint.clone();
            engine.run(run).await?
        }
        Some(session) => {
            engine
                .resume(ResumeRequest {
                    cwd: request.cwd.clone(),
                    turn,
                    endpoint: request.endpoint.clone(),
                    ..ResumeRequest::new(ResumeTarget::Thread(session.clone()), prompt)
                })
                .await?
        }
    };
    if let Some(tell) = &request.started {
        let _ = tell.send(started.run_id.clone());
    }
    let WaitOutcome::Finished(result) = engine.wait(&started.run_id, None).await? else {
        return Err(EngineError::Actor(
            "a blocking wait returned early".to_string(),
        ));
    };
    if result.status != RunStatus::Completed {
        return Err(EngineError::TurnEnded {
            session_id: started.thread_id,
            status: result.status,
            error: result.error.unwrap_or_default(),
        });
    }
    Ok(ChatReply {
        session_id: started.thread_id,
        run_id: started.run_id,
        reply: result.result.unwrap_or_default(),
        usage: result.usage,
    })
}
