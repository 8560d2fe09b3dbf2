//! The readable side of the audit: a run's title, and its Markdown summary
//! (`<runId>.md`), rendered from a [`RunSummary`] the run actor keeps up to
//! date. Rendering is pure, so the summary can be refreshed at any time.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::disk_records::{Answerer, RunStatus};
use super::markdown::{NONE, code, fenced, format_duration, quote};
use super::run_id::RunId;
use crate::config::Permissions;
use crate::protocol::{ApprovalPolicy, SandboxMode};
use crate::timestamp::now_rfc3339;

/// Titles show in one line of a picker or a listing; 80 characters fit a
/// terminal next to a status and a date.
pub const TITLE_MAX_CHARS: usize = 80;

/// The title of a run with neither a name nor any text in its prompt.
const UNTITLED: &str = "(untitled run)";

/// What a field that was not set reads as: Codex used its own config.
const NOT_SET: &str = "_Codex default_";

/// A command Codex ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRun {
    pub command: String,
    /// Absent when the command never finished (declined, interrupted).
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub total: u64,
    pub input: u64,
    pub output: u64,
    pub reasoning: u64,
}

/// What happened to a server request we did not grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Declined,
    Cancelled,
}

/// A server request (an approval, say) we declined or cancelled, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRequest {
    pub method: String,
    /// What was asked, e.g. the command to approve.
    pub detail: Option<String>,
    pub refusal: Refusal,
    pub reason: String,
}

/// A server request held for an answer (an approval, a question), and who
/// gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredRequest {
    pub method: String,
    /// What was asked, e.g. the command to approve.
    pub detail: Option<String>,
    /// accept, acceptForSession, decline, cancel; `None` when another
    /// client answered (its answer is not ours to see).
    pub answer: Option<String>,
    pub by: Answerer,
}

/// Everything the Markdown summary shows. Settings left `None` were left to
/// Codex's config.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub run_id: RunId,
    pub title: String,
    pub prompt: String,
    pub cwd: PathBuf,
    /// A named endpoint's name: the run went to another host, and `cwd`
    /// is a path there.
    pub endpoint: Option<String>,
    pub thread_id: Option<String>,
    pub turn_id: Option<String>,
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    pub permissions: Option<Permissions>,
    pub sandbox: Option<SandboxMode>,
    pub approval_policy: Option<ApprovalPolicy>,
    pub status: RunStatus,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub commands: Vec<CommandRun>,
    pub files_changed: Vec<String>,
    pub final_message: Option<String>,
    pub token_usage: Option<TokenUsage>,
    pub error: Option<String>,
    pub refused_requests: Vec<RefusedRequest>,
    /// Requests held for a person or the caller, as they were answered.
    pub answered_requests: Vec<AnsweredRequest>,
}

impl RunSummary {
    /// A run starting now: running, titled from `run_name` or the prompt,
    /// nothing else known yet.
    pub fn new(run_id: RunId, run_name: Option<&str>, prompt: &str, cwd: PathBuf) -> RunSummary {
        RunSummary {
            run_id,
            title: title_for(run_name, prompt),
            prompt: prompt.to_string(),
            cwd,
            endpoint: None,
            thread_id: None,
            turn_id: None,
            model: None,
            reasoning_effort: None,
            permissions: None,
            sandbox: None,
            approval_policy: None,
            status: RunStatus::Running,
            started_at: now_rfc3339(),
            ended_at: None,
            duration_ms: None,
            commands: Vec::new(),
            files_changed: Vec::new(),
            final_message: None,
            token_usage: None,
            error: None,
            refused_requests: Vec::new(),
            answered_requests: Vec::new(),
        }
    }
}

