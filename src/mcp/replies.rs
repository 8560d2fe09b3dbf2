//! What the tools answer: only what the caller needs, as structured content
//! plus a text rendering, within byte budgets (a run handle ≤ 300 bytes,
//! `still_running` ≤ 400, 20 listed runs ≤ 2.5 KB, a result = the message +
//! ≤ 200). Paths, commands and logs stay in the audit.

use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use crate::actors::{ActiveRun, ChatReply, RunListing, RunResult, RunStarted, WaitOutcome};
use crate::protocol::TokenCounts;
use crate::store::{RunId, RunStatus};
use crate::text::{cut, cut_within};

/// Titles in listings are cut to this many characters, so that 20 runs fit
/// the 2.5 KB a listing may cost the caller.
const LISTED_TITLE_CHARS: usize = 40;

/// A run's error is cut to this many characters in a reply; the whole of it
/// is in the run's audit.
const REPLY_ERROR_CHARS: usize = 160;

/// A finished run's reply carries at most this many of its warnings, each
/// at most [`REPLY_WARNING_CHARS`] characters, the `…` of a cut included:
/// enough to act on, under 600 bytes at
/// worst; the run's audit (events and summary) keeps them all.
pub const REPLY_WARNINGS: usize = 3;
pub const REPLY_WARNING_CHARS: usize = 160;

/// What a reply shows of a run's warnings.
pub fn reply_warnings(warnings: &[String]) -> Vec<String> {
    warnings
        .iter()
        .take(REPLY_WARNINGS)
        .map(|warning| cut_within(warning, REPLY_WARNING_CHARS))
        .collect()
}

pub fn handle(started: &RunStarted) -> CallToolResult {
    structured(json!({
        "runId": started.run_id,
        "status": "running",
        "threadId": started.thread_id,
        "timedOut": false,
    }))
}

/// Which part of a long final message a reply carries.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// In characters.
    pub offset: usize,
    pub max_chars: usize,
}

/// One wait slice's end. `next_wait` is the slice to ask for next.
pub fn wait_outcome(outcome: &WaitOutcome, next_wait: Duration, page: Page) -> CallToolResult {
    match crate::replies::unfinished(outcome, next_wait) {
        Ok(value) => structured(value),
        Err(result) => finished(result, page),
    }
}

/// A finished run: its final message (or one page of it) and a little
/// around it. A message longer than a page is cut on a character boundary,
/// with `nextOffset` and a marker saying how much remains; nothing is lost:
/// the whole message is in the audit and in the next pages.
pub fn finished(result: &RunResult, page: Page) -> CallToolResult {
    let message = result.result.as_deref().unwrap_or_default();
    let total = message.chars().count();
    if page.offset > total || (page.offset > 0 && page.offset == total) {
        return failure(format!(
            "offset {} is past the end of the final message ({total} characters)",
            page.offset
        ));
    }
    let shown: String = message
        .chars()
        .skip(page.offset)
        .take(page.max_chars)
        .collect();
    let next = page.offset + shown.chars().count();
    let remaining = total - next;
    let mut value = json!({
        "runId": result.run_id,
        "status": result.status,
        "threadId": result.thread_id,
        "result": result.result.as_ref().map(|_| shown.clone()),
        "usage": usage(&result.usage),
        "durationMs": result.duration_ms,
    });
    if let Some(object) = value.as_object_mut()
        && (remaining > 0 || page.offset > 0)
    {
        object.insert("offset".into(), json!(page.offset));
        if remaining > 0 {
            object.insert("nextOffset".into(), json!(next));
            object.insert("remainingChars".into(), json!(remaining));
        }
    }
    let mut text = format!(
        "{} · run {} · {} tokens · {:.1}s",
        result.status,
        result.run_id,
        result.usage.total_tokens,
        result.duration_ms as f64 / 1000.0
    );
    // Both cut to the same length, in the structured reply and the text.
    for (key, label, error) in [
        ("error", "error", &result.error),
        ("auditError", "audit", &result.audit_error),
    ] {
        if let Some(error) = error.as_deref().map(|error| cut(error, REPLY_ERROR_CHARS)) {
            text.push_str(&format!("\n{label}: {error}"));
            if let Some(object) = value.as_object_mut() {
                object.insert(key.into(), Value::String(error));
            }
        }
    }
    if let Some(object) = value.as_object_mut() {
        if !result.rate_limits.is_empty() {
            object.insert("rateLimits".into(), json!(result.rate_limits.compact()));
        }
        if !result.warnings.is_empty() {
            let warnings = reply_warnings(&result.warnings);
            for warning in &warnings {
                text.push_str(&format!("\nwarning: {warning}"));
            }
            object.insert("warnings".into(), json!(warnings));
        }
    }
    if result.result.is_some() {
        text.push_str("\n\n");
        text.push_str(&shown);
    }
    if remaining > 0 {
        text.push_str(&format!(
            "\n[… {remaining} more characters: call codex_wait with this run_id and offset {next}]"
        ));
    }
    with_text(value, text)
}

