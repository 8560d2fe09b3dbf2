//! What Enter does to a run: which Codex terminal UI command opens its
//! thread. A running run opens on its live app-server (`codex resume
//! --remote`), with the token in an environment variable when that server
//! wants one; a run whose app-server is gone opens from Codex's own session
//! files (`codex resume <thread>`); a run without a thread cannot open yet.
//!
//! The decision is pure ([`plan`]); the caller finds out whether the server
//! is up and what its token is ([`probe`], [`token_for`]).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::appserver::shared::{SharedPaths, SharedState};
use crate::store::catalog::RunRow;

/// The variable that carries the app-server's token to `codex resume
/// --remote`: a name of ours, so the token never shows in a command line.
pub const TOKEN_ENV: &str = "CODEX_RUNS_REMOTE_TOKEN";

/// How long a connection to a run's app-server may take before it counts as
/// gone. Loopback answers in well under a millisecond; a server that is
/// not there refuses at once; this only bounds a stuck one.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// An app-server known to be up, with its token if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveServer {
    pub url: String,
    pub token: Option<String>,
}

/// A Codex command: its arguments and the environment it needs on top of
/// ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub args: Vec<String>,
    pub env: Vec<(&'static str, String)>,
}

/// How to open a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// `codex resume --remote <url> [--remote-auth-token-env VAR] <thread>`.
    Remote {
        server: LiveServer,
        thread_id: String,
        cwd: PathBuf,
    },
    /// `codex resume <thread>`, from Codex's session files.
    Local { thread_id: String, cwd: PathBuf },
    /// Nothing to open; the words say why.
    NotYet(String),
}

/// How to open `row`, given the app-server that is up (if any).
pub fn plan(row: &RunRow, server: Option<LiveServer>) -> Plan {
    let Some(thread_id) = row.thread_id.clone() else {
        return Plan::NotYet(format!(
            "run {} has no Codex thread yet (it has not started its first turn): nothing to attach",
            row.run_id
        ));
    };
    let cwd = row.cwd.clone();
    match server {
        Some(server) => Plan::Remote {
            server,
            thread_id,
            cwd,
        },
        None => Plan::Local { thread_id, cwd },
    }
}

impl Plan {
    /// The Codex arguments, and the environment the command needs.
    pub fn command_line(&self) -> Option<CommandLine> {
        match self {
            Plan::Remote {
                server, thread_id, ..
            } => {
                let mut args = vec!["resume".into(), "--remote".into(), server.url.clone()];
                let mut env = Vec::new();
                if let Some(token) = &server.token {
                    args.extend(["--remote-auth-token-env".into(), TOKEN_ENV.into()]);
                    env.push((TOKEN_ENV, token.clone()));
                }
                args.push(thread_id.clone());
                Some(CommandLine { args, env })
            }
            Plan::Local { thread_id, .. } => Some(CommandLine {
                args: vec!["resume".into(), thread_id.clone()],
                env: Vec::new(),
            }),
            Plan::NotYet(_) => None,
        }
    }

    pub fn cwd(&self) -> Option<&Path> {
        match self {
            Plan::Remote { cwd, .. } | Plan::Local { cwd, .. } => Some(cwd),
            Plan::NotYet(_) => None,
        }
    }
}

/// The app-server that can open `row` now: the one its active record names
/// while it runs, else the shared server if it is up (a finished run's
/// thread is still there). `None` when neither answers.
pub fn live_server(row: &RunRow, pointer_dir: &Path) -> Option<LiveServer> {
    let shared = SharedState::read(&SharedPaths::new(pointer_dir).state())
        .ok()
        .flatten()
        .map(|state| state.url);
    let url = row.app_server_url.clone().or(shared)?;
    probe(&url).then(|| LiveServer {
        token: token_for(&url, row, pointer_dir),
        url,
    })
}

/// Whether something accepts connections at a `ws://host:port` URL. Other
/// schemes (`unix://`) are taken to be up: Codex says so itself if not.
pub fn probe(url: &str) -> bool {
    let Some(authority) = url.strip_prefix("ws://") else {
        return true;
    };
    let authority = authority.split('/').next().unwrap_or_default();
    let addresses: Vec<SocketAddr> = match authority.to_socket_addrs() {
        Ok(addresses) => addresses.collect(),
        Err(_) => return false,
    };
    addresses
        .iter()
        .any(|address| TcpStream::connect_timeout(address, PROBE_TIMEOUT).is_ok())
}

/// The token of the server at `url`: the file the run's active record
/// names, else the shared server's when `url` is the shared server's.
pub fn token_for(url: &str, row: &RunRow, pointer_dir: &Path) -> Option<String> {
    let shared = SharedPaths::new(pointer_dir);
    let is_shared = SharedState::read(&shared.state())
        .ok()
        .flatten()
        .is_some_and(|state| state.url == url);
    let file = row
        .app_server_token_file
        .clone()
        .or_else(|| is_shared.then(|| shared.token()))?;
    std::fs::read_to_string(file)
        .ok()
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunId;

    fn row(thread: Option<&str>) -> RunRow {
        let run_id = RunId::parse("20261121-052301-482-7f3a9c").unwrap();
        RunRow {
            thread_id: thread.map(str::to_string),
            ..RunRow::new(run_id, "t", "/work/project")
        }
    }

    #[test]
    fn a_live_server_with_a_token_opens_remotely_with_the_token_in_the_environment() {
        let server = LiveServer {
            url: "ws://127.0.0.1:45999".into(),
            token: Some("s3cret".into()),
        };
        let plan = plan(&row(Some("th-1")), Some(server));
        let CommandLine { args, env } = plan.command_line().unwrap();
        assert_eq!(
            args,
            [
                "resume",
                "--remote",
                "ws://127.0.0.1:45999",
                "--remote-auth-token-env",
                TOKEN_ENV,
                "th-1"
            ]
        );
        assert_eq!(env, [(TOKEN_ENV, "s3cret".to_string())]);
        assert!(
            !args.iter().any(|arg| arg.contains("s3cret")),
            "never on the command line"
        );
        assert_eq!(plan.cwd(), Some(Path::new("/work/project")));
    }

    #[test]
    fn without_a_token_there_is_no_token_flag() {
        let server = LiveServer {
            url: "unix:///run/codex.sock".into(),
            token: None,
        };
        let CommandLine { args, env } = plan(&row(Some("th-1")), Some(server))
            .command_line()
            .unwrap();
        assert_eq!(
            args,
            ["resume", "--remote", "unix:///run/codex.sock", "th-1"]
        );
        assert!(env.is_empty());
    }

    #[test]
    fn a_gone_server_opens_locally_and_no_thread_cannot_open() {
        let CommandLine { args, .. } = plan(&row(Some("th-2")), None).command_line().unwrap();
        assert_eq!(args, ["resume", "th-2"]);
        let not_yet = plan(&row(None), None);
        assert!(matches!(&not_yet, Plan::NotYet(why) if why.contains("no Codex thread yet")));
        assert_eq!(not_yet.command_line(), None);
    }

    #[test]
    fn probing_tells_a_listening_port_from_a_closed_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(probe(&format!("ws://127.0.0.1:{port}")));
        drop(listener);
        assert!(!probe(&format!("ws://127.0.0.1:{port}")));
        assert!(!probe("ws://no-such-host.invalid:1"));
    }
}
