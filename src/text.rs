//! Cutting text for replies, errors and records: one rule everywhere, on a
//! character boundary, marked with `…` where something was left out.

/// At most `limit` characters of `text`, followed by `…` when it was cut.
pub fn cut(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
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
}
