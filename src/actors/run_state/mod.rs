//! What one run has seen, kept by its `RunActor`: folded from notifications
//! with no IO, so the rules (which turn is ours, how usage is counted, what
//! ends the run, what a listing shows live) are tested without a server.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use crate::actors::types::{Progress, RunResult, RunStatus, ThreadExtras};
use crate::config::Permissions;
use crate::protocol::ThreadId;
use crate::protocol::limits::RateLimits;
use crate::protocol::{
    ApprovalPolicy, NotificationKind, SandboxMode, ServerNotification, ThreadItem, TokenCounts,
    Turn, TurnStatus,
};
use crate::store::disk_records::{MESSAGE_EXCERPT_CHARS, message_excerpt, message_tail};
use crate::store::{self, AnsweredRequest, RefusedRequest, RunId, RunSummary};
use crate::timestamp::now_rfc3339;

/// How much of a streamed message a record holds before it drops the
/// start. A listing shows only the last [`MESSAGE_EXCERPT_CHARS`]
/// characters, and the final message comes whole with `item/completed`, so
/// holding every delta would only grow memory with the message: a flood of
/// deltas held 2 MB a run. 16 KiB makes the trim rare (once per 16 KiB of
/// deltas) while staying small beside a run's other state.
const STREAMING_KEEP_BYTES: usize = 16 * 1024;

/// Drops the start of a streamed message once it holds more than
/// [`STREAMING_KEEP_BYTES`], keeping one character more than a listing shows
/// so that [`message_tail`] still marks the cut with `…`.
fn keep_tail(text: &mut String) {
    if text.len() <= STREAMING_KEEP_BYTES {
        return;
    }
    if let Some((start, _)) = text.char_indices().rev().nth(MESSAGE_EXCERPT_CHARS) {
        text.drain(..start);
        text.shrink_to(STREAMING_KEEP_BYTES);
    }
}

/// The settings a run was started with, as the summary shows them.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub permissions: Permissions,
    pub sandbox: SandboxMode,
    pub approval_policy: ApprovalPolicy,
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    /// Only a new thread takes these.
    pub extras: ThreadExtras,
    /// The caller answers approvals (it chose a policy that asks).
    pub interactive: bool,
    /// Asked before the caller, when set: the person at the MCP client.
    pub person: Option<crate::actors::person::Person>,
}

/// What the thread really got, where it is not what was asked: the model
/// and sandbox `thread/start` or `thread/resume` reported, one warning line
/// each (issue 18: a caller that asked for a model must not believe it ran
/// when Codex chose another). Nothing when they match or were not said.
pub fn effective_differences(
    asked_model: Option<&str>,
    asked_sandbox: SandboxMode,
    got_model: Option<&str>,
    got_sandbox: Option<SandboxMode>,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let (Some(asked), Some(got)) = (asked_model, got_model)
        && asked != got
    {
        lines.push(format!(
            "Codex runs this thread on model {got}, not {asked} as asked"
        ));
    }
    if let Some(got) = got_sandbox
        && got != asked_sandbox
    {
        lines.push(format!(
            "Codex runs this thread in sandbox {}, not {} as asked",
            sandbox_name(got),
            sandbox_name(asked_sandbox)
        ));
    }
    lines
}

fn sandbox_name(mode: SandboxMode) -> &'static str {
    match mode {
        SandboxMode::ReadOnly => "read-only",
        SandboxMode::WorkspaceWrite => "workspace-write",
        SandboxMode::DangerFullAccess => "danger-full-access",
    }
}

impl RunSettings {
    /// For a run whose own settings are not known here (they died with the
    /// sidecar that started it): read-only, and approve nothing.
    pub fn unknown() -> RunSettings {
        RunSettings {
            permissions: Permissions::ReadOnly,
            sandbox: SandboxMode::ReadOnly,
            approval_policy: ApprovalPolicy::Never,
            model: None,
            reasoning_effort: None,
            extras: ThreadExtras::default(),
            interactive: false,
            person: None,
        }
    }
}