/// The legacy `codex` / `codex-reply` answer: `{threadId, content}`, and
/// the final message as the text. A turn that did not complete is an error.
pub fn legacy(result: &RunResult) -> CallToolResult {
    let content = result.result.clone().unwrap_or_default();
    if result.status != RunStatus::Completed {
        let error = result.error.as_deref().unwrap_or_default();
        return failure(format!(
            "the turn ended {}: {}",
            result.status,
            cut(error, REPLY_ERROR_CHARS)
        ));
    }
    with_text(
        json!({ "threadId": result.thread_id, "content": content }),
        content.clone(),
    )
}

/// An answered approval: the run goes on.
pub fn approved(
    run_id: &RunId,
    approval_id: &str,
    choice: crate::actors::approvals::Choice,
) -> CallToolResult {
    structured(json!({
        "runId": run_id,
        "approvalId": approval_id,
        "decision": choice.as_str(),
        "status": "running",
    }))
}

/// An interrupt of a run that had already ended: nothing to do.
pub fn already_ended(run_id: &RunId, status: Option<RunStatus>) -> CallToolResult {
    let status = status.map(RunStatus::as_str).unwrap_or("ended");
    structured(json!({
        "runId": run_id,
        "status": status,
        "note": format!("the run had already ended ({status}); nothing was interrupted"),
    }))
}

pub fn active(runs: &[ActiveRun]) -> CallToolResult {
    let runs: Vec<Value> = runs
        .iter()
        .map(|run| {
            json!({
                "runId": run.run_id,
                "status": "running",
                "title": cut(&run.title, LISTED_TITLE_CHARS),
                "elapsedMs": run.elapsed_ms,
            })
        })
        .collect();
    structured(json!({ "runs": runs }))
}

pub fn runs(runs: &[RunListing]) -> CallToolResult {
    let runs: Vec<Value> = runs
        .iter()
        .map(|run| {
            json!({
                "runId": run.run_id,
                "status": run.status,
                "title": cut(&run.title, LISTED_TITLE_CHARS),
            })
        })
        .collect();
    structured(json!({ "runs": runs }))
}

/// A conversation's answer under `field` (`reply`, `critique`, `review`).
pub fn conversation(reply: &ChatReply, field: &str) -> CallToolResult {
    let mut value = json!({ "session_id": reply.session_id, "usage": usage(&reply.usage) });
    if let Some(object) = value.as_object_mut() {
        object.insert(field.to_string(), Value::String(reply.reply.clone()));
    }
    let text = format!("session {}\n\n{}", reply.session_id, reply.reply);
    with_text(value, text)
}

/// A tool error: the message alone.
pub fn failure(message: impl std::fmt::Display) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_string())])
}

fn usage(usage: &TokenCounts) -> Value {
    json!({ "totalTokens": usage.total_tokens, "outputTokens": usage.output_tokens })
}

fn structured(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

fn with_text(value: Value, text: String) -> CallToolResult {
    let mut result = CallToolResult::structured(value);
    result.content = vec![ContentBlock::text(text)];
    result
}
