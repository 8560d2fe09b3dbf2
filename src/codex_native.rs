//! The native Codex binary behind the npm launcher.
//!
//! `npm install @openai/codex` puts a Node script on `PATH` (`bin/codex.js`)
//! that finds the platform package's vendored binary and replaces itself
//! with it. Starting Node costs 100–200 ms before Codex itself runs, which a
//! `codex --version` pays in full. When the path we found is that launcher,
//! this module finds the binary it would start, and the environment it would
//! start it with, so that we can run it directly. Anything unexpected (a
//! layout we do not know, a package manager whose ownership we do not
//! detect) answers `None`: the launcher still works, only slower.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The launcher's own package, whose `bin/codex.js` we recognise.
const LAUNCHER_PACKAGE: &str = "@openai/codex";

/// Set by the launcher for the binary: the package's canonical root (Codex
/// uses it to find its resources and to say how to update itself).
pub const PACKAGE_ROOT_ENV: &str = "CODEX_MANAGED_PACKAGE_ROOT";

/// One of these says which package manager installed Codex; the launcher
/// clears all of them and sets one.
const MANAGER_ENVS: [&str; 4] = [
    "CODEX_MANAGED_BY_NPM",
    "CODEX_MANAGED_BY_BUN",
    "CODEX_MANAGED_BY_PNPM",
    "CODEX_MANAGED_BY_VITE_PLUS",
];

/// The native binary and how the launcher would have started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeCodex {
    pub binary: PathBuf,
    /// The package root, as [`PACKAGE_ROOT_ENV`].
    pub package_root: PathBuf,
    /// Which of the manager variables is set to `1`; the others are removed.
    pub managed_by: &'static str,
}

impl NativeCodex {
    /// Gives `command` the environment the launcher gives the binary.
    pub fn apply_env(&self, command: &mut tokio::process::Command) {
        for name in MANAGER_ENVS {
            command.env_remove(name);
        }
        command
            .env(PACKAGE_ROOT_ENV, &self.package_root)
            .env(self.managed_by, "1");
    }
}

/// The native binary the launcher at `launcher` would start on this
/// machine; `None` when `launcher` is not the npm launcher or its binary is
/// not where the launcher looks.
pub fn resolve(launcher: &Path) -> Option<NativeCodex> {
    let script = launcher.canonicalize().ok()?;
    if script.file_name()? != "codex.js" {
        return None;
    }
    let bin_dir = script.parent()?;
    if bin_dir.file_name()? != "bin" {
        return None;
    }
    let package_root = bin_dir.parent()?.to_path_buf();
    if !is_launcher_package(&package_root) {
        return None;
    }
    let managed_by = package_manager(&package_root, bin_dir)?;
    let (triples, platform_package) = platform()?;
    let vendor = platform_vendor_dir(bin_dir, platform_package)
        .into_iter()
        .chain([package_root.join("vendor")]);
    for vendor in vendor {
        for triple in triples {
            let binary = vendor.join(triple).join("bin").join("codex");
            if is_executable(&binary) {
                return Some(NativeCodex {
                    binary,
                    package_root,
                    managed_by,
                });
            }
        }
    }
    None
}

fn is_launcher_package(root: &Path) -> bool {
    std::fs::read(root.join("package.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|manifest| manifest["name"] == LAUNCHER_PACKAGE)
}

/// The target triples to look for, best first, and the platform package
/// that brings them. The launcher asks for the musl build on Linux; a gnu
/// one is taken too, should a package ever ship it instead.
fn platform() -> Option<(&'static [&'static str], &'static str)> {
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        Some((
            &["x86_64-unknown-linux-musl", "x86_64-unknown-linux-gnu"],
            "@openai/codex-linux-x64",
        ))
    } else if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
        Some((
            &["aarch64-unknown-linux-musl", "aarch64-unknown-linux-gnu"],
            "@openai/codex-linux-arm64",
        ))
    } else if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        Some((&["aarch64-apple-darwin"], "@openai/codex-darwin-arm64"))
    } else if cfg!(all(target_os = "macos", target_arch = "x86_64")) {
        Some((&["x86_64-apple-darwin"], "@openai/codex-darwin-x64"))
    } else {
        None
    }
}

/// Where Node's `require.resolve` finds the platform package from the
/// launcher's folder: `node_modules` in each ancestor, nearest first (a
/// folder itself named `node_modules` gets none appended).
fn platform_vendor_dir(bin_dir: &Path, platform_package: &str) -> Option<PathBuf> {
    bin_dir
        .ancestors()
        .filter(|dir| dir.file_name().is_none_or(|name| name != "node_modules"))
        .map(|dir| dir.join("node_modules").join(platform_package))
        .find(|package| package.join("package.json").is_file())
        .map(|package| package.join("vendor"))
}

