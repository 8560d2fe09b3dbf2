//! The JSON records of the audit: one line of a run's event log, the active
//! marker of a running run, and the lines of the project and pointer indexes.
//! camelCase on disk; optional fields are left out when absent.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::run_id::RunId;
use crate::protocol::{RequestId, RpcError};
use crate::timestamp::now_rfc3339;

/// One thing that happened in a run, as received (or, for `sidecar`, as we
/// decided it). Params and results are kept raw so nothing is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum AuditEvent {
    /// A notification from the app-server.
    Notification {
        method: String,
        #[serde(default)]
        params: Value,
    },
    /// A request the app-server sent us (an approval, say).
    ServerRequest {
        id: RequestId,
        method: String,
        #[serde(default)]
        params: Value,
    },
    /// Our answer to a server request: a result or an error.
    Response {
        id: RequestId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<RpcError>,
        /// Who decided the answer (absent in audits older than the field).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answered_by: Option<Answerer>,
    },
    /// The sidecar's own note ("approval declined because …", "run timed out").
    Sidecar {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<Value>,
    },
}

/// Who decided our answer to a server request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Answerer {
    /// The person at the MCP client, through an elicitation form.
    Person,
    /// The calling model, through `codex_approve`.
    Caller,
    /// The sidecar: the sandbox rule, the hard timeout or the run's end.
    Sidecar,
    /// Another client of the thread (a person in the Codex terminal UI);
    /// its response is not ours, so only the summary names it.
    OtherClient,
}

impl Answerer {
    /// Who, in words, for the summary.
    pub fn describe(self) -> &'static str {
        match self {
            Answerer::Person => "the person in the MCP client",
            Answerer::Caller => "the caller (codex_approve)",
            Answerer::Sidecar => "the sidecar",
            Answerer::OtherClient => "another client of the thread",
        }
    }
}

impl AuditEvent {
    pub fn sidecar(message: impl Into<String>, data: Option<Value>) -> AuditEvent {
        AuditEvent::Sidecar {
            message: message.into(),
            data,
        }
    }
}

/// One line of `<runId>.jsonl`: the event and when it was received. The
/// time is taken by whoever received the event, not by the writer, which may
/// run a little later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub received_at: String,
    #[serde(flatten)]
    pub event: AuditEvent,
}

impl AuditRecord {
    /// `event`, received now.
    pub fn now(event: AuditEvent) -> AuditRecord {
        AuditRecord {
            received_at: now_rfc3339(),
            event,
        }
    }
}

/// Where a run stands. On disk as `running`, `completed`, `failed`,
/// `interrupted` or `timed_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Interrupted,
    TimedOut,
    /// A status written by a newer version: read as this rather than losing
    /// the whole record.
    #[serde(other)]
    Unknown,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Unknown => "unknown",
        }
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Excerpts of agent messages in the index and the active record are cut
/// to this many characters: a listing shows one or two lines of it, and a
/// 100,000-run index must stay small enough to load at once (the whole
/// message is in the run's `.md` and `.jsonl`).
pub const MESSAGE_EXCERPT_CHARS: usize = 240;

/// The start of `text`, at most [`MESSAGE_EXCERPT_CHARS`] characters, cut on
/// a character boundary and marked with `…`: how a finished message is
/// listed (its first lines usually say what was done).
pub fn message_excerpt(text: &str) -> String {
    crate::text::cut(text, MESSAGE_EXCERPT_CHARS)
}

/// The end of `text`, at most [`MESSAGE_EXCERPT_CHARS`] characters, marked
/// with a leading `…` when cut: how a message still being written is shown,
/// so the words arriving are the ones on screen.
pub fn message_tail(text: &str) -> String {
    match text.char_indices().rev().nth(MESSAGE_EXCERPT_CHARS - 1) {
        Some((start, _)) if start > 0 => format!("…{}", &text[start..]),
        _ => text.to_string(),
    }
}

/// `active/<runId>.json`: present exactly while the run goes, so a picker can
/// find live sessions to attach to and see which sidecar owns each. The run
/// rewrites it (atomically) as the turn moves, so it also carries what a
/// listing shows live; those fields are absent in records of older versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRecord {
    pub run_id: RunId,
    pub thread_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    pub cwd: PathBuf,
    pub title: String,
    pub started_at: String,
    pub app_server_url: String,
    /// The file holding that server's token (0600, its owner's): what a
    /// terminal UI needs to attach. Absent for a server without a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_server_token_file: Option<PathBuf>,
    /// The sidecar that owns the run: if it is gone, the record is stale.
    pub pid: u32,
    /// This turn's tokens so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// What the turn does now, in a few words ("running `cargo test`").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// An excerpt of the agent message being written, or of the last one
    /// completed ([`message_tail`], [`message_excerpt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    /// The oldest request waiting for the caller's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingRow>,
    /// When the record was last rewritten (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The endpoint (`endpoints.toml`) the run went to; absent: the
    /// default, as in every record written before endpoints existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// A pending approval as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRow {
    pub approval_id: String,
    /// `command`, `fileChange`, `permissions`, `userInput` or `mcpElicitation`.
    pub kind: String,
    /// The command, or the files, in short.
    pub summary: String,
}

