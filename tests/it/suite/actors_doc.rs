//! `actors.md` stays true: every variant of every actor's message enum (and
//! of the reports and queued requests they carry) is named there, and every
//! source path it names exists.

use std::path::{Path, PathBuf};

/// The enums `actors.md` documents, each with the file that declares it.
const MESSAGE_ENUMS: [(&str, &str); 6] = [
    ("SupervisorMsg", "src/actors/supervisor/messages.rs"),
    ("LinkOutcome", "src/actors/supervisor/messages.rs"),
    ("RunMsg", "src/actors/run/mod.rs"),
    ("RunReport", "src/actors/run/report.rs"),
    ("BrokerMsg", "src/actors/broker.rs"),
    ("ConversationMsg", "src/actors/conversations.rs"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The variant names of `pub enum name { … }` in `source`: the lines
/// indented once that start with a capital letter.
fn variants(source: &str, name: &str) -> Vec<String> {
    let start = source
        .lines()
        .position(|line| {
            line.trim_start().starts_with("pub")
                && line.contains(&format!("enum {name} "))
                && line.trim_end().ends_with('{')
        })
        .unwrap_or_else(|| panic!("enum {name} not found"));
    source
        .lines()
        .skip(start + 1)
        .take_while(|line| *line != "}")
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|line| line.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|line| {
            line.split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn actors_md_names_every_message() {
    let doc = read(&root().join("actors.md"));
    for (name, file) in MESSAGE_ENUMS {
        let found = variants(&read(&root().join(file)), name);
        assert!(!found.is_empty(), "{name} in {file} has no variants?");
        let missing: Vec<_> = found
            .iter()
            .filter(|variant| {
                !doc.contains(&format!("`{variant}")) && !doc.contains(&format!("::{variant}"))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "actors.md does not name {name}::{missing:?} (declared in {file})"
        );
    }
}

#[test]
fn every_source_path_in_actors_md_exists() {
    let doc = read(&root().join("actors.md"));
    let paths: Vec<&str> = doc
        .split(|c: char| c.is_whitespace() || "`()[],;:".contains(c))
        .filter(|word| word.starts_with("src/"))
        .map(|word| word.trim_end_matches('.'))
        .collect();
    assert!(paths.len() > 10, "found only {paths:?}");
    let missing: Vec<_> = paths
        .iter()
        .filter(|path| !root().join(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "actors.md names paths that do not exist: {missing:?}"
    );
}
