//! What reads Claude Code's output in the plugin tests.

/// The line `claude mcp list` prints for server `name`.
pub fn line_of<'a>(list: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    list.lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{name}` entry in:\n{list}"))
}
