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
use crate::config::RemoteEndpoint;
use crate::store::catalog::RunRow;

/// The variable that carries the app-server's token to `codex resume
/// --remote`: a name of ours, so the token never shows in a command line.
pub const TOKEN_ENV: &str = "CODEX_RUNS_REMOTE_TOKEN";

/// The variable through which `codex resume --remote wss://…` trusts a
/// private CA: a `wss://` endpoint's `ca_file` goes there. Tried by hand
/// against a TLS server with a test CA (Codex 0.169.0 and 0.171.0): with
/// `SSL_CERT_FILE` the handshake passes, while `CODEX_CA_CERTIFICATE` (which
/// the binary also names) leaves the remote client at `UnknownIssuer`. The
/// file stands in for the system roots, so it must hold every CA the
/// endpoint needs.
pub const CA_ENV: &str = "SSL_CERT_FILE";

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
    /// `codex resume --remote <url> [--remote-auth-token-env VAR] <thread>`
    /// on another host's app-server (a remote run): its `cwd` is a path
    /// there, so the command runs where the picker does.
    OnEndpoint {
        server: LiveServer,
        thread_id: String,
        /// The endpoint's CA, for a `wss://` proxy with a private one.
        ca_file: Option<PathBuf>,
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
            }
            | Plan::OnEndpoint {
                server, thread_id, ..
            } => {
                let mut args = vec!["resume".into(), "--remote".into(), server.url.clone()];
                let mut env = Vec::new();
                if let Plan::OnEndpoint {
                    ca_file: Some(ca_file),
                    ..
                } = self
                {
                    env.push((CA_ENV, ca_file.display().to_string()));
                }
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
            Plan::OnEndpoint { .. } | Plan::NotYet(_) => None,
        }
    }
}

/// How to open `row`, a run on `endpoint` (another host), given the bearer
/// minted for it (`bearer_for`, or why there is none). A plain `ws://` URL
/// on another host cannot carry a token (the Codex CLI sends one only over
/// `wss://` or to loopback), so that is said instead of starting an attach
/// that could not authenticate.
pub fn endpoint_plan(
    row: &RunRow,
    endpoint: &RemoteEndpoint,
    bearer: Result<Option<String>, String>,
) -> Plan {
    let Some(thread_id) = row.thread_id.clone() else {
        return plan(row, None);
    };
    if !endpoint.is_tls() && !endpoint.is_loopback() {
        return Plan::NotYet(format!(
            "run {} is on endpoint {} at {}: the Codex terminal UI sends its token only over \
             wss:// or to loopback, so it cannot attach over plain ws:// to another host; put \
             a TLS proxy or an SSH tunnel in front of it (docs/remote.md)",
            row.run_id, endpoint.name, endpoint.url
        ));
    }
    match bearer {
        Ok(token) => Plan::OnEndpoint {
            server: LiveServer {
                url: endpoint.url.clone(),
                token,
            },
            thread_id,
            ca_file: endpoint.ca_file.clone(),
        },
        Err(why) => Plan::NotYet(format!(
            "cannot attach to run {} on endpoint {}: {why}",
            row.run_id, endpoint.name
        )),
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

    fn endpoint(url: &str) -> RemoteEndpoint {
        RemoteEndpoint {
            name: "box".into(),
            url: url.into(),
            auth: crate::config::RemoteAuth::SignedBearer {
                secret_file: "/s".into(),
                issuer: None,
                audience: None,
            },
            ca_file: None,
        }
    }

    #[test]
    fn a_remote_run_attaches_to_its_endpoint_with_a_fresh_token_in_the_environment() {
        let box_url = "wss://box.example:4443";
        let plan = endpoint_plan(
            &row(Some("th-9")),
            &endpoint(box_url),
            Ok(Some("jwt.minted.now".into())),
        );
        let CommandLine { args, env } = plan.command_line().unwrap();
        assert_eq!(
            args,
            [
                "resume",
                "--remote",
                box_url,
                "--remote-auth-token-env",
                TOKEN_ENV,
                "th-9"
            ]
        );
        assert_eq!(env, [(TOKEN_ENV, "jwt.minted.now".to_string())]);
        assert!(!args.iter().any(|arg| arg.contains("jwt.minted")));
        // The run's cwd is on the box: the command runs where the picker is.
        assert_eq!(plan.cwd(), None);
    }

    #[test]
    fn a_wss_endpoint_with_its_own_ca_hands_the_ca_file_to_codex_as_ssl_cert_file() {
        let mut with_ca = endpoint("wss://box.example:4443");
        with_ca.ca_file = Some("/etc/box-ca.pem".into());
        let plan = endpoint_plan(&row(Some("th-9")), &with_ca, Ok(Some("jwt.x".into())));
        let CommandLine { args, env } = plan.command_line().unwrap();
        assert_eq!(
            env,
            [
                ("SSL_CERT_FILE", "/etc/box-ca.pem".to_string()),
                (TOKEN_ENV, "jwt.x".to_string())
            ]
        );
        assert!(!args.iter().any(|arg| arg.contains("jwt.x")));
    }

    #[test]
    fn a_plain_ws_remote_says_why_it_cannot_attach_instead_of_starting() {
        let plan = endpoint_plan(
            &row(Some("th-9")),
            &endpoint("ws://10.0.0.2:4500"),
            Ok(Some("t".into())),
        );
        let Plan::NotYet(why) = &plan else {
            panic!("{plan:?}");
        };
        assert!(why.contains("wss://") && why.contains("box"), "{why}");
        assert_eq!(plan.command_line(), None);
        // Loopback ws:// (an SSH tunnel) is fine.
        let tunnel = endpoint_plan(&row(Some("th")), &endpoint("ws://127.0.0.1:4600"), Ok(None));
        assert!(matches!(tunnel, Plan::OnEndpoint { .. }), "{tunnel:?}");
        let broken = endpoint_plan(
            &row(Some("th")),
            &endpoint(box_url_for_error()),
            Err("the secret file is unreadable".into()),
        );
        assert!(matches!(broken, Plan::NotYet(why) if why.contains("unreadable")));
    }

    fn box_url_for_error() -> &'static str {
        "wss://box.example:4443"
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
