//! Text for the picker's cells: widths measured the way the terminal buffer
//! measures them (ratatui's graphemes and [`CellWidth`]), so a truncated title
//! never splits a wide character and never overflows its column.

use std::borrow::Cow;

use ratatui::buffer::CellWidth;
use ratatui::style::Style;
use ratatui::text::Span;
use time::OffsetDateTime;

/// Marks text that was cut: one cell wide, so the arithmetic stays simple.
pub const ELLIPSIS: &str = "…";

/// The graphemes of a span the buffer would draw, with their widths. Control
/// characters are dropped by ratatui here, as they are when drawing, so a tab
/// or newline in a title cannot shift the columns after it. Callers make the
/// span (`Span::raw(text)`): ratatui lends the graphemes out of it.
fn graphemes<'a>(span: &'a Span<'_>) -> impl Iterator<Item = (&'a str, usize)> {
    span.styled_graphemes(Style::default())
        .map(|grapheme| (grapheme.symbol, usize::from(grapheme.symbol.cell_width())))
}

/// How many cells `text` takes once drawn.
pub fn width(text: &str) -> usize {
    graphemes(&Span::raw(text)).map(|(_, cells)| cells).sum()
}

/// `text` cut to at most `max` cells, ending in `…` when cut. Borrowed when it
/// already fits, which is the common case for every visible row of every frame.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if width(text) <= max {
        return Cow::Borrowed(text);
    }
    Cow::Owned(ellipsize(text, max))
}

/// As much of `text` as fits in `max` cells with `…` after it, whether or
/// not the whole would have fit: for text known to go on past this point.
fn ellipsize(text: &str, max: usize) -> String {
    let Some(budget) = max.checked_sub(1) else {
        return String::new();
    };
    let mut used = 0;
    let mut out = String::with_capacity(text.len().min(max * 4));
    for (symbol, cells) in graphemes(&Span::raw(text)) {
        if used + cells > budget {
            break;
        }
        used += cells;
        out.push_str(symbol);
    }
    out.push_str(ELLIPSIS);
    out
}

/// `text` cut from the front to at most `max` cells, starting with `…` when
/// cut: for paths, whose end says more than their beginning.
pub fn truncate_start(text: &str, max: usize) -> Cow<'_, str> {
    if width(text) <= max {
        return Cow::Borrowed(text);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let budget = max - 1;
    let mut used = 0;
    let mut kept: Vec<&str> = Vec::new();
    let span = Span::raw(text);
    let all: Vec<(&str, usize)> = graphemes(&span).collect();
    for &(symbol, cells) in all.iter().rev() {
        if used + cells > budget {
            break;
        }
        used += cells;
        kept.push(symbol);
    }
    let mut out = String::from(ELLIPSIS);
    out.extend(kept.into_iter().rev());
    Cow::Owned(out)
}

/// `text` padded with spaces to exactly `cells` cells (cut first if longer),
/// so the columns after it line up even after wide characters.
pub fn fit(text: &str, cells: usize) -> String {
    let cut = truncate(text, cells);
    let pad = cells.saturating_sub(width(&cut));
    let mut out = String::with_capacity(cut.len() + pad);
    out.push_str(&cut);
    out.extend(std::iter::repeat_n(' ', pad));
    out
}

/// Like [`fit`], but with the text against the right edge: numbers read best
/// aligned on their last digit.
pub fn fit_right(text: &str, cells: usize) -> String {
    let cut = truncate(text, cells);
    let pad = cells.saturating_sub(width(&cut));
    let mut out = String::with_capacity(cut.len() + pad);
    out.extend(std::iter::repeat_n(' ', pad));
    out.push_str(&cut);
    out
}

/// Words of `text` filled into lines of at most `cells` cells, at most
/// `max_lines` of them; the last ends in `…` when text was left over. Words
/// wider than a line are cut across lines. Whitespace, newlines included,
/// collapses to single spaces: this is an excerpt, not the message itself.
pub fn wrap(text: &str, cells: usize, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    if cells == 0 || max_lines == 0 {
        return lines;
    }
    let mut line = String::new();
    let mut used = 0;
    let mut left_over = false;
    'words: for word in text.split_whitespace() {
        let word_cells = width(word);
        if used > 0 && used + 1 + word_cells <= cells {
            line.push(' ');
            line.push_str(word);
            used += 1 + word_cells;
            continue;
        }
        if used > 0 {
            lines.push(std::mem::take(&mut line));
            used = 0;
            if lines.len() == max_lines {
                left_over = true;
                break;
            }
        }
        // The word starts a line; a word wider than the line is cut across lines.
        for (symbol, symbol_cells) in graphemes(&Span::raw(word)) {
            if used + symbol_cells > cells {
                lines.push(std::mem::take(&mut line));
                used = 0;
                if lines.len() == max_lines {
                    left_over = true;
                    break 'words;
                }
            }
            line.push_str(symbol);
            used += symbol_cells;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    if left_over && let Some(last) = lines.last_mut() {
        *last = ellipsize(last, cells);
    }
    lines
}

/// A token count in at most six cells: `950`, `12.3k`, `1.2M`; `-` unknown.
pub fn tokens(count: Option<u64>) -> String {
    /// Below this, `999.9` of a unit would round up to `1000.0`: switch unit.
    const ROUNDS_TO_NEXT_UNIT: f64 = 999.95;
    let Some(count) = count else {
        return "-".to_string();
    };
    if count < 1_000 {
        return count.to_string();
    }
    let mut value = count as f64 / 1_000.0;
    for unit in ["k", "M", "G"] {
        if value < ROUNDS_TO_NEXT_UNIT {
            return format!("{value:.1}{unit}");
        }
        value /= 1_000.0;
    }
    format!("{value:.1}T")
}

/// A span of time in at most seven cells, to the precision a glance needs:
/// `45s`, `12m 05s`, `3h 07m`, `2d 04h`.
pub fn span(seconds: u64) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    match seconds {
        s if s < MINUTE => format!("{s}s"),
        s if s < HOUR => format!("{}m {:02}s", s / MINUTE, s % MINUTE),
        s if s < DAY => format!("{}h {:02}m", s / HOUR, s % HOUR / MINUTE),
        s => format!("{}d {:02}h", s / DAY, s % DAY / HOUR),
    }
}

