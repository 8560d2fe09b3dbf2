//! Which Codex an app-server runs, and whether it is the Codex we found.
//!
//! A server outlives the CLI that started it: the shared server of ours runs
//! on until idle, and Codex's own daemon is known to survive CLI updates and
//! keep serving the old version. The server says its version in the
//! `userAgent` of its `initialize` result; this module reads it, compares it
//! with the CLI's, and decides whether a shared server of ours is replaced
//! (older than the CLI, and no turn runs on it).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use semver::Version;

use super::connection::ConnectOptions;
use super::keeper::{StopOutcome, TurnProbe, stop_keeper_locked};
use super::shared_files::{SharedError, SharedOptions, SharedPaths};
use super::token::CapabilityToken;
use crate::process_table::Backend;

/// The version in an `initialize` result's `userAgent`. Codex 0.169.0 and
/// 0.171.0 send `ORIGINATOR/VERSION (OS; ARCH) TERMINAL (CLIENT; CLIENT_VERSION)`
/// (the originator is our own client name); the version is what follows the
/// first `/`. Anything else: the first word that parses as a version, so a
/// reshuffled string still yields it. `None` when there is none.
pub fn user_agent_version(user_agent: &str) -> Option<Version> {
    let first = user_agent.split_whitespace().next()?;
    if let Some((_, version)) = first.split_once('/')
        && let Ok(version) = Version::parse(version)
    {
        return Some(version);
    }
    user_agent
        .split(|c: char| c.is_whitespace() || matches!(c, '/' | '(' | ')' | ';' | ','))
        .find_map(|word| Version::parse(word.trim_start_matches('v')).ok())
}

/// The app-server's version against the CLI the sidecar found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVersion {
    /// The same release (pre-release and build tags aside).
    Matches(Version),
    /// The server runs an older Codex than the CLI: started before an update.
    Older { server: Version, cli: Version },
    /// The server runs a newer Codex than the CLI.
    Newer { server: Version, cli: Version },
    /// The server sent no version we could read.
    Unknown { user_agent: Option<String> },
}

impl ServerVersion {
    pub fn compare(user_agent: Option<&str>, cli: &Version) -> ServerVersion {
        let Some(server) = user_agent.and_then(user_agent_version) else {
            return ServerVersion::Unknown {
                user_agent: user_agent.map(str::to_string),
            };
        };
        let release = |v: &Version| (v.major, v.minor, v.patch);
        match release(&server).cmp(&release(cli)) {
            Ordering::Equal => ServerVersion::Matches(server),
            Ordering::Less => ServerVersion::Older {
                server,
                cli: cli.clone(),
            },
            Ordering::Greater => ServerVersion::Newer {
                server,
                cli: cli.clone(),
            },
        }
    }

    /// The server's version, when it said one.
    pub fn server(&self) -> Option<&Version> {
        match self {
            ServerVersion::Matches(server)
            | ServerVersion::Older { server, .. }
            | ServerVersion::Newer { server, .. } => Some(server),
            ServerVersion::Unknown { .. } => None,
        }
    }

    /// A sentence for `codex_wrapper_check` when the versions differ; `None`
    /// when they match or the server did not say. `ours` says whether the
    /// server is our shared one (replaced once idle) or someone else's.
    pub fn mismatch(&self, url: &str, ours: bool) -> Option<String> {
        let remedy = if ours {
            "the next sidecar to connect while no turn runs on it restarts it on the CLI's version \
             (or run `codex-mcp-sidecar app-server stop` now)"
        } else {
            "restart that app-server (for Codex's own daemon: `codex app-server daemon stop`, then start) \
             so that it runs the Codex you have"
        };
        match self {
            ServerVersion::Older { server, cli } => Some(format!(
                "the app-server at {url} runs Codex {server}, older than the Codex CLI found ({cli}); {remedy}"
            )),
            ServerVersion::Newer { server, cli } => Some(format!(
                "the app-server at {url} runs Codex {server}, newer than the Codex CLI found ({cli}); \
                 point CODEX_BIN at the Codex that started it, or upgrade the CLI"
            )),
            ServerVersion::Matches(_) | ServerVersion::Unknown { .. } => None,
        }
    }
}

