//! The prompts of the plan and review conversations: what Codex is asked,
//! built from the tool's fields. No reply language is forced.

/// A critique of a plan before any code is written.
pub fn plan_critique(requirements: &str, plan: &str, constraints: Option<&str>) -> String {
    let mut prompt = format!(
        "Critique this plan before it is carried out. Say what is missing, wrong or risky, \
         and what you would change. Do not change any files.\n\n\
         ## Requirements\n{requirements}\n\n## Plan\n{plan}\n"
    );
    if let Some(constraints) = constraints.filter(|text| !text.trim().is_empty()) {
        prompt.push_str(&format!("\n## Constraints\n{constraints}\n"));
    }
    prompt
}

/// A review of a finished change.
pub fn change_review(
    change_summary: &str,
    test_results: Option<&str>,
    open_questions: Option<&str>,
) -> String {
    let mut prompt = format!(
        "Review this change as a careful colleague would before it lands: look at the code in \
         the working directory, name real problems first, then smaller ones. Do not change any \
         files.\n\n## Change\n{change_summary}\n"
    );
    for (heading, text) in [
        ("Test results", test_results),
        ("Open questions", open_questions),
    ] {
        if let Some(text) = text.filter(|text| !text.trim().is_empty()) {
            prompt.push_str(&format!("\n## {heading}\n{text}\n"));
        }
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_sections_appear_only_when_given() {
        let with = plan_critique("r", "p", Some("c"));
        assert!(with.contains("## Constraints\nc"));
        assert!(!plan_critique("r", "p", Some("  ")).contains("Constraints"));
        let review = change_review("s", None, Some("q?"));
        assert!(review.contains("## Open questions\nq?"));
        assert!(!review.contains("Test results"));
    }
}
