//! Is this setup healthy? The Codex binary, its home, where the audit and the
//! pointer index go, and the app-server. Reads and probes only: a check
//! writes nothing.

use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, access};
use serde::Serialize;

use crate::actors::news::News;
use crate::appserver::account::{self, LoginHealth};
use crate::appserver::remote_tls::remote_connect_options;
use crate::appserver::shared::SharedPaths;
use crate::appserver::version::{ServerVersion, user_agent_version};
use crate::appserver::{AppServerConnection, CapabilityToken, ConnectOptions, ConnectionError};
use crate::codex_bin::{CodexBinary, NoUsableCodex, SUPPORTED_VERSIONS, VersionStanding};
use crate::config::{AppServerMode, Config};
use crate::protocol::limits::CompactRateLimits;
use crate::text::cut_within;

/// Each connection warning in the check is at most this many characters
/// (the `…` of a cut included), as a run's warnings are in its result; the
/// whole is in the logs.
const CODEX_WARNING_CHARS: usize = 160;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub ok: bool,
    pub codex_version: Option<String>,
    /// Where that version sits against the verified range.
    pub codex_support: CodexSupport,
    pub app_server: AppServerHealth,
    /// Whether Codex is logged in, or needs no login.
    pub login: LoginHealth,
    pub defaults: Defaults,
    /// Each says what is wrong and what to do; empty when `ok`.
    pub problems: Vec<String>,
    /// What works but is worth knowing: a Codex newer than verified, an
    /// app-server on another Codex than the CLI. They leave `ok` alone.
    pub warnings: Vec<String>,
    /// The named endpoints of `endpoints.toml` (a problem with the file is
    /// in `problems`).
    pub endpoints: Vec<EndpointHealth>,
    /// The account's rate-limit windows as Codex last reported them on this
    /// sidecar's connection (a run's model response brings them); absent
    /// before Codex reported any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<CompactRateLimits>,
    /// What Codex warned about the whole connection (`configWarning`, a
    /// `warning` naming no thread), the recent few, each cut.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codex_warnings: Vec<String>,
}

/// One named endpoint as the check shows it: never a secret, nor the path
/// of the file that holds one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealth {
    pub name: String,
    pub url: String,
    /// `capability-token`, `signed-bearer-token` or `none`.
    pub auth: &'static str,
}

impl Health {
    /// Adds what only a running engine knows (an actor of its that died).
    pub fn add_problems(&mut self, problems: impl IntoIterator<Item = String>) {
        self.problems.extend(problems);
        self.ok = self.problems.is_empty();
    }

