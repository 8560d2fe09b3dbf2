//! Which Codex the tests, benches and examples run: `CODEX_BIN` when set
//! (`make test` points it at the newest verified Codex for the compatibility
//! subset), else the project's pinned install that `make setup` puts in
//! `codex-cli/`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use codex_mcp_sidecar::codex_bin::{BinarySource, CodexBinary, parse_version};

/// The checkout's root, where the root crate's `Cargo.toml` and the pinned
/// installs live: two levels above this crate.
pub fn workspace_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        here.ancestors()
            .nth(2)
            .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
    })
}

/// The project's pinned Codex (`codex-cli/node_modules/.bin/codex`),
/// whatever `CODEX_BIN` says.
pub fn pinned_codex_bin() -> PathBuf {
    workspace_root().join("codex-cli/node_modules/.bin/codex")
}

/// The Codex binary under test: `CODEX_BIN` when set, else
/// [`pinned_codex_bin`].
pub fn codex_bin() -> PathBuf {
    match std::env::var_os("CODEX_BIN") {
        Some(path) => PathBuf::from(path),
        None => pinned_codex_bin(),
    }
}

/// The version of the Codex under test ([`codex_bin`]), asked once per
/// process: tests that assert a version take it from here, so the same
/// tests pass on the oldest and the newest verified Codex.
///
/// # Panics
///
/// When `codex --version` does not run or prints no version: nothing a test
/// could go on without.
#[allow(clippy::expect_used)]
pub fn codex_version() -> semver::Version {
    static VERSION: OnceLock<semver::Version> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let output = std::process::Command::new(codex_bin())
                .arg("--version")
                .output()
                .expect("codex --version runs");
            parse_version(&String::from_utf8_lossy(&output.stdout))
                .expect("codex --version prints codex-cli X.Y.Z")
        })
        .clone()
}

/// The Codex under test as the sidecar finds it through `CODEX_BIN`.
pub fn codex_binary() -> CodexBinary {
    CodexBinary {
        path: codex_bin(),
        source: BinarySource::Env,
        version: codex_version(),
    }
}