/// Whether an [`IndexRecord`] opens or closes a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexEvent {
    Start,
    End,
}

/// One line of `index.jsonl`: a run started or ended in this project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexRecord {
    pub event: IndexEvent,
    pub run_id: RunId,
    /// Absent when the run failed before Codex gave it a thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    pub title: String,
    pub cwd: PathBuf,
    pub status: RunStatus,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// End records: the turn's tokens in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// End records: the start of the final agent message
    /// ([`message_excerpt`]), so a listing needs no other file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    /// The endpoint (`endpoints.toml`) the run went to; absent: the
    /// default, as in every record written before endpoints existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// One line of the per-user pointer index: where a run's audit lives, so a
/// run id resolves from any project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointerRecord {
    pub run_id: RunId,
    pub project_root: PathBuf,
    pub run_dir: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// For listings across projects without opening each project's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub status: RunStatus,
    pub at: String,
    /// End records: the turn's tokens in all. (No message excerpt: this
    /// index is every project's, and a listing across projects reads only
    /// it.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// End records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The endpoint (`endpoints.toml`) the run went to; absent: the
    /// default, as in every record written before endpoints existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Records as the tests of the store, the resolver and the follower build
/// them: a run of this process, in `cwd`, nothing shown yet. Each test sets
/// what it is about with struct update syntax.
#[cfg(test)]
impl ActiveRecord {
    pub fn for_test(run_id: &RunId, cwd: impl Into<PathBuf>) -> ActiveRecord {
        ActiveRecord {
            endpoint: None,
            run_id: run_id.clone(),
            thread_id: "th".into(),
            turn_id: Some("turn".into()),
            cwd: cwd.into(),
            title: "t".into(),
            started_at: now_rfc3339(),
            app_server_url: "ws://127.0.0.1:1".into(),
            app_server_token_file: None,
            pid: std::process::id(),
            total_tokens: None,
            progress: None,
            last_message: None,
            pending_approval: None,
            updated_at: None,
        }
    }
}