/// Stops the running shared server at `options.url` when it must make way
/// for one on the CLI's version: it runs an older Codex than
/// `options.cli_version`, and no turn runs on it (a running turn is never cut
/// short; a later ensure looks again). Called by `ensure_shared` with the
/// launch lock held, so no sidecar takes a new lease meanwhile; one that holds
/// a lease already loses its connection, as on any restart, and its next
/// request finds the new server. True when it stopped the server.
pub(crate) async fn stop_if_outdated(
    options: &SharedOptions,
    paths: &SharedPaths,
    user_agent: Option<&str>,
) -> Result<bool, SharedError> {
    let Some(cli) = &options.cli_version else {
        return Ok(false);
    };
    let ServerVersion::Older { server, cli } = ServerVersion::compare(user_agent, cli) else {
        return Ok(false);
    };
    let url = &options.url;
    let restarted_for = restarted_for_path(paths);
    if already_restarted_for(&restarted_for, &server, &cli) {
        // A restart did not bring the CLI's version: its `--version` and
        // the server it starts disagree (a wrapper script, say). Restarting
        // on every ensure would only cut other sidecars' connections.
        tracing::warn!(%url, %server, %cli, "the shared app-server still runs an older Codex than the CLI after a restart; leaving it");
        return Ok(false);
    }
    let token = std::fs::read_to_string(paths.token())
        .ok()
        .map(CapabilityToken::from_secret);
    let mut probe = TurnProbe::with_options(ConnectOptions::new(url, token));
    let busy = probe.any_turn_running().await;
    probe.close().await;
    if busy {
        tracing::info!(%url, %server, %cli, "the shared app-server runs an older Codex than the CLI, but a turn runs on it: it stays for now");
        return Ok(false);
    }
    tracing::info!(%url, %server, %cli, "the shared app-server runs an older Codex than the CLI and is idle: restarting it");
    if let Err(error) = std::fs::write(&restarted_for, restart_record(&server, &cli)) {
        tracing::warn!(%error, path = %restarted_for.display(), "could not record the restart");
    }
    let stopped = stop_keeper_locked(Backend::current(), paths)
        .await
        .map_err(|error| SharedError::StopOutdated {
            url: url.clone(),
            server: server.clone(),
            message: error.to_string(),
        })?;
    if stopped == StopOutcome::NotRunning {
        // No keeper's record: not a server we can stop (its port would stay
        // taken), so keep using it.
        tracing::warn!(%url, "no keeper state for the outdated shared app-server; leaving it");
        return Ok(false);
    }
    Ok(true)
}

/// Remembers the last restart for an outdated server (which versions), so
/// that one that comes back just as old is not restarted again and again.
fn restarted_for_path(paths: &SharedPaths) -> PathBuf {
    paths.dir.join("app-server.restarted-for")
}

fn restart_record(server: &Version, cli: &Version) -> String {
    format!("server {server} cli {cli}\n")
}

/// Whether the last restart was for this very pair of versions. A missing
/// or unreadable record means no.
fn already_restarted_for(path: &Path, server: &Version, cli: &Version) -> bool {
    std::fs::read_to_string(path).is_ok_and(|record| record == restart_record(server, cli))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_of_the_user_agents_codex_sends() {
        let v = |text: &str| Some(Version::parse(text).unwrap());
        // What 0.169.0 and 0.171.0 answered to clientInfo {probe, 0}.
        for (agent, version) in [
            (
                "probe/0.169.0 (Debian 12.0.0; x86_64) xterm (probe; 0)",
                v("0.169.0"),
            ),
            (
                "codex-mcp-sidecar/0.171.0 (Debian 12.0.0; x86_64) xterm (codex-mcp-sidecar; 0.1.0)",
                v("0.171.0"),
            ),
            (
                "codex_cli_rs/0.172.0-alpha.3 (Mac OS 15.1.0; arm64)",
                v("0.172.0-alpha.3"),
            ),
            // Reshuffled or bare: the first word that is a version.
            ("Codex v0.180.1 on linux", v("0.180.1")),
            ("0.200.0", v("0.200.0")),
            ("codex/unknown (Linux)", None),
            ("", None),
        ] {
            assert_eq!(user_agent_version(agent), version, "{agent}");
        }
    }

    #[test]
    fn a_restart_is_remembered_for_its_pair_of_versions_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = restarted_for_path(&SharedPaths::new(dir.path()));
        let (old, new, newer) = (
            Version::new(0, 169, 0),
            Version::new(0, 171, 0),
            Version::new(0, 172, 0),
        );
        assert!(!already_restarted_for(&path, &old, &new));
        std::fs::write(&path, restart_record(&old, &new)).unwrap();
        assert!(already_restarted_for(&path, &old, &new));
        // Another update since: worth one more restart.
        assert!(!already_restarted_for(&path, &old, &newer));
        assert!(!already_restarted_for(&path, &new, &newer));
    }

    #[test]
    fn compares_the_servers_release_with_the_clis() {
        let cli = Version::new(0, 171, 0);
        let old = ServerVersion::compare(Some("x/0.169.0 (Linux)"), &cli);
        assert_eq!(
            old,
            ServerVersion::Older {
                server: Version::new(0, 169, 0),
                cli: cli.clone()
            }
        );
        let said = old.mismatch("ws://127.0.0.1:1", true).unwrap();
        assert!(
            said.contains("runs Codex 0.169.0, older than the Codex CLI found (0.171.0)"),
            "{said}"
        );
        assert!(said.contains("restarts it"), "{said}");
        let theirs = old.mismatch("unix:///s", false).unwrap();
        assert!(theirs.contains("daemon stop"), "{theirs}");
        assert!(matches!(
            ServerVersion::compare(Some("x/0.172.0 (Linux)"), &cli),
            ServerVersion::Newer { .. }
        ));
        let same = ServerVersion::compare(Some("x/0.171.0-alpha.1 (Linux)"), &cli);
        assert!(matches!(same, ServerVersion::Matches(_)));
        assert_eq!(same.mismatch("u", true), None);
        let unknown = ServerVersion::compare(None, &cli);
        assert_eq!(unknown.server(), None);
        assert_eq!(unknown.mismatch("u", true), None);
    }
}
