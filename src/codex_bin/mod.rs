//! Finding the Codex CLI and checking that it is a version we support.
//!
//! Search order, first hit wins: `CODEX_BIN`, then `codex` on `PATH`, then the
//! project's own pinned install (`codex-cli/node_modules/.bin/codex`, put there
//! by `make setup`). An explicit `CODEX_BIN` that does not exist is an error,
//! never a silent fall-through: the user asked for that binary.
//!
//! The pinned install belongs to the checkout a binary was built in, so only a
//! binary that runs from inside that checkout (`target/debug`, `target/release`)
//! looks there. One copied out by `cargo install` runs from `~/.cargo/bin`: its
//! build checkout may be gone, moved, or a crates.io source folder with no
//! Codex in it, and a user's Codex must never silently be a test pin.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use semver::Version;

use crate::shell_path::absolute_os_setting;

mod probe;

use probe::{VERSION_PROBE_TIMEOUT, remembered_version};
pub use probe::{parse_version, probe_version};

/// The Codex CLIs this crate was verified against, oldest to newest. Older
/// ones lack the WebSocket capability-token auth we rely on and are refused;
/// newer ones are used (Codex keeps its protocol compatible, and we decode it
/// leniently) but said to be unverified. `make test` runs the whole suite on
/// `oldest` (`codex-cli/`) and a compatibility subset on `newest`
/// (`codex-cli-newest/`): bump `newest` by hand together with that pin, and
/// the README's "Finding Codex".
pub const SUPPORTED_VERSIONS: VersionRange = VersionRange {
    oldest: Version::new(0, 169, 0),
    newest: Version::new(0, 171, 0),
};

/// A range of Codex CLI versions, both ends included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange {
    pub oldest: Version,
    pub newest: Version,
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", self.oldest, self.newest)
    }
}

/// Where a Codex CLI version sits against [`SUPPORTED_VERSIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum VersionStanding {
    /// Verified: between the oldest and the newest we tested, both included.
    InRange,
    /// Released after the newest we verified: used, and said so, since
    /// Codex updates itself faster than this range is bumped.
    NewerThanVerified,
    /// Older than the oldest we support: refused.
    TooOld,
}

impl VersionRange {
    /// A pre-release of the newest (`0.171.0-alpha.1`) counts as in range,
    /// one of the next (`0.172.0-alpha.1`) as newer: semver orders a
    /// pre-release before its release, which is what we want for both ends.
    pub fn standing(&self, version: &Version) -> VersionStanding {
        if *version < self.oldest {
            VersionStanding::TooOld
        } else if *version > self.newest && !same_release(version, &self.newest) {
            VersionStanding::NewerThanVerified
        } else {
            VersionStanding::InRange
        }
    }

    /// One sentence for people: where `version` sits and what that means.
    pub fn describe(&self, version: &Version) -> String {
        match self.standing(version) {
            VersionStanding::InRange => {
                format!("Codex CLI {version} is inside the verified range {self}.")
            }
            VersionStanding::NewerThanVerified => format!(
                "Codex CLI {version} is newer than {}, the newest verified ({self}); it should work, \
                 and a problem with it is worth reporting.",
                self.newest
            ),
            VersionStanding::TooOld => format!(
                "Codex CLI {version} is older than {}, the oldest supported ({self}); upgrade it.",
                self.oldest
            ),
        }
    }
}

/// Same major.minor.patch, pre-release or build aside.
fn same_release(a: &Version, b: &Version) -> bool {
    (a.major, a.minor, a.patch) == (b.major, b.minor, b.patch)
}

/// The environment variable that names the binary explicitly.
pub const CODEX_BIN_ENV: &str = "CODEX_BIN";

/// Where `make setup` installs the pinned CLI, relative to the crate root.
const PROJECT_INSTALL: &str = "codex-cli/node_modules/.bin/codex";