#[cfg(test)]
impl IndexRecord {
    pub fn for_test(run_id: &RunId, event: IndexEvent, cwd: impl Into<PathBuf>) -> IndexRecord {
        IndexRecord {
            endpoint: None,
            event,
            run_id: run_id.clone(),
            thread_id: Some("th".into()),
            turn_id: Some("turn".into()),
            title: "t".into(),
            cwd: cwd.into(),
            status: match event {
                IndexEvent::Start => RunStatus::Running,
                IndexEvent::End => RunStatus::Completed,
            },
            at: now_rfc3339(),
            duration_ms: None,
            error: None,
            total_tokens: None,
            last_message: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id() -> RunId {
        RunId::parse("20261121-052301-482-7f3a9c").unwrap()
    }

    #[test]
    fn audit_lines_have_the_documented_shape() {
        let cases = [
            (
                AuditEvent::Notification {
                    method: "turn/started".into(),
                    params: json!({"turn": {"id": "t1"}}),
                },
                json!({"receivedAt": "T", "kind": "notification", "method": "turn/started",
                       "params": {"turn": {"id": "t1"}}}),
            ),
            (
                AuditEvent::ServerRequest {
                    id: RequestId::Integer(7),
                    method: "item/commandExecution/requestApproval".into(),
                    params: json!({"command": "ls"}),
                },
                json!({"receivedAt": "T", "kind": "serverRequest", "id": 7,
                       "method": "item/commandExecution/requestApproval",
                       "params": {"command": "ls"}}),
            ),
            (
                AuditEvent::Response {
                    id: RequestId::String("r".into()),
                    result: Some(json!({"decision": "decline"})),
                    error: None,
                    answered_by: Some(Answerer::Person),
                },
                json!({"receivedAt": "T", "kind": "response", "id": "r",
                       "result": {"decision": "decline"}, "answeredBy": "person"}),
            ),
            (
                AuditEvent::Response {
                    id: RequestId::Integer(8),
                    result: None,
                    error: Some(RpcError {
                        code: -32601,
                        message: "no".into(),
                        data: None,
                    }),
                    answered_by: None,
                },
                json!({"receivedAt": "T", "kind": "response", "id": 8,
                       "error": {"code": -32601, "message": "no"}}),
            ),
            (
                AuditEvent::sidecar("run timed out", Some(json!({"afterMs": 5}))),
                json!({"receivedAt": "T", "kind": "sidecar", "message": "run timed out",
                       "data": {"afterMs": 5}}),
            ),
        ];
        for (event, expected) in cases {
            let record = AuditRecord {
                received_at: "T".into(),
                event,
            };
            let value = serde_json::to_value(&record).unwrap();
            assert_eq!(value, expected);
            let line = serde_json::to_string(&record).unwrap();
            assert!(line.starts_with(r#"{"receivedAt":"T","kind":"#), "{line}");
            assert_eq!(serde_json::from_str::<AuditRecord>(&line).unwrap(), record);
        }
    }

    #[test]
    fn index_and_pointer_records_are_camel_case() {
        let record = IndexRecord {
            endpoint: None,
            event: IndexEvent::End,
            run_id: id(),
            thread_id: Some("th".into()),
            turn_id: None,
            title: "Fix it".into(),
            cwd: "/p".into(),
            status: RunStatus::TimedOut,
            at: "T".into(),
            duration_ms: Some(12),
            error: Some("took too long".into()),
            total_tokens: Some(345),
            last_message: Some("Stopped halfway.".into()),
        };
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            json!({"event": "end", "runId": "20261121-052301-482-7f3a9c", "threadId": "th",
                   "title": "Fix it", "cwd": "/p", "status": "timed_out", "at": "T",
                   "durationMs": 12, "error": "took too long", "totalTokens": 345,
                   "lastMessage": "Stopped halfway."})
        );
        let pointer: PointerRecord = serde_json::from_value(json!({
            "runId": "20261121-052301-482-7f3a9c", "projectRoot": "/p",
            "runDir": "/p/.codex/codex-mcp/runs", "status": "paused_by_a_newer_version",
            "at": "T"}))
        .unwrap();
        assert_eq!(pointer.status, RunStatus::Unknown);
        assert_eq!(pointer.thread_id, None);
        assert_eq!((pointer.total_tokens, pointer.duration_ms), (None, None));
        assert!(
            serde_json::from_value::<PointerRecord>(json!({
                "runId": "../../etc", "projectRoot": "/p", "runDir": "/r",
                "status": "failed", "at": "T"}))
            .is_err()
        );
    }

    /// Lines written before the listing fields existed, verbatim: they must
    /// keep parsing, with the new fields absent.
    #[test]
    fn records_of_older_versions_still_parse() {
        let index: IndexRecord = serde_json::from_str(
            r#"{"event":"end","runId":"20261121-052301-482-7f3a9c","threadId":"th","turnId":"tu","title":"Fix it","cwd":"/p","status":"completed","at":"2026-11-21T05:24:00.000Z","durationMs":58518}"#,
        )
        .unwrap();
        assert_eq!(index.status, RunStatus::Completed);
        assert_eq!(
            (index.total_tokens, index.last_message.as_deref()),
            (None, None)
        );
        let pointer: PointerRecord = serde_json::from_str(
            r#"{"runId":"20261121-052301-482-7f3a9c","projectRoot":"/p","runDir":"/p/.codex/codex-mcp/runs","threadId":"th","title":"Fix it","status":"completed","at":"2026-11-21T05:24:00.000Z"}"#,
        )
        .unwrap();
        assert_eq!((pointer.total_tokens, pointer.duration_ms), (None, None));
        let active: ActiveRecord = serde_json::from_str(
            r#"{"runId":"20261121-052301-482-7f3a9c","threadId":"th","turnId":"tu","cwd":"/p","title":"Fix it","startedAt":"2026-11-21T05:23:01.482Z","appServerUrl":"ws://127.0.0.1:4500","pid":4242}"#,
        )
        .unwrap();
        assert_eq!(active.pid, 4242);
        assert!(active.progress.is_none() && active.pending_approval.is_none());
        // And a record without the new fields is written as before.
        let line = serde_json::to_string(&index).unwrap();
        assert!(
            !line.contains("totalTokens") && !line.contains("lastMessage"),
            "{line}"
        );
    }

    #[test]
    fn excerpts_cut_on_character_boundaries() {
        let short = "done";
        assert_eq!(message_excerpt(short), "done");
        assert_eq!(message_tail(short), "done");
        let long = "é".repeat(MESSAGE_EXCERPT_CHARS + 10);
        let head = message_excerpt(&long);
        assert_eq!(head.chars().count(), MESSAGE_EXCERPT_CHARS + 1);
        assert!(head.ends_with("é…"));
        let tail = message_tail(&format!("x{}", "é".repeat(MESSAGE_EXCERPT_CHARS)));
        assert_eq!(tail, format!("…{}", "é".repeat(MESSAGE_EXCERPT_CHARS)));
        let exact = "a".repeat(MESSAGE_EXCERPT_CHARS);
        assert_eq!(message_excerpt(&exact), exact);
        assert_eq!(message_tail(&exact), exact);
    }
}
