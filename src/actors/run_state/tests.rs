//! The folding rules, on notifications built by hand.

use super::*;
use serde_json::json;

fn record() -> RunRecord {
    let mut record = RunRecord::new(
        RunId::generate(),
        "t".into(),
        "p".into(),
        PathBuf::from("/p"),
        RunSettings::unknown(),
        "th".into(),
    );
    record.turn_id = Some("mine".into());
    record
}

fn note(method: &str, params: serde_json::Value) -> ServerNotification {
    ServerNotification::new(method.into(), params)
}

fn usage(total: u64, last: u64) -> ServerNotification {
    note(
        "thread/tokenUsage/updated",
        json!({"threadId": "th", "turnId": "mine", "tokenUsage": {
            "total": {"totalTokens": total, "outputTokens": total / 10},
            "last": {"totalTokens": last, "outputTokens": last / 10}}}),
    )
}

#[test]
fn usage_counts_only_this_turn_on_a_resumed_thread() {
    let mut record = record();
    // The thread had used 1000 tokens before; this turn's first call is 300.
    record.apply(&usage(1300, 300));
    record.apply(&usage(1800, 500));
    assert_eq!(record.progress().total_tokens, 800);
    assert_eq!(record.progress().events, 2);
}

#[test]
fn only_our_turn_completes_the_run() {
    let mut record = record();
    let other = note(
        "turn/completed",
        json!({"threadId": "th", "turn": {"id": "other", "status": "completed", "items": []}}),
    );
    assert!(record.apply(&other).is_none());
    assert_eq!(record.status, RunStatus::Running);
    let ours = note(
        "turn/completed",
        json!({"threadId": "th", "turn": {"id": "mine", "status": "completed", "items": [
            {"type": "commandExecution", "id": "c", "command": "ls", "exitCode": 0},
            {"type": "agentMessage", "id": "m", "text": "done"}]}}),
    );
    assert!(record.apply(&ours).is_some());
    let result = record.result();
    assert_eq!(result.status, RunStatus::Completed);
    assert_eq!(result.result.as_deref(), Some("done"));
    assert_eq!(record.summary().commands.len(), 1);
}

#[test]
fn an_interrupt_after_the_hard_timeout_is_timed_out() {
    let mut record = record();
    record.timed_out = true;
    let turn: Turn =
        serde_json::from_value(json!({"id": "mine", "status": "interrupted", "items": []}))
            .unwrap();
    record.finish_with_turn(&turn);
    assert_eq!(record.status, RunStatus::TimedOut);
    // A later ending does not overwrite the first.
    record.finish(RunStatus::Failed, Some("late".into()));
    assert_eq!(record.status, RunStatus::TimedOut);
}

fn item(method: &str, item: serde_json::Value) -> ServerNotification {
    note(
        method,
        json!({"threadId": "th", "turnId": "mine", "item": item}),
    )
}

#[test]
fn the_live_view_follows_the_turn() {
    let mut record = record();
    assert_eq!(record.live().progress, "starting");
    assert!(!record.take_live_change());

    record.apply(&item(
        "item/started",
        json!({"type": "reasoning", "id": "r"}),
    ));
    assert_eq!(record.live().progress, "thinking");
    assert!(record.take_live_change());
    assert!(!record.take_live_change(), "asked once per change");

    let command = json!({"type": "commandExecution", "id": "c", "command": "cargo test"});
    record.apply(&item("item/started", command));
    assert_eq!(record.live().progress, "running `cargo test`");
    let done = json!({"type": "commandExecution", "id": "c", "command": "cargo test",
                      "exitCode": 101});
    record.apply(&item("item/completed", done));
    assert_eq!(record.live().progress, "ran `cargo test`, exit 101");

    record.apply(&item(
        "item/started",
        json!({"type": "agentMessage", "id": "m", "text": ""}),
    ));
    for part in ["All ", "tests ", "pass."] {
        record.apply(&note(
            "item/agentMessage/delta",
            json!({"threadId": "th", "turnId": "mine", "itemId": "m", "delta": part}),
        ));
    }
    let live = record.live();
    assert_eq!(live.progress, "writing");
    assert_eq!(live.last_message.as_deref(), Some("All tests pass."));
    record.apply(&item(
        "item/completed",
        json!({"type": "agentMessage", "id": "m", "text": "All tests pass. Done."}),
    ));
    assert_eq!(
        record.live().last_message.as_deref(),
        Some("All tests pass. Done.")
    );
    record.take_live_change();
    record.apply(&usage(1300, 300));
    assert!(record.take_live_change(), "tokens are shown");
    assert_eq!(record.live().total_tokens, 300);

    // Another turn's items change nothing.
    let other = note(
        "item/started",
        json!({"threadId": "th", "turnId": "other",
               "item": {"type": "commandExecution", "id": "x", "command": "rm -rf /"}}),
    );
    record.apply(&other);
    assert!(!record.take_live_change());
}

#[test]
fn a_long_stream_holds_only_its_end() {
    let mut record = record();
    record.apply(&item(
        "item/started",
        json!({"type": "agentMessage", "id": "m", "text": ""}),
    ));
    let mut whole = String::new();
    for n in 0..20_000 {
        let part = format!("é{n} ");
        whole.push_str(&part);
        record.apply(&note(
            "item/agentMessage/delta",
            json!({"threadId": "th", "turnId": "mine", "itemId": "m", "delta": part}),
        ));
        let held = record
            .streaming
            .as_ref()
            .map_or(0, |(_, text)| text.capacity());
        assert!(held <= 2 * STREAMING_KEEP_BYTES, "held {held} bytes");
    }
    assert!(whole.len() > 8 * STREAMING_KEEP_BYTES);
    assert_eq!(record.live().last_message, Some(message_tail(&whole)));
    assert!(message_tail(&whole).starts_with('…'));
}

#[test]
fn long_commands_are_cut_in_the_progress_line() {
    let long = format!("echo {}", "x".repeat(200));
    let line = short_command(&long);
    assert_eq!(line.chars().count(), PROGRESS_COMMAND_CHARS + 1);
    assert_eq!(short_command("set -e\nmake"), "set -e …");
}

/// Only what differs from the ask makes a line; what Codex did not say
/// makes none.
#[test]
fn the_thread_gets_a_line_only_where_it_differs_from_the_ask() {
    use super::effective_differences;
    use crate::protocol::SandboxMode::{ReadOnly, WorkspaceWrite};
    assert!(effective_differences(Some("m"), ReadOnly, Some("m"), Some(ReadOnly)).is_empty());
    assert!(effective_differences(None, ReadOnly, Some("m"), None).is_empty());
    assert_eq!(
        effective_differences(Some("gpt-x"), WorkspaceWrite, Some("gpt-y"), Some(ReadOnly)),
        vec![
            "Codex runs this thread on model gpt-y, not gpt-x as asked".to_string(),
            "Codex runs this thread in sandbox read-only, not workspace-write as asked".to_string(),
        ]
    );
}