/// What went wrong finding or probing the Codex CLI. Every message says what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CodexBinError {
    #[error(
        "{CODEX_BIN_ENV} is set to {path}, which does not exist; point it at a `codex` binary or unset it"
    )]
    EnvPathMissing { path: PathBuf },
    #[error(transparent)]
    EnvPathRefused(#[from] crate::config::ConfigError),
    #[error("no Codex CLI found (looked in: {searched}); {}", install_hint(*.in_checkout))]
    NotFound {
        searched: String,
        /// Whether we run from the checkout we were built in, where `make
        /// setup` is the other way to get one.
        in_checkout: bool,
    },
    #[error("could not run `{path} --version`: {source}; check that it is an executable Codex CLI")]
    NotRunnable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{path} --version` did not finish within {VERSION_PROBE_TIMEOUT:?}; check that it is a working Codex CLI"
    )]
    ProbeTimedOut { path: PathBuf },
    #[error(
        "`{path} --version` printed {output:?}, not `codex-cli X.Y.Z`; is {path} really the Codex CLI?"
    )]
    UnrecognisedVersion { path: PathBuf, output: String },
    #[error(
        "Codex CLI {found} at {path} is older than {}, the oldest this sidecar supports \
         (verified: {SUPPORTED_VERSIONS}); upgrade it (`npm install -g @openai/codex@latest`) or point {CODEX_BIN_ENV} at a newer one",
        SUPPORTED_VERSIONS.oldest
    )]
    TooOld { path: PathBuf, found: Version },
}

/// What to do when no Codex CLI was found.
fn install_hint(in_checkout: bool) -> String {
    let newest = &SUPPORTED_VERSIONS.newest;
    if in_checkout {
        format!(
            "run `make setup` in the codex-mcp-sidecar checkout, \
             `npm install -g @openai/codex@{newest}`, or set {CODEX_BIN_ENV}"
        )
    } else {
        format!(
            "install it with `npm install -g @openai/codex@{newest}` (then `codex login`), \
             or set {CODEX_BIN_ENV} to the path of a `codex` binary"
        )
    }
}

/// Why there is no usable Codex CLI, kept for `codex_wrapper_check`: the
/// error's message, and the version found when it was too old (so the check
/// can place it against the range like a usable one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoUsableCodex {
    pub message: String,
    pub too_old: Option<Version>,
}

impl fmt::Display for NoUsableCodex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<CodexBinError> for NoUsableCodex {
    fn from(error: CodexBinError) -> NoUsableCodex {
        let too_old = match &error {
            CodexBinError::TooOld { found, .. } => Some(found.clone()),
            _ => None,
        };
        NoUsableCodex {
            message: error.to_string(),
            too_old,
        }
    }
}

impl From<String> for NoUsableCodex {
    fn from(message: String) -> NoUsableCodex {
        NoUsableCodex {
            message,
            too_old: None,
        }
    }
}

/// Which step of the search order found the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinarySource {
    Env,
    Path,
    ProjectInstall,
}

impl fmt::Display for BinarySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinarySource::Env => CODEX_BIN_ENV,
            BinarySource::Path => "PATH",
            BinarySource::ProjectInstall => "project install",
        })
    }
}

/// A Codex CLI that was found and answered `--version` with a supported version.
#[derive(Debug, Clone)]
pub struct CodexBinary {
    pub path: PathBuf,
    pub source: BinarySource,
    pub version: Version,
}

impl CodexBinary {
    /// Finds the binary in the documented order and checks its version,
    /// asking the binary itself.
    pub async fn discover() -> Result<CodexBinary, CodexBinError> {
        let (path, source) = locate_from_env()?;
        let version = probe_version(&path).await?;
        CodexBinary::supported(path, source, version)
    }

    /// [`Self::discover`], with the version remembered in `cache_dir` for
    /// this very binary when there is one (see [`crate::version_cache`]),
    /// else asked of the native binary behind an npm launcher (see
    /// [`crate::codex_native`]) and remembered. A sidecar's first call
    /// waits for this.
    pub async fn discover_remembered(cache_dir: &Path) -> Result<CodexBinary, CodexBinError> {
        let (path, source) = locate_from_env()?;
        let version = remembered_version(&path, cache_dir).await?;
        CodexBinary::supported(path, source, version)
    }

    fn supported(
        path: PathBuf,
        source: BinarySource,
        version: Version,
    ) -> Result<CodexBinary, CodexBinError> {
        if SUPPORTED_VERSIONS.standing(&version) == VersionStanding::TooOld {
            return Err(CodexBinError::TooOld {
                path,
                found: version,
            });
        }
        Ok(CodexBinary {
            path,
            source,
            version,
        })
    }
}

/// The search in the documented order, without the version check (for a
/// caller that only runs the binary, like the picker's attach).
pub fn locate_from_env() -> Result<(PathBuf, BinarySource), CodexBinError> {
    let project_install = crate::process_table::current_exe()
        .ok()
        .and_then(|exe| project_install_for(&exe, Path::new(env!("CARGO_MANIFEST_DIR"))));
    let home = std::env::var("HOME").ok();
    locate(
        std::env::var_os(CODEX_BIN_ENV),
        home.as_deref(),
        project_install.as_deref(),
    )
}

/// The checkout's pinned install, for an executable whose canonical path lies
/// inside `checkout` (the folder it was built from); `None` for any other,
/// and when either path cannot be resolved (a checkout deleted since the
/// build). Canonical on both sides, so that a symlinked `~/.cargo/bin` entry
/// pointing into the checkout still counts, and a `..` or a symlink in the
/// checkout's own path does not hide it.
pub fn project_install_for(exe: &Path, checkout: &Path) -> Option<PathBuf> {
    let exe = exe.canonicalize().ok()?;
    let checkout = checkout.canonicalize().ok()?;
    exe.starts_with(&checkout)
        .then(|| checkout.join(PROJECT_INSTALL))
}

/// The search itself, with the environment passed in so that it can be tested
/// without touching the process environment.
pub fn locate(
    codex_bin_env: Option<OsString>,
    home: Option<&str>,
    project_install: Option<&Path>,
) -> Result<(PathBuf, BinarySource), CodexBinError> {
    if let Some(explicit) = codex_bin_env.filter(|value| !value.is_empty()) {
        // A bare name ("codex") is looked up on PATH like a shell would;
        // anything else is a path, with `~` and `$HOME` expanded and never
        // taken relative to whichever directory we were started in.
        let bare_name = !explicit.as_bytes().contains(&b'/')
            && !explicit.as_bytes().starts_with(b"~")
            && !explicit.as_bytes().starts_with(b"$");
        let (path, resolved) = if bare_name {
            let path = PathBuf::from(explicit);
            let resolved = which::which(&path).ok();
            (path, resolved)
        } else {
            let path = absolute_os_setting(CODEX_BIN_ENV, &explicit, home)
                .map_err(crate::config::ConfigError::from)?;
            let resolved = path.exists().then(|| path.clone());
            (path, resolved)
        };
        return resolved
            .map(|found| (found, BinarySource::Env))
            .ok_or(CodexBinError::EnvPathMissing { path });
    }
    if let Ok(found) = which::which("codex") {
        return Ok((found, BinarySource::Path));
    }
    let mut searched = format!("{CODEX_BIN_ENV}, PATH");
    if let Some(project_install) = project_install {
        if project_install.exists() {
            return Ok((project_install.to_path_buf(), BinarySource::ProjectInstall));
        }
        searched.push_str(&format!(", {}", project_install.display()));
    }
    Err(CodexBinError::NotFound {
        searched,
        in_checkout: project_install.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sit_inside_newer_than_or_older_than_the_verified_range() {
        let range = VersionRange {
            oldest: Version::new(0, 169, 0),
            newest: Version::new(0, 171, 0),
        };
        let v = |text: &str| Version::parse(text).unwrap();
        for (version, standing) in [
            ("0.169.0", VersionStanding::InRange),
            ("0.170.3", VersionStanding::InRange),
            ("0.171.0", VersionStanding::InRange),
            ("0.171.0-alpha.2", VersionStanding::InRange),
            ("0.171.1", VersionStanding::NewerThanVerified),
            ("0.172.0-alpha.1", VersionStanding::NewerThanVerified),
            ("0.999.0", VersionStanding::NewerThanVerified),
            ("1.0.0", VersionStanding::NewerThanVerified),
            ("0.168.9", VersionStanding::TooOld),
            ("0.169.0-alpha.1", VersionStanding::TooOld),
            ("0.100.0", VersionStanding::TooOld),
        ] {
            assert_eq!(range.standing(&v(version)), standing, "{version}");
        }
        let newer = range.describe(&v("0.999.0"));
        assert!(
            newer.contains("0.999.0") && newer.contains("newer than 0.171.0"),
            "{newer}"
        );
        assert!(
            range
                .describe(&v("0.170.0"))
                .contains("inside the verified range 0.169.0–0.171.0")
        );
        assert!(range.describe(&v("0.1.0")).contains("older than 0.169.0"));
    }

    #[test]
    fn the_supported_range_is_not_empty() {
        assert!(SUPPORTED_VERSIONS.oldest <= SUPPORTED_VERSIONS.newest);
    }

    /// A bump of the range must move the README and the two pins with it.
    #[test]
    fn the_readme_and_the_pins_state_the_same_range() {
        let VersionRange { oldest, newest } = &SUPPORTED_VERSIONS;
        let readme = include_str!("../../README.md");
        let stated = format!("Codex **{oldest} to {newest}**");
        assert!(readme.contains(&stated), "README.md lacks {stated:?}");
        for (pin, version) in [
            (include_str!("../../codex-cli/package.json"), oldest),
            (include_str!("../../codex-cli-newest/package.json"), newest),
        ] {
            let pinned = format!("\"@openai/codex\": \"{version}\"");
            assert!(pin.contains(&pinned), "{pin} lacks {pinned}");
        }
    }

    #[test]
    fn explicit_env_path_that_is_missing_is_an_error_not_a_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let install = dir.path().join("codex");
        std::fs::write(&install, "").unwrap();
        let err = locate(Some("/nonexistent/codex".into()), None, Some(&install)).unwrap_err();
        assert!(matches!(err, CodexBinError::EnvPathMissing { .. }));
        assert!(err.to_string().contains("/nonexistent/codex"));
    }

    #[test]
    fn env_wins_over_project_install() {
        let dir = tempfile::tempdir().unwrap();
        let explicit = dir.path().join("my-codex");
        std::fs::write(&explicit, "").unwrap();
        let (found, source) = locate(
            Some(explicit.clone().into()),
            None,
            Some(Path::new("/nope")),
        )
        .unwrap();
        assert_eq!((found, source), (explicit, BinarySource::Env));
    }

    #[test]
    fn home_forms_expand_and_relative_paths_are_refused() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join("bin")).unwrap();
        let codex = home.path().join("bin/codex");
        std::fs::write(&codex, "").unwrap();
        let home_str = home.path().to_str();
        for value in ["~/bin/codex", "$HOME/bin/codex", "${HOME}/bin/codex"] {
            let (found, source) =
                locate(Some(value.into()), home_str, Some(Path::new("/nope"))).unwrap();
            assert_eq!(
                (found, source),
                (codex.clone(), BinarySource::Env),
                "{value}"
            );
        }
        for value in ["bin/codex", "./codex", "~bob/bin/codex"] {
            let err = locate(Some(value.into()), home_str, Some(Path::new("/nope"))).unwrap_err();
            assert!(
                matches!(err, CodexBinError::EnvPathRefused(_)),
                "{value}: {err}"
            );
            let message = err.to_string();
            assert!(
                message.contains("CODEX_BIN") && message.contains(value),
                "{message}"
            );
        }
        let err = locate(Some("~/bin/codex".into()), None, Some(Path::new("/nope"))).unwrap_err();
        assert!(err.to_string().contains("HOME is not set"), "{err}");
    }

    #[test]
    fn only_an_executable_inside_its_checkout_uses_the_pinned_install() {
        let root = tempfile::tempdir().unwrap();
        let checkout = root.path().join("checkout");
        let built = checkout.join("target/release/codex-mcp-sidecar");
        std::fs::create_dir_all(built.parent().unwrap()).unwrap();
        std::fs::write(&built, "").unwrap();
        let pinned = checkout.canonicalize().unwrap().join(PROJECT_INSTALL);
        assert_eq!(project_install_for(&built, &checkout), Some(pinned.clone()));
        // Reached through `..` or through a symlink: still the checkout.
        let dotted = checkout.join("target/../target/release/codex-mcp-sidecar");
        assert_eq!(
            project_install_for(&dotted, &checkout),
            Some(pinned.clone())
        );
        let link = root.path().join("bin-link");
        std::os::unix::fs::symlink(&built, &link).unwrap();
        assert_eq!(project_install_for(&link, &checkout), Some(pinned));

        // A copy elsewhere, even in a folder whose name merely starts the same.
        for elsewhere in [
            "installed/codex-mcp-sidecar",
            "checkout-old/codex-mcp-sidecar",
        ] {
            let copy = root.path().join(elsewhere);
            std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
            std::fs::copy(&built, &copy).unwrap();
            assert_eq!(project_install_for(&copy, &checkout), None, "{elsewhere}");
        }
        // The checkout is gone (a crates.io source folder cleaned up).
        assert_eq!(
            project_install_for(&built, &root.path().join("deleted")),
            None
        );
    }

    #[test]
    fn only_a_binary_in_its_checkout_is_told_to_run_make_setup() {
        let installed = CodexBinError::NotFound {
            searched: "CODEX_BIN, PATH".into(),
            in_checkout: false,
        }
        .to_string();
        assert!(
            installed.contains("npm install -g @openai/codex@") && !installed.contains("make"),
            "{installed}"
        );
        let in_checkout = CodexBinError::NotFound {
            searched: "CODEX_BIN, PATH, /c/codex-cli/node_modules/.bin/codex".into(),
            in_checkout: true,
        }
        .to_string();
        assert!(in_checkout.contains("make setup"), "{in_checkout}");
    }

    #[test]
    fn a_bare_name_is_still_looked_up_on_path() {
        // `sh` is on every PATH this runs on; the name has no `/`, so it is
        // never refused as relative.
        let (found, source) = locate(Some("sh".into()), None, Some(Path::new("/nope"))).unwrap();
        assert!(found.is_absolute() && found.ends_with("sh"), "{found:?}");
        assert_eq!(source, BinarySource::Env);
        let err = locate(
            Some("no-such-codex-anywhere".into()),
            None,
            Some(Path::new("/nope")),
        )
        .unwrap_err();
        assert!(matches!(err, CodexBinError::EnvPathMissing { .. }), "{err}");
    }
}