#[derive(Debug)]
pub struct RunRecord {
    pub run_id: RunId,
    pub title: String,
    pub prompt: String,
    pub cwd: PathBuf,
    /// A named endpoint's name (`None`: the default).
    pub endpoint: Option<String>,
    pub settings: RunSettings,
    pub thread_id: ThreadId,
    pub turn_id: Option<String>,
    pub status: RunStatus,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub started: Instant,
    pub duration_ms: Option<u64>,
    events: u64,
    last_activity: Option<String>,
    /// The thread's token totals before this turn: a resumed thread's
    /// totals include earlier turns, which are not this run's.
    usage_baseline: Option<TokenCounts>,
    usage: TokenCounts,
    commands: Vec<(String, Option<i64>)>,
    files_changed: BTreeSet<String>,
    final_message: Option<String>,
    pub error: Option<String>,
    refused: Vec<RefusedRequest>,
    answered: Vec<AnsweredRequest>,
    /// The hard timeout fired and interrupted the turn.
    pub timed_out: bool,
    /// What the turn does now, for listings ("running `cargo test`").
    doing: String,
    /// The agent message being streamed: its item id and its end so far.
    /// Only the end is kept (see [`STREAMING_KEEP_BYTES`]): a listing shows
    /// the tail, and the whole message arrives again in `item/completed`.
    streaming: Option<(String, String)>,
    /// Something a listing shows (progress, message, tokens) changed since
    /// [`RunRecord::take_live_change`] was last asked.
    live_changed: bool,
    /// The account's rate limits as the last update during the turn left
    /// them (the Supervisor hands each live run the account's updates).
    rate_limits: RateLimits,
    /// What Codex warned about on this thread, and errors it retried past
    /// (they did not fail the turn); in order, each once.
    warnings: Vec<String>,
}

/// Commands in a progress line are cut to this many characters: the line is
/// one row of a listing; the whole command is in the audit.
const PROGRESS_COMMAND_CHARS: usize = 80;

/// The progress line before the turn has done anything.
const STARTING: &str = "starting";

/// What a listing shows of a running run, from its record alone (pending
/// approvals are the run actor's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveView {
    pub total_tokens: u64,
    pub progress: String,
    pub last_message: Option<String>,
}

impl RunRecord {
    pub fn new(
        run_id: RunId,
        title: String,
        prompt: String,
        cwd: PathBuf,
        settings: RunSettings,
        thread_id: ThreadId,
    ) -> RunRecord {
        RunRecord {
            run_id,
            title,
            prompt,
            cwd,
            endpoint: None,
            settings,
            thread_id,
            turn_id: None,
            status: RunStatus::Running,
            started_at: now_rfc3339(),
            ended_at: None,
            started: Instant::now(),
            duration_ms: None,
            events: 0,
            last_activity: None,
            usage_baseline: None,
            usage: TokenCounts::default(),
            commands: Vec::new(),
            files_changed: BTreeSet::new(),
            final_message: None,
            error: None,
            refused: Vec::new(),
            answered: Vec::new(),
            timed_out: false,
            doing: STARTING.to_string(),
            streaming: None,
            live_changed: false,
            rate_limits: RateLimits::default(),
            warnings: Vec::new(),
        }
    }

    /// Folds one notification of our thread in. Returns the turn when it is
    /// our turn's `turn/completed`: the run is over.
    pub fn apply(&mut self, note: &ServerNotification) -> Option<Turn> {
        self.events += 1;
        self.last_activity = Some(now_rfc3339());
        let ours = |turn_id: &str| self.turn_id.as_deref() == Some(turn_id);
        match &note.kind {
            NotificationKind::TokenUsageUpdated(update) if ours(&update.turn_id) => {
                let usage = update.token_usage;
                let baseline = *self
                    .usage_baseline
                    .get_or_insert_with(|| minus(usage.total, usage.last));
                let before = self.usage.total_tokens;
                self.usage = minus(usage.total, baseline);
                self.live_changed |= self.usage.total_tokens != before;
            }
            NotificationKind::ItemStarted(started) if ours(&started.turn_id) => {
                if let Some(doing) = doing(&started.item) {
                    self.set_doing(doing);
                }
                if let ThreadItem::AgentMessage { id, .. } = &started.item {
                    self.streaming = Some((id.clone(), String::new()));
                }
            }
            NotificationKind::AgentMessageDelta(delta) if ours(&delta.turn_id) => {
                match &mut self.streaming {
                    Some((id, text)) if *id == delta.item_id => {
                        text.push_str(&delta.delta);
                        keep_tail(text);
                    }
                    _ => self.streaming = Some((delta.item_id.clone(), delta.delta.clone())),
                }
                self.set_doing("writing".to_string());
                self.live_changed = true;
            }
            NotificationKind::ItemCompleted(done) if ours(&done.turn_id) => {
                if let ThreadItem::CommandExecution {
                    command, exit_code, ..
                } = &done.item
                {
                    let exit = exit_code.map_or(String::new(), |code| format!(", exit {code}"));
                    self.set_doing(format!("ran `{}`{exit}", short_command(command)));
                }
                if matches!(done.item, ThreadItem::AgentMessage { .. }) {
                    self.streaming = None;
                    self.live_changed = true;
                }
                self.note_item(&done.item)
            }
            NotificationKind::Error(error) if ours(&error.turn_id) && !error.will_retry => {
                self.error = Some(error.error.message.clone());
            }
            NotificationKind::Error(error) if ours(&error.turn_id) => {
                self.warn(&error.error.message);
            }
            NotificationKind::Warning(warning)
                if warning.thread_id.as_deref() == Some(self.thread_id.as_str()) =>
            {
                self.warn(&warning.message);
            }
            NotificationKind::RateLimitsUpdated(update) => {
                self.rate_limits = self.rate_limits.merge(update.rate_limits);
            }
            NotificationKind::TurnCompleted(done) if ours(&done.turn.id) => {
                let turn = done.turn.clone();
                self.finish_with_turn(&turn);
                return Some(turn);
            }
            _ => {}
        }
        None
    }

