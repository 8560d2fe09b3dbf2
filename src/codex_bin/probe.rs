//! Asking a Codex binary its version, and remembering the answer: through
//! the npm launcher Node costs most of a first call, so the native binary
//! behind it is asked instead, and its answer kept until it changes.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use semver::Version;

use super::CodexBinError;
use crate::codex_native::NativeCodex;

/// `codex --version` only prints a line, but the npm launcher starts Node
/// first; on a loaded 2-core machine that can take a few seconds.
pub(super) const VERSION_PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `codex --version` and parses `codex-cli X.Y.Z`.
pub async fn probe_version(path: &Path) -> Result<Version, CodexBinError> {
    probe(path, None).await
}

/// [`probe_version`], for a native binary with the environment its
/// launcher would give it.
pub(crate) async fn probe(
    path: &Path,
    native: Option<&NativeCodex>,
) -> Result<Version, CodexBinError> {
    let mut command = tokio::process::Command::new(path);
    if let Some(native) = native {
        native.apply_env(&mut command);
    }
    command
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(VERSION_PROBE_TIMEOUT, command.output())
        .await
        .map_err(|_| CodexBinError::ProbeTimedOut {
            path: path.to_path_buf(),
        })?
        .map_err(|source| CodexBinError::NotRunnable {
            path: path.to_path_buf(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_version(&stdout).ok_or_else(|| CodexBinError::UnrecognisedVersion {
        path: path.to_path_buf(),
        output: stdout.trim().to_string(),
    })
}

/// Parses the first line of `codex --version`, e.g. `codex-cli 0.169.0`.
pub fn parse_version(output: &str) -> Option<Version> {
    let line = output.lines().next()?.trim();
    let number = line.strip_prefix("codex-cli")?.trim();
    Version::parse(number).ok()
}

/// The version of the binary at `path`: remembered, or asked and then
/// remembered. The cache is keyed by the binary that answers (the native
/// one behind a launcher), since that is what an upgrade replaces.
pub(super) async fn remembered_version(
    path: &Path,
    cache_dir: &Path,
) -> Result<Version, CodexBinError> {
    let (launcher, cache_dir) = (path.to_path_buf(), cache_dir.to_path_buf());
    // A few `stat`s and one small read, off the runtime's workers.
    let looked_up = tokio::task::spawn_blocking(move || {
        let native = crate::codex_native::resolve(&launcher);
        let answering = native
            .as_ref()
            .map_or(launcher.as_path(), |native| &native.binary);
        let stamp = crate::version_cache::BinaryStamp::of(answering);
        let cache = crate::version_cache::VersionCache::in_dir(&cache_dir);
        let known = stamp.as_ref().and_then(|stamp| cache.get(stamp));
        (native, stamp, cache, known)
    })
    .await;
    // The lookup only panics on a bug; asking the binary is always right.
    let Ok((native, stamp, cache, known)) = looked_up else {
        return probe_version(path).await;
    };
    if let Some(version) = known {
        return Ok(version);
    }
    let version = match &native {
        Some(native) => probe(&native.binary, Some(native)).await?,
        None => probe_version(path).await?,
    };
    if let Some(stamp) = stamp {
        let remembered = version.clone();
        // Written while the caller goes on; losing it costs one probe.
        tokio::task::spawn_blocking(move || cache.put(&stamp, &remembered));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::codex_bin::SUPPORTED_VERSIONS;

    #[test]
    fn parses_release_and_prerelease_versions() {
        assert_eq!(
            parse_version("codex-cli 0.169.0\n"),
            Some(Version::new(0, 169, 0))
        );
        let pre = parse_version("codex-cli 0.170.0-alpha.2").unwrap();
        assert!(pre > SUPPORTED_VERSIONS.oldest);
        assert_eq!(parse_version("codex 0.169.0"), None);
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("codex-cli banana"), None);
    }

    /// A `codex` that logs every `--version` it answers, as a user's own
    /// wrapper script would run.
    fn counting_codex(dir: &Path, version: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let log = dir.join("probes.log");
        let script = dir.join("codex");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$@\" >> '{}'\necho 'codex-cli {version}'\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (script, log)
    }

    fn probes(log: &Path) -> usize {
        std::fs::read_to_string(log).map_or(0, |text| text.lines().count())
    }

    /// How long the cache write behind a probe may take on a loaded
    /// machine before the test gives up on it (it takes microseconds).
    const CACHE_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

    /// Waits until the write behind the caller has remembered `version`, so
    /// that the next step does not race it.
    async fn written(pointer: &Path, version: &str) {
        let deadline = std::time::Instant::now() + CACHE_WRITE_WAIT;
        let file = pointer.join(crate::version_cache::FILE_NAME);
        let quoted = format!("\"{version}\"");
        while !std::fs::read_to_string(&file).is_ok_and(|text| text.contains(&quoted)) {
            assert!(
                std::time::Instant::now() < deadline,
                "{} was not written",
                file.display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_remembered_binary_is_not_asked_again_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let pointer = dir.path().join("pointer");
        let (codex, log) = counting_codex(dir.path(), "0.169.0");
        let remembered = |path: PathBuf| {
            let pointer = pointer.clone();
            async move { remembered_version(&path, &pointer).await.unwrap() }
        };

        assert_eq!(remembered(codex.clone()).await, Version::new(0, 169, 0));
        assert_eq!(probes(&log), 1);
        written(&pointer, "0.169.0").await;
        assert_eq!(remembered(codex.clone()).await, Version::new(0, 169, 0));
        assert_eq!(probes(&log), 1, "a hit runs nothing");

        // Upgraded in place: asked again, and the new version is the answer.
        counting_codex(dir.path(), "0.171.0-alpha.1");
        assert_eq!(
            remembered(codex.clone()).await,
            Version::parse("0.171.0-alpha.1").unwrap()
        );
        assert_eq!(probes(&log), 2);
        written(&pointer, "0.171.0-alpha.1").await;

        // A corrupt cache is asked past, never an error.
        std::fs::write(
            pointer.join(crate::version_cache::FILE_NAME),
            "{\"format\":",
        )
        .unwrap();
        assert_eq!(
            remembered(codex.clone()).await,
            Version::parse("0.171.0-alpha.1").unwrap()
        );
        assert_eq!(probes(&log), 3);
    }
}
