//! What `codex_wait` on several runs answers, within the reply budgets:
//! `any` is a single wait's reply for the run that ended plus one short
//! status line per other run (at most 60 bytes each); `all` carries every
//! result, the results sharing `max_result_chars`, each cut one saying where
//! its next page is; `still_running` lists each run's progress.

use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use super::replies::{self, Page};
use crate::actors::wait_many::{ManyOutcome, RunStanding, WaitMode, settled, waitable};
use crate::actors::{RunResult, WaitOutcome};
use crate::text::cut;

/// An id that is not a run id is shown cut to this many characters: run ids
/// are 28, and a status line must stay within its 60 bytes.
const SHOWN_ID_CHARS: usize = 28;

/// A run's error in a list of runs is cut to this many characters; waiting
/// on it alone shows it whole.
const LISTED_ERROR_CHARS: usize = 120;

/// Between two results in `all`'s text.
const RESULT_SEPARATOR: &str = "\n\n---\n\n";

/// One wait slice on several runs.
pub fn many(outcome: &ManyOutcome, next_wait: Duration, max_chars: usize) -> CallToolResult {
    let standings = || outcome.runs.iter().map(|(_, standing)| standing);
    if !standings().any(|standing| waitable(standing) || settled(standing)) {
        let why: Vec<String> = outcome
            .runs
            .iter()
            .map(|(id, standing)| {
                let error = standing.as_ref().err().map_or("", String::as_str);
                format!("{}: {}", shown_id(id), cut(error, LISTED_ERROR_CHARS))
            })
            .collect();
        return replies::failure(format!(
            "none of run_ids can be waited on: {}",
            why.join("; ")
        ));
    }
    let all_ended = !standings().any(waitable)
        && !standings().any(|standing| matches!(standing, Ok(WaitOutcome::NeedsApproval { .. })));
    let answered = match outcome.mode {
        WaitMode::All if all_ended => return every_result(outcome, max_chars),
        // All waits on: only a request for the caller ends it early.
        WaitMode::All => outcome.runs.iter().position(|(_, standing)| {
            settled(standing) && matches!(standing, Ok(WaitOutcome::NeedsApproval { .. }))
        }),
        WaitMode::Any => outcome.first_settled(),
    };
    match answered {
        Some(index) => one_and_lines(outcome, index, next_wait, max_chars),
        None => still_running(outcome, next_wait),
    }
}

/// The run at `index` as a single wait answers it, and a line for each
/// other run.
fn one_and_lines(
    outcome: &ManyOutcome,
    index: usize,
    next_wait: Duration,
    max_chars: usize,
) -> CallToolResult {
    let mut reply = match &outcome.runs[index].1 {
        Ok(one) => replies::wait_outcome(
            one,
            next_wait,
            Page {
                offset: 0,
                max_chars,
            },
        ),
        Err(error) => replies::failure(error),
    };
    let lines: Vec<String> = outcome
        .runs
        .iter()
        .enumerate()
        .filter(|(other, _)| *other != index)
        .map(|(_, (id, standing))| status_line(id, standing))
        .collect();
    if lines.is_empty() {
        return reply;
    }
    // A reply shaped by `structured` alone has its JSON as its text: keep
    // the two the same.
    let json_text = match (&reply.structured_content, reply.content.as_slice()) {
        (Some(value), [block]) => block.as_text().is_some_and(|text| {
            serde_json::from_str::<Value>(&text.text).ok().as_ref() == Some(value)
        }),
        _ => false,
    };
    if let Some(Value::Object(object)) = reply.structured_content.as_mut() {
        object.insert("others".into(), json!(lines));
    }
    let text = match &reply.structured_content {
        Some(value) if json_text => value.to_string(),
        _ => format!("{}\nothers: {}", text_of(&reply), lines.join("; ")),
    };
    reply.content = vec![ContentBlock::text(text)];
    reply
}

/// `<id> <where it stands>`: at most 60 bytes as a JSON string in a list.
fn status_line(id: &str, standing: &RunStanding) -> String {
    let state = match standing {
        Ok(WaitOutcome::StillRunning { progress, .. }) => {
            format!("running {} events", progress.events)
        }
        Ok(WaitOutcome::Finished(result)) => result.status.as_str().to_string(),
        Ok(WaitOutcome::NeedsApproval { .. }) => "waiting_for_approval".to_string(),
        Err(_) => "unknown".to_string(),
    };
    format!("{} {state}", shown_id(id))
}

