//! The real `codex app-server` as someone else's server on "another host":
//! `--listen ws://ADDR:PORT` with `--ws-auth`, its own `CODEX_HOME` and its
//! own scripted model. On loopback here; the listen address and the way the
//! process is launched are parameters, so a test can run it inside a network
//! namespace (`launcher: ["ip", "netns", "exec", NAME]`, listening on the
//! namespace's veth address) and still reach it from this side.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use codex_mcp_sidecar_test_support::scripted_model::ScriptedModel;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::common::codex_setup::{spawn_foreign_server, wait_until_listening};
use crate::common::{EVENT_TIMEOUT, codex_bin};

/// How the server checks its clients.
#[derive(Debug, Clone)]
pub enum ServerAuth {
    /// `--ws-auth signed-bearer-token`, with `--ws-issuer` / `--ws-audience`
    /// when given.
    SignedBearer {
        issuer: Option<String>,
        audience: Option<String>,
    },
    /// `--ws-auth capability-token`.
    CapabilityToken,
}

pub struct RemoteServerOptions {
    /// The address it listens on (and the test connects to).
    pub host: String,
    pub port: u16,
    pub auth: ServerAuth,
    /// Put before the Codex binary, e.g. `ip netns exec NAME`; empty runs
    /// it here.
    pub launcher: Vec<OsString>,
}

impl RemoteServerOptions {
    /// On this machine's loopback, a free port.
    pub fn loopback(auth: ServerAuth) -> RemoteServerOptions {
        RemoteServerOptions {
            host: "127.0.0.1".into(),
            port: codex_mcp_sidecar_test_support::world::free_port(),
            auth,
            launcher: Vec::new(),
        }
    }
}

/// A running server in its own process group, killed on drop.
pub struct RemoteServer {
    child: Child,
    /// `ws://HOST:PORT`.
    pub url: String,
    /// What a client needs: the shared secret, or the capability token.
    pub secret_file: PathBuf,
    pub model: ScriptedModel,
    _home: TempDir,
    _dir: TempDir,
}

/// 32 random bytes as hex: 64 characters, above Codex's 32-byte minimum.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Writes `contents` to a new owner-only file in `dir`.
pub fn secret_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{contents}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

impl RemoteServer {
    pub async fn start(options: RemoteServerOptions) -> RemoteServer {
        let model = ScriptedModel::start().await.unwrap();
        let home = tempfile::tempdir().unwrap();
        model.write_codex_home(home.path()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let secret_file = secret_file(dir.path(), "secret", &random_secret());
        let url = format!("ws://{}:{}", options.host, options.port);

        let mut args: Vec<OsString> = options.launcher.clone();
        args.push(codex_bin().into());
        args.extend(["app-server".into(), "--listen".into(), url.clone().into()]);
        match &options.auth {
            ServerAuth::SignedBearer { issuer, audience } => {
                args.extend([
                    "--ws-auth".into(),
                    "signed-bearer-token".into(),
                    "--ws-shared-secret-file".into(),
                    secret_file.clone().into(),
                ]);
                if let Some(issuer) = issuer {
                    args.extend(["--ws-issuer".into(), issuer.into()]);
                }
                if let Some(audience) = audience {
                    args.extend(["--ws-audience".into(), audience.into()]);
                }
            }
            ServerAuth::CapabilityToken => args.extend([
                "--ws-auth".into(),
                "capability-token".into(),
                "--ws-token-file".into(),
                secret_file.clone().into(),
            ]),
        }
        let mut command = Command::new(&args[0]);
        command.args(&args[1..]);
        let child = spawn_foreign_server(command, home.path());
        let server = RemoteServer {
            child,
            url,
            secret_file,
            model,
            _home: home,
            _dir: dir,
        };
        server.wait_listening(&options.host, options.port).await;
        server
    }

    /// Ready once the port accepts a connection.
    async fn wait_listening(&self, host: &str, port: u16) {
        let what = format!("the remote app-server on {host}:{port}");
        wait_until_listening(&what, EVENT_TIMEOUT, || async {
            tokio::net::TcpStream::connect((host, port)).await.is_ok()
        })
        .await;
    }

    pub fn pgid(&self) -> i32 {
        self.child.id().unwrap() as i32
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
