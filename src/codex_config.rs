//! What the sidecar adds to the Codex config of every thread it starts or
//! resumes, and why.
//!
//! Codex hands its commands the environment it was started with, secrets
//! included, unless `shell_environment_policy.ignore_default_excludes` is
//! false (then variables whose names contain KEY, SECRET or TOKEN are
//! dropped). Codex 0.169 defaults it to true, so a prompt that runs
//! `printenv` would get `OPENAI_API_KEY` into the model's context, the
//! command's output, and so the audit. The sidecar asks for the excludes,
//! unless the user's `config.toml` says otherwise: a choice made there is
//! theirs (a `gh` that needs `GITHUB_TOKEN`, say).

use std::path::Path;

use serde_json::{Map, Value};

/// The Codex config key, as a dotted override (`-c` style).
pub const SECRET_EXCLUDES_KEY: &str = "shell_environment_policy.ignore_default_excludes";

/// The overrides for every thread, given the user's Codex home. A
/// `config.toml` that cannot be read or parsed counts as saying nothing:
/// Codex itself will report it.
pub fn thread_overrides(codex_home: &Path) -> Map<String, Value> {
    let chosen = std::fs::read_to_string(codex_home.join("config.toml"))
        .ok()
        .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
        .is_some_and(|table| {
            table
                .get("shell_environment_policy")
                .and_then(|policy| policy.get("ignore_default_excludes"))
                .is_some()
        });
    let mut overrides = Map::new();
    if !chosen {
        overrides.insert(SECRET_EXCLUDES_KEY.to_string(), Value::Bool(false));
    }
    overrides
}

/// `overrides` under `caller`'s own config: what a caller set (the legacy
/// tool's `config`) wins. `None` when there is nothing to send.
pub fn merged(
    overrides: &Map<String, Value>,
    caller: Option<Map<String, Value>>,
) -> Option<Map<String, Value>> {
    let mut config = overrides.clone();
    config.extend(caller.unwrap_or_default());
    (!config.is_empty()).then_some(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_excluded_unless_the_user_chose() {
        let home = tempfile::tempdir().unwrap();
        let asked = json!({SECRET_EXCLUDES_KEY: false});
        assert_eq!(Value::Object(thread_overrides(home.path())), asked);
        std::fs::write(home.path().join("config.toml"), "model = \"x\"\n").unwrap();
        assert_eq!(Value::Object(thread_overrides(home.path())), asked);
        std::fs::write(
            home.path().join("config.toml"),
            "[shell_environment_policy]\nignore_default_excludes = true\n",
        )
        .unwrap();
        assert!(thread_overrides(home.path()).is_empty());
    }

    #[test]
    fn the_caller_wins_and_nothing_is_none() {
        let ours = thread_overrides(Path::new("/nonexistent"));
        let caller = json!({SECRET_EXCLUDES_KEY: true, "compact_prompt": "p"});
        let merged = merged(&ours, caller.as_object().cloned()).unwrap();
        assert_eq!(Value::Object(merged), caller);
        assert_eq!(super::merged(&Map::new(), None), None);
    }
}