/// Whole seconds from `from` to `to`; zero when `to` is earlier (clock skew
/// between machines must not print a negative age).
pub fn seconds_between(from: OffsetDateTime, to: OffsetDateTime) -> u64 {
    u64::try_from((to - from).whole_seconds()).unwrap_or(0)
}

/// Whether `haystack` contains `needle_lower` (already lowercase), ignoring
/// case. ASCII needles, the usual case, are matched without allocating: the
/// filter runs over every row on each keystroke.
pub fn contains_ignore_case(haystack: &str, needle_lower: &str) -> bool {
    if needle_lower.is_empty() {
        return true;
    }
    if needle_lower.is_ascii() {
        let needle = needle_lower.as_bytes();
        return haystack
            .as_bytes()
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle));
    }
    haystack.to_lowercase().contains(needle_lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_text_that_fits() {
        assert!(matches!(truncate("short", 10), Cow::Borrowed("short")));
        assert_eq!(truncate("exactly", 7), "exactly");
    }

    #[test]
    fn truncate_ends_with_an_ellipsis() {
        assert_eq!(truncate("a long title", 6), "a lon…");
        assert_eq!(truncate("abc", 1), "…");
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn truncate_never_splits_a_wide_character() {
        // Each of these takes two cells: five cells hold two of them and `…`.
        assert_eq!(truncate("修复登录页面", 5), "修复…");
        assert_eq!(width(&truncate("修复登录页面", 5)), 5);
        // Four cells: one wide character, and the third cell stays free.
        assert_eq!(truncate("修复登录页面", 4), "修…");
        assert_eq!(width(&truncate("修复登录页面", 4)), 3);
        // `ok 👍` fills five cells: no room is left for `…` after the emoji.
        assert_eq!(truncate("ok 👍 done", 5), "ok …");
        assert_eq!(truncate("ok 👍 done", 6), "ok 👍…");
    }

    #[test]
    fn fit_pads_to_the_exact_width() {
        assert_eq!(fit("修复", 6), "修复  ");
        assert_eq!(width(&fit("修复登录页面", 5)), 5);
        assert_eq!(fit_right("12", 4), "  12");
        assert_eq!(width(&fit("tab\there", 8)), 8);
    }

    #[test]
    fn truncate_start_keeps_the_end_of_a_path() {
        assert_eq!(truncate_start("/home/ada/projects/api", 10), "…jects/api");
        assert_eq!(truncate_start("/short", 10), "/short");
    }

    #[test]
    fn wrap_fills_lines_and_marks_what_was_left() {
        let text = "The tests pass now. I changed the parser\nto keep unknown fields.";
        assert_eq!(
            wrap(text, 20, 5),
            vec![
                "The tests pass now.",
                "I changed the parser",
                "to keep unknown",
                "fields."
            ]
        );
        assert_eq!(
            wrap(text, 20, 2),
            vec!["The tests pass now.", "I changed the parse…"]
        );
        assert_eq!(wrap("abcdefghij", 4, 5), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("abcdefghij", 4, 2), vec!["abcd", "efg…"]);
        assert!(wrap("anything", 0, 3).is_empty());
        for line in wrap("修复登录页面的错误并添加测试", 5, 10) {
            assert!(width(&line) <= 5, "{line}");
        }
    }

    #[test]
    fn tokens_are_compact() {
        assert_eq!(tokens(None), "-");
        assert_eq!(tokens(Some(950)), "950");
        assert_eq!(tokens(Some(12_345)), "12.3k");
        assert_eq!(tokens(Some(999_949)), "999.9k");
        assert_eq!(tokens(Some(999_999)), "1.0M");
        assert_eq!(tokens(Some(1_234_567)), "1.2M");
        assert_eq!(tokens(Some(7_000_000_000)), "7.0G");
    }

    #[test]
    fn spans_are_compact() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(59), "59s");
        assert_eq!(span(725), "12m 05s");
        assert_eq!(span(3 * 3600 + 7 * 60 + 9), "3h 07m");
        assert_eq!(span(2 * 86_400 + 4 * 3600), "2d 04h");
    }

    #[test]
    fn case_is_ignored_in_matches() {
        assert!(contains_ignore_case("Fix the Parser", "parser"));
        assert!(contains_ignore_case("ÉCOLE", "école"));
        assert!(!contains_ignore_case("abc", "abcd"));
        assert!(contains_ignore_case("abc", ""));
    }
}