/// `run_name` if it has any text, else the prompt's first non-blank line;
/// trimmed, on one line, at most [`TITLE_MAX_CHARS`] characters (cut on a
/// character boundary, ending in `…`).
pub fn title_for(run_name: Option<&str>, prompt: &str) -> String {
    let one_line = |text: &str| -> String {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_string()
    };
    let title = run_name
        .map(one_line)
        .filter(|name| !name.is_empty())
        .or_else(|| prompt.lines().map(one_line).find(|line| !line.is_empty()))
        .unwrap_or_else(|| UNTITLED.to_string());
    if title.chars().count() <= TITLE_MAX_CHARS {
        return title;
    }
    let cut: String = title.chars().take(TITLE_MAX_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// The summary as Markdown. Every section is always present (empty ones say
/// so), except the error, which only a failed run has.
pub fn render_markdown(summary: &RunSummary) -> String {
    let mut out = String::new();
    let s = summary;
    // `write!` to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "# {}\n", s.title);
    let _ = writeln!(out, "- Run: {}", code(s.run_id.as_str()));
    let _ = writeln!(out, "- Status: **{}**", s.status);
    let _ = writeln!(out, "- Directory: {}", code(&s.cwd.to_string_lossy()));
    if let Some(endpoint) = &s.endpoint {
        let _ = writeln!(
            out,
            "- Endpoint: {} (the directory is on its host)",
            code(endpoint)
        );
    }
    if let Some(thread_id) = &s.thread_id {
        let _ = writeln!(out, "- Thread: {}", code(thread_id));
    }
    if let Some(turn_id) = &s.turn_id {
        let _ = writeln!(out, "- Turn: {}", code(turn_id));
    }

    let _ = writeln!(out, "\n## Prompt\n\n{}", quote(&s.prompt));

    let _ = writeln!(out, "\n## Settings\n");
    let settings = [
        ("Model", s.model.clone()),
        ("Reasoning effort", s.reasoning_effort.clone()),
        ("Permissions", s.permissions.map(|p| p.as_str().to_string())),
        ("Sandbox", s.sandbox.map(wire_name)),
        ("Approval policy", s.approval_policy.map(wire_name)),
    ];
    for (name, value) in settings {
        let value = value.as_deref().map(code);
        let _ = writeln!(out, "- {name}: {}", value.as_deref().unwrap_or(NOT_SET));
    }

    let _ = writeln!(out, "\n## Timing\n");
    let _ = writeln!(out, "- Started: {}", s.started_at);
    let ended = s.ended_at.as_deref().unwrap_or("_still running_");
    let _ = writeln!(out, "- Ended: {ended}");
    let duration = s.duration_ms.map(format_duration);
    let _ = writeln!(
        out,
        "- Duration: {}",
        duration.as_deref().unwrap_or("_n/a_")
    );

    let _ = writeln!(out, "\n## Commands\n");
    if s.commands.is_empty() {
        let _ = writeln!(out, "{NONE}");
    }
    for command in &s.commands {
        let exit = match command.exit_code {
            Some(code) => format!("exit {code}"),
            None => "no exit code".to_string(),
        };
        if command.command.contains('\n') {
            let _ = writeln!(out, "- {exit}:\n\n{}", fenced(&command.command, "  "));
        } else {
            let _ = writeln!(out, "- {} → {exit}", code(&command.command));
        }
    }

    let _ = writeln!(out, "\n## Files changed\n");
    if s.files_changed.is_empty() {
        let _ = writeln!(out, "{NONE}");
    }
    for path in &s.files_changed {
        let _ = writeln!(out, "- {}", code(path));
    }

    let _ = writeln!(out, "\n## Final message\n");
    let message = s.final_message.as_deref().map(quote);
    let _ = writeln!(out, "{}", message.as_deref().unwrap_or(NONE));

    let _ = writeln!(out, "\n## Token usage\n");
    match s.token_usage {
        Some(usage) => {
            let _ = writeln!(
                out,
                "- Total: {}\n- Input: {}\n- Output: {}\n- Reasoning: {}",
                usage.total, usage.input, usage.output, usage.reasoning
            );
        }
        None => {
            let _ = writeln!(out, "{NONE}");
        }
    }

    if let Some(error) = &s.error {
        let _ = writeln!(out, "\n## Error\n\n{}", quote(error));
    }

    let _ = writeln!(out, "\n## Declined or cancelled requests\n");
    if s.refused_requests.is_empty() {
        let _ = writeln!(out, "{NONE}");
    }
    for request in &s.refused_requests {
        let refusal = match request.refusal {
            Refusal::Declined => "declined",
            Refusal::Cancelled => "cancelled",
        };
        let detail = request
            .detail
            .as_deref()
            .map(|detail| format!(" {}", code(&detail.replace('\n', " "))))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- **{refusal}** {}{detail}: {}",
            code(&request.method),
            request.reason.replace('\n', " ")
        );
    }

    // Only runs that held requests for someone have this section.
    if !s.answered_requests.is_empty() {
        let _ = writeln!(out, "\n## Who answered\n");
    }
    for request in &s.answered_requests {
        let detail = request
            .detail
            .as_deref()
            .map(|detail| format!(" {}", code(&detail.replace('\n', " "))))
            .unwrap_or_default();
        let answer = request
            .answer
            .as_deref()
            .map(|answer| format!("**{answer}**, "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- {}{detail}: {answer}by {}",
            code(&request.method),
            request.by.describe()
        );
    }
    out
}

/// How a setting is spelled on the wire (`on-request`), which is also how a
/// user sets it.
fn wire_name(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_prefer_the_name_then_the_first_line_and_are_capped() {
        assert_eq!(title_for(Some("  Fix CI "), "prompt"), "Fix CI");
        assert_eq!(
            title_for(Some(" \n "), "\n\n  Do the thing \nmore"),
            "Do the thing"
        );
        assert_eq!(title_for(None, "first\nsecond"), "first");
        assert_eq!(title_for(Some("a\tb\nc"), ""), "a b c");
        assert_eq!(title_for(None, " \n\t"), UNTITLED);
        let long = "é".repeat(200);
        let title = title_for(None, &long);
        assert_eq!(title.chars().count(), TITLE_MAX_CHARS);
        assert!(title.ends_with('…'));
        let exact = "x".repeat(TITLE_MAX_CHARS);
        assert_eq!(title_for(Some(&exact), ""), exact);
    }

    #[test]
    fn markdown_has_every_section() {
        let mut summary = RunSummary::new(
            RunId::generate(),
            Some("Fix the build"),
            "Please fix\n\nthe build",
            PathBuf::from("/work/p"),
        );
        let empty = render_markdown(&summary);
        assert!(empty.contains("_still running_"), "{empty}");
        assert!(empty.contains("- Model: _Codex default_"), "{empty}");
        assert!(!empty.contains("## Error"), "{empty}");

        summary.thread_id = Some("thr_1".into());
        summary.model = Some("gpt-5".into());
        summary.reasoning_effort = Some("high".into());
        summary.permissions = Some(Permissions::WorkspaceWrite);
        summary.sandbox = Some(SandboxMode::WorkspaceWrite);
        summary.approval_policy = Some(ApprovalPolicy::OnRequest);
        summary.status = RunStatus::Failed;
        summary.ended_at = Some("2026-11-21T05:24:01.000Z".into());
        summary.duration_ms = Some(83_400);
        summary.commands = vec![
            CommandRun {
                command: "cargo test `x`".into(),
                exit_code: Some(101),
            },
            CommandRun {
                command: "cat <<EOF\nhi\nEOF".into(),
                exit_code: None,
            },
        ];
        summary.files_changed = vec!["src/lib.rs".into()];
        summary.final_message = Some("Done.\n\n## Not a section".into());
        summary.token_usage = Some(TokenUsage {
            total: 1500,
            input: 1000,
            output: 500,
            reasoning: 200,
        });
        summary.error = Some("tests failed".into());
        summary.refused_requests = vec![RefusedRequest {
            method: "item/commandExecution/requestApproval".into(),
            detail: Some("rm -rf /".into()),
            refusal: Refusal::Declined,
            reason: "read-only run".into(),
        }];
        summary.answered_requests = vec![AnsweredRequest {
            method: "item/commandExecution/requestApproval".into(),
            detail: Some("touch a".into()),
            answer: Some("accept".into()),
            by: Answerer::Person,
        }];
        let md = render_markdown(&summary);
        assert!(
            md.contains(
                "## Who answered\n\n- `item/commandExecution/requestApproval` `touch a`: **accept**, by the person in the MCP client"
            ),
            "{md}"
        );
        for expected in [
            "# Fix the build\n",
            "> Please fix\n>\n> the build",
            "- Directory: `/work/p`",
            "- Thread: `thr_1`",
            "- Status: **failed**",
            "- Model: `gpt-5`",
            "- Reasoning effort: `high`",
            "- Permissions: `workspace-write`",
            "- Sandbox: `workspace-write`",
            "- Approval policy: `on-request`",
            "- Started: 20",
            "- Ended: 2026-11-21T05:24:01.000Z",
            "- Duration: 1m 23s",
            "- `` cargo test `x` `` → exit 101",
            "- no exit code:\n\n  ```\n  cat <<EOF\n  hi\n  EOF\n  ```",
            "## Files changed\n\n- `src/lib.rs`",
            "> Done.\n>\n> ## Not a section",
            "- Total: 1500\n- Input: 1000\n- Output: 500\n- Reasoning: 200",
            "## Error\n\n> tests failed",
            "- **declined** `item/commandExecution/requestApproval` `rm -rf /`: read-only run",
        ] {
            assert!(md.contains(expected), "missing {expected:?} in:\n{md}");
        }
    }
}
