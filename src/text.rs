//! Cutting text for replies, errors and records: one rule everywhere, on a
//! character boundary, marked with `…` where something was left out.

/// At most `limit` characters of `text`, followed by `…` when it was cut.
pub fn cut(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// [`cut`] to at most `limit` characters in all, the `…` of a cut
/// included: for lists whose entries have a size bound of their own.
pub fn cut_within(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    cut(text, limit.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_what_fits_and_marks_what_it_drops() {
        assert_eq!(cut("done", 4), "done");
        assert_eq!(cut("done!", 4), "done…");
        assert_eq!(cut("ééé", 2), "éé…");
        assert_eq!(cut("", 0), "");
    }

    #[test]
    fn cut_within_counts_the_mark() {
        assert_eq!(cut_within("done", 4), "done");
        assert_eq!(cut_within("done!", 4), "don…");
        assert_eq!(cut_within("done!", 4).chars().count(), 4);
    }
}
