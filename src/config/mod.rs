//! Settings read from the environment once, at start-up. Every variable is
//! named here, with its default; `from_lookup` takes the environment as a
//! function so that tests never touch the process environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod endpoints;
pub mod remote;

use crate::protocol::{ApprovalPolicy, SandboxMode};
use crate::shell_path::{PathRefusal, RefusedPath, absolute_part, absolute_setting};
pub use remote::{DEFAULT_ENDPOINT, RemoteAuth, RemoteEndpoint};

/// The shared app-server's address when none is configured. One per user:
/// every sidecar of that user connects to it.
pub const DEFAULT_SHARED_URL: &str = "ws://127.0.0.1:45123";

/// A wait that returns `still_running` after this long stays under the
/// MCP clients' tool timeouts (Claude Code's default is several minutes).
pub const DEFAULT_WAIT_SOFT_TIMEOUT: Duration = Duration::from_millis(240_000);

/// A run that takes longer is interrupted and ends `timed_out`.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_millis(30 * 60 * 1000);

/// A shared app-server with no client and no running turn exits after this
/// long, so nothing lingers for days; long enough that a person pausing
/// between two runs does not pay for a restart.
pub const DEFAULT_SHARED_IDLE_EXIT: Duration = Duration::from_secs(10 * 60);

/// How long a run waits for a remote app-server to come back after its
/// connection dropped, before it fails. A network blip, a proxy restart or
/// a tunnel re-established is seconds; a minute rides those out, and a
/// server that stays away longer is down, which the caller should hear.
pub const DEFAULT_REMOTE_RECONNECT_WINDOW: Duration = Duration::from_secs(60);

/// [`DEFAULT_REMOTE_RECONNECT_WINDOW`] in milliseconds, for tests (a server
/// that stays away fails the run sooner) and for a network known to need
/// longer.
pub const ENV_REMOTE_RECONNECT_MS: &str = "CODEX_MCP_WRAPPER_REMOTE_RECONNECT_MS";

pub const ENV_MODE: &str = "CODEX_MCP_WRAPPER_APP_SERVER_MODE";
pub const ENV_URL: &str = "CODEX_MCP_WRAPPER_APP_SERVER_URL";
/// Older name of [`ENV_URL`].
pub const ENV_LISTEN: &str = "CODEX_MCP_WRAPPER_APP_SERVER_LISTEN";
pub const ENV_IDLE_EXIT_MS: &str = "CODEX_MCP_WRAPPER_APP_SERVER_IDLE_MS";
pub const ENV_RUN_DIR: &str = "CODEX_MCP_WRAPPER_RUN_DIR";
pub const ENV_POINTER_DIR: &str = "CODEX_MCP_WRAPPER_POINTER_DIR";
pub const ENV_CODEX_HOME: &str = "CODEX_MCP_WRAPPER_CODEX_HOME";
pub const ENV_SOFT_TIMEOUT_MS: &str = "CODEX_MCP_WRAPPER_WAIT_SOFT_TIMEOUT_MS";
pub const ENV_TIMEOUT_MS: &str = "CODEX_MCP_WRAPPER_TIMEOUT_MS";
pub const ENV_DEFAULT_PERMISSIONS: &str = "CODEX_MCP_WRAPPER_DEFAULT_PERMISSIONS";
pub const ENV_ORIGIN: &str = "CODEX_PERSISTENT_MCP_ORIGIN";
pub const ENV_MAX_RESULT_CHARS: &str = "CODEX_MCP_WRAPPER_MAX_RESULT_CHARS";
pub const ENV_TOOLS: &str = "CODEX_MCP_WRAPPER_TOOLS";
pub const ENV_MAX_RUNS: &str = "CODEX_MCP_WRAPPER_MAX_RUNS";
/// `RUST_LOG` for an app-server the sidecar starts: its lines land in the
/// stderr log of the runs active at the time.
pub const ENV_APP_SERVER_LOG: &str = "CODEX_MCP_WRAPPER_APP_SERVER_LOG";
/// Off by default: some Claude Code builds drop the connection on a progress
/// token they no longer track.
pub const ENV_PROGRESS: &str = "CODEX_MCP_WRAPPER_PROGRESS";
/// Who answers Codex's requests in a run whose approval policy asks.
pub const ENV_APPROVALS: &str = "CODEX_MCP_WRAPPER_APPROVALS";