/// Every run ended: each result, the longest ones cut so that all of them
/// together stay within `max_chars`.
fn every_result(outcome: &ManyOutcome, max_chars: usize) -> CallToolResult {
    let lengths: Vec<usize> = outcome
        .runs
        .iter()
        .map(|(_, standing)| match standing {
            Ok(WaitOutcome::Finished(result)) => message_chars(result),
            _ => 0,
        })
        .collect();
    let shares = shares(&lengths, max_chars);
    let (mut runs, mut texts) = (Vec::new(), Vec::new());
    for ((id, standing), share) in outcome.runs.iter().zip(shares) {
        match standing {
            Ok(WaitOutcome::Finished(result)) => {
                let page = Page {
                    offset: 0,
                    max_chars: share,
                };
                let reply = replies::finished(result, page);
                texts.push(text_of(&reply));
                runs.push(reply.structured_content.unwrap_or(Value::Null));
            }
            Ok(_) => {}
            Err(error) => {
                let error = cut(error, LISTED_ERROR_CHARS);
                texts.push(format!("{} unknown: {error}", shown_id(id)));
                runs.push(json!({"runId": shown_id(id), "status": "unknown", "error": error}));
            }
        }
    }
    let value = json!({"status": "ended", "mode": "all", "runs": runs});
    let mut reply = CallToolResult::structured(value);
    reply.content = vec![ContentBlock::text(texts.join(RESULT_SEPARATOR))];
    reply
}

/// Each result's share of `budget` characters: short ones whole, the rest
/// split evenly among the long ones (what a short one leaves goes to them).
pub fn shares(lengths: &[usize], budget: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&index| lengths[index]);
    let mut shares = vec![0; lengths.len()];
    let mut left = budget;
    for (done, &index) in order.iter().enumerate() {
        let fair = left / (lengths.len() - done);
        shares[index] = lengths[index].min(fair);
        left -= shares[index];
    }
    // A result given nothing still gets a page of one character, so its
    // reply names where the rest is.
    shares.iter().map(|&share| share.max(1)).collect()
}

/// The slice ended first: where each run stands.
fn still_running(outcome: &ManyOutcome, next_wait: Duration) -> CallToolResult {
    let mut waited = Duration::ZERO;
    let runs: Vec<Value> = outcome
        .runs
        .iter()
        .map(|(id, standing)| match standing {
            Ok(WaitOutcome::StillRunning {
                run_id,
                progress,
                waited: run_waited,
                ..
            }) => {
                waited = waited.max(*run_waited);
                json!({
                    "runId": run_id,
                    "status": "still_running",
                    "events": progress.events,
                    "totalTokens": progress.total_tokens,
                })
            }
            Ok(WaitOutcome::Finished(result)) => {
                json!({"runId": result.run_id, "status": result.status})
            }
            Ok(WaitOutcome::NeedsApproval {
                run_id, approval, ..
            }) => json!({
                "runId": run_id,
                "status": "waiting_for_approval",
                "askedPerson": approval.asked_person,
            }),
            Err(error) => json!({
                "runId": shown_id(id),
                "status": "unknown",
                "error": cut(error, LISTED_ERROR_CHARS),
            }),
        })
        .collect();
    CallToolResult::structured(json!({
        "status": "still_running",
        "mode": match outcome.mode {
            WaitMode::Any => "any",
            WaitMode::All => "all",
        },
        "waitElapsedMs": millis(waited),
        "nextWaitMs": millis(next_wait),
        "runs": runs,
    }))
}

fn message_chars(result: &RunResult) -> usize {
    result
        .result
        .as_deref()
        .map_or(0, |message| message.chars().count())
}

fn shown_id(id: &str) -> String {
    cut(id, SHOWN_ID_CHARS)
}

fn text_of(reply: &CallToolResult) -> String {
    reply
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_results_stay_whole_and_long_ones_share_the_rest() {
        assert_eq!(shares(&[10, 20], 100), vec![10, 20]);
        assert_eq!(shares(&[10, 500, 500], 100), vec![10, 45, 45]);
        assert_eq!(shares(&[300, 300, 300, 300], 100), vec![25, 25, 25, 25]);
        assert!(shares(&[50, 80, 1000], 100).iter().sum::<usize>() <= 100);
        assert_eq!(shares(&[0, 7], 0), vec![1, 1]);
    }
}
