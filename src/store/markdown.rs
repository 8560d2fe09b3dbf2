//! Markdown building blocks for the run summary: text from Codex or the user
//! (commands, prompts, final messages) goes in code spans, fenced blocks or
//! quotes that its own backticks and headings cannot break out of.

use std::fmt::Write as _;

/// What an empty section or quote reads as.
pub(super) const NONE: &str = "_none_";

/// An inline code span that survives backticks and newlines in `text`.
pub(super) fn code(text: &str) -> String {
    let text = text.replace('\n', " ");
    let fence = "`".repeat(longest_backtick_run(&text) + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') || text.is_empty() {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// A fenced block, every line indented by `indent` (to sit in a list item).
pub(super) fn fenced(text: &str, indent: &str) -> String {
    let fence = "`".repeat((longest_backtick_run(text) + 1).max(3));
    let mut out = format!("{indent}{fence}\n");
    for line in text.lines() {
        let _ = writeln!(out, "{indent}{line}");
    }
    let _ = write!(out, "{indent}{fence}");
    out
}

/// Text as a block quote, so that its own Markdown renders but cannot break
/// the summary's sections.
pub(super) fn quote(text: &str) -> String {
    if text.trim().is_empty() {
        return NONE.to_string();
    }
    text.lines()
        .map(|line| {
            if line.is_empty() {
                ">".to_string()
            } else {
                format!("> {line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

pub(super) fn format_duration(ms: u64) -> String {
    const MS_PER_SECOND: u64 = 1000;
    const SECONDS_PER_MINUTE: u64 = 60;
    const SECONDS_PER_HOUR: u64 = 3600;
    if ms < MS_PER_SECOND {
        return format!("{ms} ms");
    }
    let seconds = ms / MS_PER_SECOND;
    if seconds < SECONDS_PER_MINUTE {
        return format!("{}.{} s", seconds, (ms % MS_PER_SECOND) / 100);
    }
    let (hours, rest) = (seconds / SECONDS_PER_HOUR, seconds % SECONDS_PER_HOUR);
    let (minutes, seconds) = (rest / SECONDS_PER_MINUTE, rest % SECONDS_PER_MINUTE);
    if hours > 0 {
        format!("{hours}h {minutes}m {seconds}s")
    } else {
        format!("{minutes}m {seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_break_out() {
        assert_eq!(code("ls"), "`ls`");
        assert_eq!(code("a ``b`` c"), "```a ``b`` c```");
        assert_eq!(code("`x`"), "`` `x` ``");
        assert_eq!(code("a\nb"), "`a b`");
        assert_eq!(fenced("a\n```\nb", ""), "````\na\n```\nb\n````");
        assert_eq!(quote("# h\n\nx"), "> # h\n>\n> x");
        assert_eq!(quote(" \n"), NONE);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(12), "12 ms");
        assert_eq!(format_duration(1_250), "1.2 s");
        assert_eq!(format_duration(61_000), "1m 1s");
        assert_eq!(format_duration(3_723_000), "1h 2m 3s");
    }
}