/// Who answers Codex's requests (commands, file changes, questions) in a run
/// whose approval policy asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Approvals {
    /// The person when the client declared the elicitation capability, the
    /// caller otherwise.
    #[default]
    Auto,
    /// The person at the MCP client, through an elicitation form; what they
    /// dismiss goes to the caller.
    Person,
    /// The calling model, through `codex_approve`.
    Caller,
}

impl Approvals {
    /// Whether the person is asked, for a client that can (or cannot)
    /// show an elicitation form.
    pub fn asks_person(self, client_elicits: bool) -> bool {
        match self {
            Approvals::Auto => client_elicits,
            Approvals::Person => true,
            Approvals::Caller => false,
        }
    }
}

/// Which tool families the MCP server lists: `sidecar` (codex_run, wait and
/// friends), `persistent` (codex_chat, plan, review), `legacy` (`codex`,
/// `codex-reply`, as Codex's removed built-in server had them) and
/// `aliases` (`codex_guard_plan`, `codex_guard_final`, codex-persistent-mcp's
/// names). `sidecar,persistent` unless CODEX_MCP_WRAPPER_TOOLS names some:
/// every tool listed costs every client's model its schema in every session,
/// so the two families kept for old configurations are asked for by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ToolFamilies {
    pub sidecar: bool,
    pub persistent: bool,
    pub legacy: bool,
    pub aliases: bool,
}

impl ToolFamilies {
    /// What is listed when CODEX_MCP_WRAPPER_TOOLS is unset.
    pub const DEFAULT: ToolFamilies = ToolFamilies {
        sidecar: true,
        persistent: true,
        legacy: false,
        aliases: false,
    };

    pub const ALL: ToolFamilies = ToolFamilies {
        sidecar: true,
        persistent: true,
        legacy: true,
        aliases: true,
    };

    /// `sidecar,persistent,legacy,aliases`, any of them, in any order.
    pub fn parse(value: &str) -> Option<ToolFamilies> {
        let mut families = ToolFamilies::default();
        for name in value
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name {
                "sidecar" => families.sidecar = true,
                "persistent" => families.persistent = true,
                "legacy" => families.legacy = true,
                "aliases" => families.aliases = true,
                _ => return None,
            }
        }
        (families != ToolFamilies::default()).then_some(families)
    }
}

/// A final message longer than this is returned in pages: about 5k tokens,
/// as much as a calling agent should take in at once.
pub const DEFAULT_MAX_RESULT_CHARS: usize = 20_000;

/// Runs one user has going at once, across the sidecars on one pointer
/// directory, unless [`ENV_MAX_RUNS`] says otherwise: well past any fan-out
/// an agent means (the waits take 32 ids), low enough that a loop
/// gone wrong is stopped before it spends the account's budget.
pub const DEFAULT_MAX_RUNS: usize = 32;

/// The origin header's default name, as the persistent-conversation server
/// this one replaces called itself.
pub const DEFAULT_ORIGIN: &str = "codex-persistent-mcp";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name}={value:?} is not one of: {expected}")]
    NotOneOf {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{name}={value:?} is not a whole number of milliseconds")]
    NotMillis { name: &'static str, value: String },
    #[error("{name}={value:?} is not a whole number greater than 0")]
    NotCount { name: &'static str, value: String },
    #[error("{name}={value:?} is not a ws://HOST:PORT, wss://HOST:PORT or unix://PATH URL")]
    BadUrl { name: &'static str, value: String },
    #[error(
        "{name}={value:?} is on another host and has no auth: set {} (a capability token) or {} (signed bearer tokens)",
        remote::ENV_TOKEN_FILE,
        remote::ENV_SHARED_SECRET_FILE
    )]
    RemoteWithoutAuth { name: &'static str, value: String },
    #[error(
        "{first} and {second} are both set: the app-server checks one kind of token, so set one"
    )]
    TwoAuths {
        first: &'static str,
        second: &'static str,
    },
    #[error(
        "no Codex home: set CODEX_HOME (or {ENV_CODEX_HOME}), or HOME so that ~/.codex can be used"
    )]
    NoCodexHome,
    #[error("{name}={value:?} is refused: {reason}")]
    RefusedPath {
        name: &'static str,
        value: String,
        reason: PathRefusal,
    },
}