    /// Adds a warning (once) to the run's result.
    pub fn warn(&mut self, message: &str) {
        if !self.warnings.iter().any(|seen| seen == message) {
            self.warnings.push(message.to_string());
        }
    }

    fn note_item(&mut self, item: &ThreadItem) {
        match item {
            ThreadItem::CommandExecution {
                command, exit_code, ..
            } => self.commands.push((command.clone(), *exit_code)),
            ThreadItem::FileChange { changes, .. } => {
                let paths = changes
                    .iter()
                    .filter_map(|change| change.get("path").and_then(|path| path.as_str()));
                self.files_changed.extend(paths.map(str::to_string));
            }
            ThreadItem::AgentMessage { text, .. } => self.final_message = Some(text.clone()),
            _ => {}
        }
    }

    /// Ends the run from a finished turn (live, or read back with
    /// `thread/read` after nobody watched).
    pub fn finish_with_turn(&mut self, turn: &Turn) {
        for item in &turn.items {
            self.note_item(item);
        }
        if let Some(message) = turn.final_message() {
            self.final_message = Some(message.to_string());
        }
        if let Some(error) = &turn.error {
            self.error = Some(error.message.clone());
        }
        let status = match turn.status {
            TurnStatus::Completed => RunStatus::Completed,
            TurnStatus::Interrupted if self.timed_out => RunStatus::TimedOut,
            TurnStatus::Interrupted => RunStatus::Interrupted,
            TurnStatus::Failed | TurnStatus::Unknown | TurnStatus::InProgress => RunStatus::Failed,
        };
        self.finish(status, None);
    }

    /// Ends the run; `error` replaces any error seen so far.
    pub fn finish(&mut self, status: RunStatus, error: Option<String>) {
        if self.status != RunStatus::Running {
            return;
        }
        self.status = status;
        if error.is_some() {
            self.error = error;
        }
        self.ended_at = Some(now_rfc3339());
        self.duration_ms = Some(self.elapsed_ms());
    }

    pub fn note_refused(&mut self, refused: RefusedRequest) {
        self.refused.push(refused);
    }

    pub fn note_answered(&mut self, answered: AnsweredRequest) {
        self.answered.push(answered);
    }

    /// Says what the turn does now, when the run itself does something (an
    /// interrupt) rather than Codex.
    pub fn set_doing(&mut self, doing: String) {
        if self.doing != doing {
            self.doing = doing;
            self.live_changed = true;
        }
    }

    /// Whether what [`RunRecord::live`] shows changed since the last call.
    pub fn take_live_change(&mut self) -> bool {
        std::mem::take(&mut self.live_changed)
    }

    /// What a listing shows of the run now: the message being written (its
    /// end), else the last one completed (its start).
    pub fn live(&self) -> LiveView {
        let last_message = match &self.streaming {
            Some((_, text)) if !text.is_empty() => Some(message_tail(text)),
            _ => self.final_excerpt(),
        };
        LiveView {
            total_tokens: self.usage.total_tokens,
            progress: self.doing.clone(),
            last_message,
        }
    }

    /// The start of the final agent message, as the index lists it.
    pub fn final_excerpt(&self) -> Option<String> {
        self.final_message.as_deref().map(message_excerpt)
    }