    /// Adds what the engine heard from Codex about the account and the
    /// connection.
    pub fn add_news(&mut self, news: News) {
        if !news.rate_limits.is_empty() {
            self.rate_limits = Some(news.rate_limits.compact());
        }
        self.codex_warnings = news
            .warnings
            .iter()
            .map(|warning| cut_within(warning, CODEX_WARNING_CHARS))
            .collect();
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CodexSupport {
    pub oldest_verified: String,
    pub newest_verified: String,
    /// `inRange`, `newerThanVerified` (used, and a warning) or `tooOld`
    /// (refused: a problem); absent when no Codex answered with a version.
    pub standing: Option<VersionStanding>,
    /// The same, in a sentence.
    pub summary: String,
}

impl CodexSupport {
    fn of(codex: &Result<CodexBinary, NoUsableCodex>) -> CodexSupport {
        let found = match codex {
            Ok(codex) => Some(&codex.version),
            Err(error) => error.too_old.as_ref(),
        };
        let (standing, summary) = match found {
            Some(version) => (
                Some(SUPPORTED_VERSIONS.standing(version)),
                SUPPORTED_VERSIONS.describe(version),
            ),
            None => (
                None,
                format!(
                    "no usable Codex CLI (see problems); supported: {SUPPORTED_VERSIONS}, or newer"
                ),
            ),
        };
        CodexSupport {
            oldest_verified: SUPPORTED_VERSIONS.oldest.to_string(),
            newest_verified: SUPPORTED_VERSIONS.newest.to_string(),
            standing,
            summary,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppServerHealth {
    pub mode: &'static str,
    /// Shared, unix or remote: a server answers `initialize` now (remote:
    /// through its TLS and auth). Private: one can be started
    /// (there is a Codex binary), since each sidecar starts its own.
    pub reachable: bool,
    /// Shared or unix, when it answers: the Codex it runs (from `userAgent`).
    pub version: Option<String>,
    /// False when that is another release than the CLI found (the sentence
    /// is in `warnings`); absent when either is unknown.
    pub version_matches: Option<bool>,
    /// Remote: which endpoint and where (never its secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteHealth>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteHealth {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Defaults {
    pub timeout_ms: u64,
    /// 0: waits block until the run ends.
    pub soft_timeout_ms: u64,
    pub permissions: &'static str,
}

/// Checks everything; `cwd` is where runs go by default.
pub async fn check(
    config: &Config,
    codex: &Result<CodexBinary, NoUsableCodex>,
    cwd: &Path,
) -> Health {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    // Not fatal at start-up (the default applies), but wrong all the same.
    problems.extend(config.approvals_refused.iter().map(|refused| {
        format!("{refused}; using the default: person when the client can show forms")
    }));
    let codex_support = CodexSupport::of(codex);
    if codex_support.standing == Some(VersionStanding::NewerThanVerified) {
        warnings.push(codex_support.summary.clone());
    }
    let codex_version = match codex {
        Ok(codex) => Some(codex.version.to_string()),
        Err(error) => {
            problems.push(error.message.clone());
            None
        }
    };
    if !config.codex_home.is_dir() {
        problems.push(format!(
            "the Codex home {} does not exist; run `codex` once or set CODEX_HOME",
            config.codex_home.display()
        ));
    }
    for (what, path) in [
        ("the run directory", config.run_dir(cwd)),
        ("the pointer index", config.pointer_index()),
    ] {
        if let Err(problem) = writable(&path) {
            problems.push(format!(
                "{what} {} cannot be written: {problem}",
                path.display()
            ));
        }
    }
    let mut remote = None;
    let (mode, reachable, server_agent) = match &config.app_server {
        AppServerMode::Private => ("private", codex.is_ok(), None),
        AppServerMode::Shared { url } => {
            let agent = probe_shared(config, url, &mut problems).await;
            (
                "shared",
                agent.is_some(),
                agent.map(|agent| (url.clone(), agent)),
            )
        }
        AppServerMode::Unix { path } => {
            let reachable = tokio::net::UnixStream::connect(path).await.is_ok();
            if !reachable {
                problems.push(format!(
                    "nothing answers on {}; start that app-server (e.g. `codex app-server daemon start`)",
                    path.display()
                ));
            }
            let url = format!("unix://{}", path.display());
            let agent = if reachable {
                user_agent(ConnectOptions::new(&url, None)).await
            } else {
                None
            };
            ("unix", reachable, agent.map(|agent| (url, agent)))
        }
        AppServerMode::Remote(endpoint) => {
            remote = Some(RemoteHealth {
                name: endpoint.name.clone(),
                url: endpoint.url.clone(),
            });
            let agent = probe_remote(endpoint, &mut problems).await;
            (
                "remote",
                agent.is_some(),
                agent.map(|agent| (endpoint.url.clone(), agent)),
            )
        }
    };
    let (mut version, mut version_matches) = (None, None);
    if let Some((url, agent)) = &server_agent {
        version = agent
            .as_deref()
            .and_then(user_agent_version)
            .map(|v| v.to_string());
        if let Ok(codex) = codex {
            let compared = ServerVersion::compare(agent.as_deref(), &codex.version);
            if compared.server().is_some() {
                version_matches = Some(matches!(compared, ServerVersion::Matches(_)));
            }
            warnings.extend(compared.mismatch(url, mode == "shared"));
        }
    }
    let login = account::check(config, codex.as_ref().ok(), &mut problems).await;
    problems.extend(config.endpoints.problem.iter().map(ToString::to_string));
    let endpoints = config
        .endpoints
        .list
        .iter()
        .map(|endpoint| EndpointHealth {
            name: endpoint.name.clone(),
            url: endpoint.url.clone(),
            auth: crate::config::endpoints::auth_kind(&endpoint.auth),
        })
        .collect();
    Health {
        endpoints,
        ok: problems.is_empty(),
        codex_version,
        codex_support,
        app_server: AppServerHealth {
            mode,
            reachable,
            version,
            version_matches,
            remote,
        },
        login,
        defaults: Defaults {
            timeout_ms: millis(config.run_timeout),
            soft_timeout_ms: config.wait_soft_timeout.map(millis).unwrap_or(0),
            permissions: config.default_permissions.as_str(),
        },
        problems,
        warnings,
        rate_limits: None,
        codex_warnings: Vec::new(),
    }
}

/// A shared server that is not running is fine (the first run starts it);
/// one that refuses our token, or a port held by something else, is not.
/// `Some` (holding its `userAgent`) when one answers.
async fn probe_shared(
    config: &Config,
    url: &str,
    problems: &mut Vec<String>,
) -> Option<Option<String>> {
    let token = std::fs::read_to_string(SharedPaths::new(&config.pointer_dir).token())
        .ok()
        .map(CapabilityToken::from_secret);
    match AppServerConnection::connect(ConnectOptions::new(url, token)).await {
        Ok((connection, _events)) => {
            let agent = connection.server_info().user_agent.clone();
            connection.close().await;
            Some(agent)
        }
        Err(ConnectionError::Connect { .. }) => None,
        Err(error) => {
            problems.push(error.to_string());
            None
        }
    }
}

/// A remote server must answer, through its TLS and with our bearer: every
/// failure is a problem, and names the setting to fix. `Some` (holding its
/// `userAgent`) when it answers.
async fn probe_remote(
    endpoint: &crate::config::RemoteEndpoint,
    problems: &mut Vec<String>,
) -> Option<Option<String>> {
    let connected = match remote_connect_options(endpoint).await {
        Ok(options) => AppServerConnection::connect(options)
            .await
            .map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    };
    match connected {
        Ok((connection, _events)) => {
            let agent = connection.server_info().user_agent.clone();
            connection.close().await;
            Some(agent)
        }
        Err(error) => {
            problems.push(format!("the remote app-server does not answer: {error}"));
            None
        }
    }
}

/// The `userAgent` of a server that answers `initialize`; `None` otherwise
/// (whether it answers at all is checked apart).
async fn user_agent(options: ConnectOptions) -> Option<Option<String>> {
    let (connection, _events) = AppServerConnection::connect(options).await.ok()?;
    let agent = connection.server_info().user_agent.clone();
    connection.close().await;
    Some(agent)
}

/// Whether `path` (or, while it does not exist, its nearest existing
/// ancestor, where it would be created) may be written.
fn writable(path: &Path) -> Result<(), String> {
    let mut existing: PathBuf = path.to_path_buf();
    while !existing.exists() {
        match existing.parent() {
            Some(parent) => existing = parent.to_path_buf(),
            None => return Err("no existing parent directory".to_string()),
        }
    }
    let dir = if existing.is_dir() {
        existing
    } else {
        existing.parent().map(Path::to_path_buf).unwrap_or(existing)
    };
    access(&dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|errno| errno.desc().to_string())
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