impl From<RefusedPath> for ConfigError {
    fn from(
        RefusedPath {
            name,
            value,
            reason,
        }: RefusedPath,
    ) -> ConfigError {
        ConfigError::RefusedPath {
            name,
            value,
            reason,
        }
    }
}

/// Which app-server the sidecar uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppServerMode {
    /// One server per user at `url`, started detached by whichever sidecar
    /// needs it first, shared by all, exiting when idle.
    Shared { url: String },
    /// A server of our own on a free port, stopped with the sidecar.
    Private,
    /// Someone else's server on a Unix socket (Codex's managed daemon, say):
    /// we only connect, never start or stop it.
    Unix { path: PathBuf },
    /// Someone else's server over the network (`wss://`, another host, or a
    /// loopback URL with auth settings): we only connect.
    Remote(RemoteEndpoint),
}

/// What a run may do, as one word: the sandbox and approval policy it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permissions {
    /// Full access, never asks.
    Yolo,
    /// Writes inside the workspace; asking to leave it is declined.
    WorkspaceWrite,
    /// Reads only; asking for more is declined.
    ReadOnly,
}

impl Permissions {
    pub fn parse(value: &str) -> Option<Permissions> {
        match value {
            "yolo" => Some(Permissions::Yolo),
            "workspace-write" => Some(Permissions::WorkspaceWrite),
            "read-only" => Some(Permissions::ReadOnly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permissions::Yolo => "yolo",
            Permissions::WorkspaceWrite => "workspace-write",
            Permissions::ReadOnly => "read-only",
        }
    }

    pub fn sandbox(self) -> SandboxMode {
        match self {
            Permissions::Yolo => SandboxMode::DangerFullAccess,
            Permissions::WorkspaceWrite => SandboxMode::WorkspaceWrite,
            Permissions::ReadOnly => SandboxMode::ReadOnly,
        }
    }

    pub fn approval_policy(self) -> ApprovalPolicy {
        match self {
            Permissions::Yolo => ApprovalPolicy::Never,
            // Codex may ask to leave the sandbox; the run actor answers.
            Permissions::WorkspaceWrite | Permissions::ReadOnly => ApprovalPolicy::OnRequest,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub codex_home: PathBuf,
    /// Holds the pointer index, the shared server's token and locks.
    pub pointer_dir: PathBuf,
    /// Replaces `<cwd>/.codex/codex-mcp/runs` for every project.
    pub run_dir_override: Option<PathBuf>,
    pub app_server: AppServerMode,
    pub shared_idle_exit: Duration,
    /// How long to keep reconnecting to a remote app-server after a drop.
    pub remote_reconnect_window: Duration,
    /// `None`: a wait blocks until the run ends or its hard timeout.
    pub wait_soft_timeout: Option<Duration>,
    pub run_timeout: Duration,
    pub default_permissions: Permissions,
    /// Names the sender in the header of every conversation prompt.
    pub origin: String,
    /// Longest final message one reply carries; the rest comes in pages.
    pub max_result_chars: usize,
    /// Runs going at once across the sidecars of this pointer directory
    /// (`None`: no cap, [`ENV_MAX_RUNS`]=0); one more is refused `busy`.
    pub max_runs: Option<usize>,
    pub tools: ToolFamilies,
    /// Send progress notifications during blocking calls.
    pub progress: bool,
    /// `RUST_LOG` for a private app-server (`None`: Codex's default).
    pub app_server_log: Option<String>,
    pub approvals: Approvals,
    /// A value of [`ENV_APPROVALS`] that is not one: reported by the health
    /// check and logged, while the default applies (a run need not fail
    /// over who answers its approvals).
    pub approvals_refused: Option<String>,
    /// The named endpoints of `endpoints.toml` (read by [`Config::from_env`];
    /// none from [`Config::from_lookup`]).
    pub endpoints: endpoints::Endpoints,
    /// The sidecar's own working directory, read once at start: where the
    /// audit of a remote run goes (its `cwd` is on another host).
    pub own_cwd: Option<PathBuf>,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut config =
            Config::from_lookup(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))?;
        let home = std::env::var("HOME").ok().filter(|home| !home.is_empty());
        config.endpoints = endpoints::Endpoints::load(&config.pointer_dir, home.as_deref());
        config.own_cwd = std::env::current_dir().ok();
        Ok(config)
    }

    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        // Every path setting is made absolute here, before anything reads or
        // creates a directory from it (see `shell_path`).
        let home = env("HOME");
        let path = |name: &'static str| {
            env(name)
                .map(|value| absolute_setting(name, &value, home.as_deref()))
                .transpose()
        };
        let codex_home = match path(ENV_CODEX_HOME)? {
            Some(codex_home) => codex_home,
            None => match path("CODEX_HOME")? {
                Some(codex_home) => codex_home,
                None => match &home {
                    Some(home) => absolute_setting("HOME", home, None)?.join(".codex"),
                    None => return Err(ConfigError::NoCodexHome),
                },
            },
        };
        let pointer_dir = path(ENV_POINTER_DIR)?.unwrap_or_else(|| codex_home.join("mcp-wrapper"));
        let run_dir_override = path(ENV_RUN_DIR)?;
        let url_var = if env(ENV_URL).is_some() {
            ENV_URL
        } else {
            ENV_LISTEN
        };
        let url = env(url_var);
        let remote = match url.as_deref() {
            Some(url)
                if !url.starts_with("unix://") && env(ENV_MODE).as_deref() != Some("private") =>
            {
                let path = |name: &'static str| path(name).map_err(ConfigError::from);
                remote::remote_from_env(url_var, url, &path, &env)?
            }
            _ => None,
        };
        let app_server = match (remote, env(ENV_MODE).as_deref(), url) {
            (Some(endpoint), _, _) => AppServerMode::Remote(endpoint),
            (None, _, Some(url)) if url.starts_with("unix://") => {
                let path = url.trim_start_matches("unix://");
                if path.is_empty() {
                    return Err(ConfigError::BadUrl {
                        name: url_var,
                        value: url,
                    });
                }
                let path = absolute_part(url_var, &url, path, home.as_deref())?;
                AppServerMode::Unix { path }
            }
            (None, None | Some("shared"), url) => {
                let url = url.unwrap_or_else(|| DEFAULT_SHARED_URL.to_string());
                if !url.starts_with("ws://") {
                    return Err(ConfigError::BadUrl {
                        name: url_var,
                        value: url,
                    });
                }
                AppServerMode::Shared { url }
            }
            (None, Some("private"), _) => AppServerMode::Private,
            (None, Some(other), _) => {
                return Err(ConfigError::NotOneOf {
                    name: ENV_MODE,
                    value: other.to_string(),
                    expected: "shared, private",
                });
            }
        };
        let soft = millis(&env, ENV_SOFT_TIMEOUT_MS)?.unwrap_or(DEFAULT_WAIT_SOFT_TIMEOUT);
        let default_permissions = match env(ENV_DEFAULT_PERMISSIONS) {
            None => Permissions::Yolo,
            Some(value) => Permissions::parse(&value).ok_or(ConfigError::NotOneOf {
                name: ENV_DEFAULT_PERMISSIONS,
                value,
                expected: "yolo, workspace-write, read-only",
            })?,
        };
        let (approvals, approvals_refused) = match env(ENV_APPROVALS).as_deref() {
            None => (Approvals::Auto, None),
            Some("person") => (Approvals::Person, None),
            Some("caller") => (Approvals::Caller, None),
            Some(other) => (
                Approvals::Auto,
                Some(
                    ConfigError::NotOneOf {
                        name: ENV_APPROVALS,
                        value: other.to_string(),
                        expected: "person, caller (unset: person when the client can show forms)",
                    }
                    .to_string(),
                ),
            ),
        };
        Ok(Config {
            approvals,
            approvals_refused,
            endpoints: endpoints::Endpoints::default(),
            own_cwd: None,
            codex_home,
            pointer_dir,
            run_dir_override,
            app_server,
            shared_idle_exit: millis(&env, ENV_IDLE_EXIT_MS)?.unwrap_or(DEFAULT_SHARED_IDLE_EXIT),
            remote_reconnect_window: millis(&env, ENV_REMOTE_RECONNECT_MS)?
                .unwrap_or(DEFAULT_REMOTE_RECONNECT_WINDOW),
            wait_soft_timeout: (!soft.is_zero()).then_some(soft),
            run_timeout: millis(&env, ENV_TIMEOUT_MS)?.unwrap_or(DEFAULT_RUN_TIMEOUT),
            default_permissions,
            origin: env(ENV_ORIGIN).unwrap_or_else(|| DEFAULT_ORIGIN.to_string()),
            app_server_log: env(ENV_APP_SERVER_LOG),
            progress: match env(ENV_PROGRESS).as_deref() {
                None | Some("0") | Some("false") => false,
                Some("1") | Some("true") => true,
                Some(other) => {
                    return Err(ConfigError::NotOneOf {
                        name: ENV_PROGRESS,
                        value: other.to_string(),
                        expected: "1, true, 0, false",
                    });
                }
            },
            tools: match env(ENV_TOOLS) {
                None => ToolFamilies::DEFAULT,
                Some(value) => ToolFamilies::parse(&value).ok_or(ConfigError::NotOneOf {
                    name: ENV_TOOLS,
                    value,
                    expected: "a comma-separated list of sidecar, persistent, legacy, aliases",
                })?,
            },
            max_runs: match env(ENV_MAX_RUNS) {
                None => Some(DEFAULT_MAX_RUNS),
                Some(value) => match value.trim().parse::<usize>() {
                    Ok(0) => None,
                    Ok(cap) => Some(cap),
                    Err(_) => {
                        return Err(ConfigError::NotCount {
                            name: ENV_MAX_RUNS,
                            value,
                        });
                    }
                },
            },
            max_result_chars: match env(ENV_MAX_RESULT_CHARS) {
                None => DEFAULT_MAX_RESULT_CHARS,
                Some(value) => value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|chars| *chars > 0)
                    .ok_or(ConfigError::NotCount {
                        name: ENV_MAX_RESULT_CHARS,
                        value,
                    })?,
            },
        })
    }

    /// Where the audit of runs in `cwd` lives. A remote run's `cwd` is on
    /// another host: its audit goes in the run dir of the sidecar's own
    /// working directory (the pointer dir when that is unknown).
    pub fn run_dir(&self, cwd: &Path) -> PathBuf {
        let project = match &self.app_server {
            AppServerMode::Remote(_) => self.own_cwd.as_deref().unwrap_or(&self.pointer_dir),
            _ => cwd,
        };
        self.run_dir_override
            .clone()
            .unwrap_or_else(|| project.join(".codex").join("codex-mcp").join("runs"))
    }

    /// The endpoint this configuration's app-server is: a named one's name,
    /// else [`DEFAULT_ENDPOINT`].
    pub fn endpoint_name(&self) -> &str {
        match &self.app_server {
            AppServerMode::Remote(endpoint) => &endpoint.name,
            _ => DEFAULT_ENDPOINT,
        }
    }

    /// Whether runs go to an app-server on another host (their `cwd` is a
    /// path there).
    pub fn is_remote(&self) -> bool {
        matches!(self.app_server, AppServerMode::Remote(_))
    }

    /// This configuration for the runs of the endpoint called `name`: the
    /// default is this one; a named one swaps in its app-server. `None`: no
    /// such endpoint.
    pub fn for_endpoint(&self, name: &str) -> Option<Config> {
        if name == DEFAULT_ENDPOINT {
            return Some(self.clone());
        }
        let endpoint = self.endpoints.get(name)?.clone();
        Some(Config {
            app_server: AppServerMode::Remote(endpoint),
            ..self.clone()
        })
    }

    /// The cross-project index: run id → project, thread, status.
    pub fn pointer_index(&self) -> PathBuf {
        self.pointer_dir.join("runs.index.jsonl")
    }
}

fn millis(
    env: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<Duration>, ConfigError> {
    env(name)
        .map(|value| {
            value
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| ConfigError::NotMillis { name, value })
        })
        .transpose()
}

#[cfg(test)]
mod tests;