    /// This turn's tokens so far.
    pub fn total_tokens(&self) -> u64 {
        self.usage.total_tokens
    }

    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn progress(&self) -> Progress {
        Progress {
            events: self.events,
            total_tokens: self.usage.total_tokens,
            output_tokens: self.usage.output_tokens,
            reasoning_tokens: self.usage.reasoning_output_tokens,
            last_activity: self.last_activity.clone(),
        }
    }

    pub fn result(&self) -> RunResult {
        RunResult {
            run_id: self.run_id.clone(),
            thread_id: self.thread_id.clone(),
            status: self.status,
            result: self.final_message.clone(),
            usage: self.usage,
            duration_ms: self.duration_ms.unwrap_or_else(|| self.elapsed_ms()),
            error: self.error.clone(),
            audit_error: None,
            rate_limits: self.rate_limits,
            warnings: self.warnings.clone(),
        }
    }

    pub fn summary(&self) -> RunSummary {
        RunSummary {
            run_id: self.run_id.clone(),
            title: self.title.clone(),
            prompt: self.prompt.clone(),
            cwd: self.cwd.clone(),
            endpoint: self.endpoint.clone(),
            thread_id: Some(self.thread_id.to_string()),
            turn_id: self.turn_id.clone(),
            model: self.settings.model.clone(),
            reasoning_effort: self.settings.reasoning_effort.clone(),
            permissions: Some(self.settings.permissions),
            sandbox: Some(self.settings.sandbox),
            approval_policy: Some(self.settings.approval_policy),
            status: self.status,
            started_at: self.started_at.clone(),
            ended_at: self.ended_at.clone(),
            duration_ms: self.duration_ms,
            commands: self
                .commands
                .iter()
                .map(|(command, exit_code)| store::CommandRun {
                    command: command.clone(),
                    exit_code: exit_code.and_then(|code| i32::try_from(code).ok()),
                })
                .collect(),
            files_changed: self.files_changed.iter().cloned().collect(),
            final_message: self.final_message.clone(),
            token_usage: Some(store::TokenUsage {
                total: self.usage.total_tokens,
                input: self.usage.input_tokens,
                output: self.usage.output_tokens,
                reasoning: self.usage.reasoning_output_tokens,
            }),
            error: self.error.clone(),
            refused_requests: self.refused.clone(),
            answered_requests: self.answered.clone(),
        }
    }
}

/// The progress line for an item that starts; `None` for kinds a person
/// would not call "doing something" (the user's own message).
fn doing(item: &ThreadItem) -> Option<String> {
    match item {
        ThreadItem::CommandExecution { command, .. } => {
            Some(format!("running `{}`", short_command(command)))
        }
        ThreadItem::FileChange { changes, .. } => {
            let mut paths = changes
                .iter()
                .filter_map(|change| change.get("path").and_then(|path| path.as_str()));
            Some(match (paths.next(), changes.len()) {
                (Some(path), 1) => format!("editing {path}"),
                (_, count) => format!("editing {count} files"),
            })
        }
        ThreadItem::AgentMessage { .. } => Some("writing".to_string()),
        ThreadItem::UserMessage { .. } => None,
        ThreadItem::Other(value) => match value.get("type").and_then(|kind| kind.as_str()) {
            Some("reasoning") => Some("thinking".to_string()),
            Some("webSearch") => Some("searching the web".to_string()),
            Some("mcpToolCall" | "dynamicToolCall" | "collabAgentToolCall") => {
                Some("calling a tool".to_string())
            }
            _ => None,
        },
    }
}

/// A command's first line, cut to [`PROGRESS_COMMAND_CHARS`].
fn short_command(command: &str) -> String {
    let line = command.lines().next().unwrap_or_default();
    let cut = crate::text::cut(line, PROGRESS_COMMAND_CHARS);
    if command.contains('\n') && !cut.ends_with('…') {
        format!("{cut} …")
    } else {
        cut
    }
}

fn minus(total: TokenCounts, before: TokenCounts) -> TokenCounts {
    TokenCounts {
        total_tokens: total.total_tokens.saturating_sub(before.total_tokens),
        input_tokens: total.input_tokens.saturating_sub(before.input_tokens),
        cached_input_tokens: total
            .cached_input_tokens
            .saturating_sub(before.cached_input_tokens),
        output_tokens: total.output_tokens.saturating_sub(before.output_tokens),
        reasoning_output_tokens: total
            .reasoning_output_tokens
            .saturating_sub(before.reasoning_output_tokens),
    }
}

#[cfg(test)]
mod tests;