/// The manager variable the launcher would set, by its own signs; `None`
/// for a Vite+ install, whose ownership record we do not read (the
/// launcher is used then).
fn package_manager(package_root: &Path, bin_dir: &Path) -> Option<&'static str> {
    for dir in package_root.ancestors() {
        if dir.file_name().is_some_and(|name| name == "packages")
            && dir.join("@openai").join("codex.json").exists()
        {
            return None;
        }
        let node_modules = dir.join("node_modules");
        if node_modules.join(".modules.yaml").exists()
            && node_modules
                .join("@openai")
                .join("codex")
                .canonicalize()
                .is_ok_and(|root| root == package_root)
        {
            return Some("CODEX_MANAGED_BY_PNPM");
        }
    }
    let env_says_bun = |name: &str| {
        std::env::var_os(name)
            .map(OsString::into_string)
            .and_then(Result::ok)
            .is_some_and(|value| value.contains("bun"))
    };
    let in_bun_global = bin_dir.to_string_lossy().contains(".bun/install/global");
    if env_says_bun("npm_config_user_agent") || env_says_bun("npm_execpath") || in_bun_global {
        return Some("CODEX_MANAGED_BY_BUN");
    }
    Some("CODEX_MANAGED_BY_NPM")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both pinned installs, laid out by npm as users get them.
    fn pinned_launchers() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        ["codex-cli", "codex-cli-newest"]
            .iter()
            .map(|pin| root.join(pin).join("node_modules/.bin/codex"))
            .collect()
    }

    #[test]
    fn finds_the_vendored_binary_of_both_pinned_installs() {
        for launcher in pinned_launchers() {
            let native = resolve(&launcher).unwrap_or_else(|| panic!("{launcher:?}"));
            assert!(native.binary.is_absolute(), "{native:?}");
            assert!(
                native.binary.ends_with("bin/codex")
                    && native.binary.to_string_lossy().contains("/vendor/"),
                "{native:?}"
            );
            assert!(
                native.package_root.ends_with("node_modules/@openai/codex"),
                "{native:?}"
            );
            assert_eq!(native.managed_by, "CODEX_MANAGED_BY_NPM");
        }
    }

    #[tokio::test]
    async fn the_native_binary_reports_the_launchers_version() {
        for launcher in pinned_launchers() {
            let native = resolve(&launcher).unwrap();
            let direct = crate::codex_bin::probe_version(&native.binary)
                .await
                .unwrap();
            let through_node = crate::codex_bin::probe_version(&launcher).await.unwrap();
            assert_eq!(direct, through_node, "{launcher:?}");
        }
    }

    #[test]
    fn anything_but_the_launcher_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("codex");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert_eq!(resolve(&script), None);
        // The right name in a package that is not Codex's.
        let bin = dir.path().join("other/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("codex.js"), "").unwrap();
        std::fs::write(dir.path().join("other/package.json"), r#"{"name":"other"}"#).unwrap();
        assert_eq!(resolve(&bin.join("codex.js")), None);
        assert_eq!(resolve(&dir.path().join("missing")), None);
    }

    #[test]
    fn a_launcher_without_its_platform_binary_is_not_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("node_modules/@openai/codex");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/codex.js"), "").unwrap();
        std::fs::write(root.join("package.json"), r#"{"name":"@openai/codex"}"#).unwrap();
        assert_eq!(resolve(&root.join("bin/codex.js")), None);
    }

    /// The app-server, asked for through the launcher, is the native binary
    /// itself with the launcher's environment, the leader of its own process
    /// group (so stopping the group stops Codex). Through Node (20 here, no
    /// `process.execve`) the group's leader would be `node`.
    #[tokio::test]
    async fn an_app_server_asked_for_through_the_launcher_runs_natively() {
        use crate::appserver::{AppServerProcess, SpawnOptions};
        use crate::process_table::Backend;
        let launcher = &pinned_launchers()[0];
        let native = resolve(launcher).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut options = SpawnOptions::loopback(launcher.clone(), dir.path().join("token"));
        options.codex_home = Some(dir.path().to_path_buf());
        let server = AppServerProcess::spawn(options).await.unwrap();
        let leader = u32::try_from(server.pgid()).unwrap();
        let exe = Backend::current().executable(leader);
        let environ = Backend::current().environment(leader);
        server.shutdown().await.unwrap();
        assert_eq!(exe.unwrap(), native.binary.canonicalize().unwrap());
        let environ = environ.unwrap();
        let root = format!("{PACKAGE_ROOT_ENV}={}", native.package_root.display());
        assert!(environ.iter().any(|var| *var == *root), "{root}");
        assert!(environ.iter().any(|var| var == "CODEX_MANAGED_BY_NPM=1"));
    }
}
