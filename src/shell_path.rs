//! Path settings read the way a shell would have written them. MCP clients
//! pass `env` values literally (Claude Code hands `~/.codex` over as those
//! eight characters), so the sidecar expands a leading `~`, `~/`, `$HOME` or
//! `${HOME}` itself, and refuses whatever is still relative: a relative
//! setting would be taken against whichever directory the client started us
//! in, and a folder named `~` in a project is one `rm -rf ~` away from
//! deleting a home directory.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A path setting refused, with why. `ConfigError::RefusedPath` carries the
/// same fields: this module sits below the settings, so it names its own
/// error and the settings turn it into theirs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} is refused: {reason}")]
pub struct RefusedPath {
    pub name: &'static str,
    pub value: String,
    pub reason: PathRefusal,
}

/// `value` of the setting `name` as an absolute path, with a leading `~`,
/// `~/`, `$HOME` or `${HOME}` taken from `home`. Anything else that a shell
/// would expand (`~user`, another variable) is refused rather than kept as
/// literal characters of a relative path.
pub fn absolute_setting(
    name: &'static str,
    value: &str,
    home: Option<&str>,
) -> Result<PathBuf, RefusedPath> {
    absolute_part(name, value, value, home)
}

/// [`absolute_setting`] for the path part of a setting (a `unix://` URL's
/// path): a refusal shows the setting's whole `given` value.
pub fn absolute_part(
    name: &'static str,
    given: &str,
    value: &str,
    home: Option<&str>,
) -> Result<PathBuf, RefusedPath> {
    let refused = |reason| RefusedPath {
        name,
        value: given.to_string(),
        reason,
    };
    let path = match home_relative(value) {
        Leading::Home(rest) => {
            let home = home
                .filter(|home| !home.is_empty())
                .ok_or_else(|| refused(PathRefusal::NoHome))?;
            // `~//x` means `$HOME/x` to a shell; `join` would take `/x`.
            Path::new(home).join(rest.trim_start_matches('/'))
        }
        Leading::OtherUser => return Err(refused(PathRefusal::OtherUser)),
        Leading::Literal => PathBuf::from(value),
    };
    if !path.is_absolute() {
        return Err(refused(PathRefusal::Relative));
    }
    Ok(path)
}

/// [`absolute_setting`] for a value that may not be UTF-8 (`CODEX_BIN` is
/// read as an `OsString`): such a value has no `~` or `$HOME` to expand, so
/// it only needs to be absolute already.
pub fn absolute_os_setting(
    name: &'static str,
    value: &OsStr,
    home: Option<&str>,
) -> Result<PathBuf, RefusedPath> {
    match value.to_str() {
        Some(text) => absolute_setting(name, text, home),
        None if Path::new(value).is_absolute() => Ok(PathBuf::from(value)),
        None => Err(RefusedPath {
            name,
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            reason: PathRefusal::Relative,
        }),
    }
}

/// Why a path setting was refused; each says what to write instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    Relative,
    NoHome,
    OtherUser,
}

impl std::fmt::Display for PathRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathRefusal::Relative => {
                "it must be an absolute path (or start with ~/ or $HOME/); \
                 a relative one would land in whatever directory the sidecar was started in"
            }
            PathRefusal::NoHome => {
                "it starts with ~ or $HOME, but HOME is not set; set HOME or write an absolute path"
            }
            PathRefusal::OtherUser => {
                "~USER is not expanded; write the absolute path (or start with ~/ for your own home)"
            }
        })
    }
}

/// How a value begins, as far as home expansion is concerned.
enum Leading<'a> {
    /// The home directory, then this rest (empty, or starting with `/`).
    Home(&'a str),
    /// `~name`: another user's home, which we do not look up.
    OtherUser,
    Literal,
}

