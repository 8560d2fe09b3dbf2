//! The checks of a run or resume request that need no actor: the prompt,
//! and the project directory on disk. The Engine runs them before it asks
//! the Supervisor, on the blocking pool, so bad input is refused before
//! anything is written and no actor waits on the disk.

use std::path::{Path, PathBuf};

use crate::actors::types::EngineError;

/// The longest prompt Codex takes in one turn, in characters: its own
/// `MAX_USER_INPUT_TEXT_CHARS` (1 << 20), which `turn/start` enforces. Checked
/// here as well so that a prompt over it is refused before a thread is
/// started or anything is written, with a message that says what to do.
pub const MAX_PROMPT_CHARS: usize = 1 << 20;

/// [`validate`] on the blocking pool: `cwd` is a directory look-up.
/// `remote`: the endpoint's name when the run goes to another host, whose
/// `cwd` is a path there: it must be absolute, and is not looked up here.
pub async fn check(
    prompt: String,
    cwd: Option<PathBuf>,
    remote: Option<&str>,
) -> Result<(), EngineError> {
    if let (Some(endpoint), Some(cwd)) = (remote, cwd.as_deref()) {
        if cwd.as_os_str().is_empty() {
            return Err(EngineError::BadRequest(format!(
                "a run on endpoint {endpoint} needs cwd: the absolute path of its directory on that host"
            )));
        }
        if !cwd.is_absolute() {
            return Err(EngineError::BadRequest(format!(
                "cwd {} is not an absolute path: a run on endpoint {endpoint} needs the absolute path of its directory on that host",
                cwd.display()
            )));
        }
        return validate(&prompt, None);
    }
    tokio::task::spawn_blocking(move || validate(&prompt, cwd.as_deref()))
        .await
        .map_err(|error| EngineError::Actor(error.to_string()))?
}

/// Bad input is refused before anything is written.
fn validate(prompt: &str, cwd: Option<&Path>) -> Result<(), EngineError> {
    if prompt.trim().is_empty() {
        return Err(EngineError::BadRequest("the prompt is empty".to_string()));
    }
    // A string of at most that many bytes has at most that many characters:
    // only a long one is counted.
    if prompt.len() > MAX_PROMPT_CHARS {
        let chars = prompt.chars().count();
        if chars > MAX_PROMPT_CHARS {
            return Err(EngineError::BadRequest(format!(
                "the prompt is too long: {chars} characters, Codex takes at most \
                 {MAX_PROMPT_CHARS}; put the long part in a file and name the file"
            )));
        }
    }
    if let Some(cwd) = cwd {
        if !cwd.is_absolute() {
            return Err(EngineError::BadRequest(format!(
                "cwd {} is not an absolute path",
                cwd.display()
            )));
        }
        if !cwd.is_dir() {
            return Err(EngineError::BadRequest(format!(
                "cwd {} does not exist or is not a directory",
                cwd.display()
            )));
        }
        // Codex would fail later, after a thread was started and audited,
        // with a less direct message.
        if let Err(error) = std::fs::read_dir(cwd) {
            return Err(EngineError::BadRequest(format!(
                "cwd {} is not readable: {error}",
                cwd.display()
            )));
        }
    }
    Ok(())
}