fn home_relative(value: &str) -> Leading<'_> {
    if let Some(rest) = value.strip_prefix('~') {
        return if rest.is_empty() || rest.starts_with('/') {
            Leading::Home(rest)
        } else {
            Leading::OtherUser
        };
    }
    for variable in ["${HOME}", "$HOME"] {
        if let Some(rest) = value.strip_prefix(variable) {
            // `$HOMEDIR` is another variable, never `$HOME` + `DIR`.
            if rest.is_empty() || rest.starts_with('/') {
                return Leading::Home(rest);
            }
        }
    }
    Leading::Literal
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Option<&str> = Some("/home/u");

    fn expand(value: &str) -> Result<PathBuf, RefusedPath> {
        absolute_setting("CODEX_HOME", value, HOME)
    }

    fn refusal(value: &str, home: Option<&str>) -> PathRefusal {
        match absolute_setting("CODEX_HOME", value, home) {
            Err(RefusedPath { reason, .. }) => reason,
            other => panic!("{value:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn every_leading_home_form_expands() {
        for (value, expected) in [
            ("~", "/home/u"),
            ("~/", "/home/u"),
            ("~/.codex", "/home/u/.codex"),
            ("~//.codex", "/home/u/.codex"),
            ("$HOME", "/home/u"),
            ("$HOME/.codex", "/home/u/.codex"),
            ("${HOME}", "/home/u"),
            ("${HOME}/.codex/mcp-wrapper", "/home/u/.codex/mcp-wrapper"),
            ("/abs/~/kept", "/abs/~/kept"),
            ("/abs/$HOME", "/abs/$HOME"),
        ] {
            assert_eq!(expand(value).unwrap(), PathBuf::from(expected), "{value}");
        }
        assert_eq!(
            absolute_setting("X", "~/.codex", Some("/home/u/")).unwrap(),
            PathBuf::from("/home/u/.codex")
        );
    }

    #[test]
    fn relative_values_are_refused_with_the_setting_and_the_value() {
        for value in [".codex", "./runs", "runs/here", "$HOMEDIR/x", "$CODEX/x"] {
            assert_eq!(refusal(value, HOME), PathRefusal::Relative, "{value}");
        }
        let error = expand("my-home").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("CODEX_HOME"), "{message}");
        assert!(message.contains("\"my-home\""), "{message}");
        assert!(message.contains("absolute"), "{message}");
        assert!(message.contains("~/"), "{message}");
    }

    #[test]
    fn home_forms_without_a_home_are_refused_naming_the_setting() {
        for value in ["~", "~/.codex", "$HOME/.codex", "${HOME}"] {
            assert_eq!(refusal(value, None), PathRefusal::NoHome, "{value}");
            assert_eq!(refusal(value, Some("")), PathRefusal::NoHome, "{value}");
        }
        let message = expand_with_no_home("~/.codex");
        assert!(message.contains("CODEX_HOME") && message.contains("HOME is not set"));
        // A relative HOME gives a relative path: refused like any other.
        assert_eq!(refusal("~/.codex", Some("home")), PathRefusal::Relative);
    }

    fn expand_with_no_home(value: &str) -> String {
        absolute_setting("CODEX_HOME", value, None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn another_users_home_is_refused_never_taken_as_a_folder() {
        for value in ["~bob", "~bob/.codex", "~+/x"] {
            assert_eq!(refusal(value, HOME), PathRefusal::OtherUser, "{value}");
        }
        assert!(
            expand("~bob/.codex")
                .unwrap_err()
                .to_string()
                .contains("~USER")
        );
    }

    #[test]
    fn non_utf8_values_must_already_be_absolute() {
        let absolute = OsStr::from_bytes(b"/opt/\xffcodex");
        assert_eq!(
            absolute_os_setting("CODEX_BIN", absolute, HOME).unwrap(),
            PathBuf::from(absolute)
        );
        let relative = OsStr::from_bytes(b"bin/\xffcodex");
        assert!(absolute_os_setting("CODEX_BIN", relative, HOME).is_err());
        assert_eq!(
            absolute_os_setting("CODEX_BIN", OsStr::new("~/bin/codex"), HOME).unwrap(),
            PathBuf::from("/home/u/bin/codex")
        );
    }
}
