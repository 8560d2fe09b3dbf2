//! A second host for the cross-host tests: a throwaway network namespace
//! joined to ours by a veth pair, with its own scripted model on its own
//! loopback and the real `codex app-server` listening on its veth address
//! with `--ws-auth signed-bearer-token`. Needs root and `ip` (iproute2,
//! installed by `make system-tools`); [`RemoteHost::start`] says why not
//! when either is missing, and the test skips with that message.
//!
//! Each namespace has a unique name (our pid and a counter) and a /30 of
//! its own out of 10.233.0.0/16, so tests running side by side never clash.
//! Dropping the host kills everything started inside and deletes the
//! namespace and the link.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use codex_mcp_sidecar_test_support::netns::bind_in_namespace;
use codex_mcp_sidecar_test_support::scripted_model::ScriptedModel;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::codex_setup::{spawn_foreign_server, wait_until_listening};
use super::{EVENT_TIMEOUT, codex_bin};

/// The app-server's port on the second host: the namespace is ours alone,
/// so a fixed port never clashes.
const SERVER_PORT: u16 = 4500;

/// Namespaces made by this process so far, for unique names and subnets.
static MADE: AtomicU32 = AtomicU32::new(0);

/// A network namespace and the veth pair that joins it to ours.
pub struct Namespace {
    pub name: String,
    /// Our end of the pair.
    pub host_if: String,
    pub host_addr: Ipv4Addr,
    /// The namespace's end: the second host's address.
    pub ns_addr: Ipv4Addr,
}

impl Namespace {
    /// Why the tests cannot make namespaces here, if they cannot.
    pub fn unavailable() -> Option<String> {
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let uid = status.lines().find(|line| line.starts_with("Uid:"))?;
                Some(uid.split_whitespace().nth(1)? == "0")
            })
            .unwrap_or(false);
        if !root {
            return Some("not root: network namespaces need CAP_NET_ADMIN".to_string());
        }
        let ip = std::process::Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !ip.is_ok_and(|status| status.success()) {
            return Some("no `ip` command: install iproute2 (make system-tools)".to_string());
        }
        None
    }

    pub fn create() -> Namespace {
        let pid = std::process::id();
        let made = MADE.fetch_add(1, Ordering::SeqCst);
        // 16384 /30 subnets in 10.233.0.0/16; pid and counter pick one.
        let subnet = (pid.wrapping_mul(64).wrapping_add(made)) % 16384;
        let base = u32::from(Ipv4Addr::new(10, 233, 0, 0)) + subnet * 4;
        let namespace = Namespace {
            name: format!("cfaults-{pid}-{made}"),
            // Interface names are at most 15 bytes.
            host_if: format!("cf{pid:x}h{made}"),
            host_addr: Ipv4Addr::from(base + 1),
            ns_addr: Ipv4Addr::from(base + 2),
        };
        let ns_if = format!("cf{pid:x}n{made}");
        let (name, host_if) = (namespace.name.as_str(), namespace.host_if.as_str());
        let host_cidr = format!("{}/30", namespace.host_addr);
        let ns_cidr = format!("{}/30", namespace.ns_addr);
        ip(&["netns", "add", name]);
        ip(&[
            "link", "add", host_if, "type", "veth", "peer", "name", &ns_if, "netns", name,
        ]);
        ip(&["addr", "add", &host_cidr, "dev", host_if]);
        ip(&["link", "set", host_if, "up"]);
        ip(&["-n", name, "addr", "add", &ns_cidr, "dev", &ns_if]);
        ip(&["-n", name, "link", "set", &ns_if, "up"]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        namespace
    }

    /// Takes our end of the link down: nothing is closed, packets just stop.
    pub fn link_down(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    pub fn link_up(&self) {
        ip(&["link", "set", &self.host_if, "up"]);
    }

    /// `program` run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Whatever still runs inside goes first, or the namespace lingers.
        if let Ok(output) = std::process::Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        // Deleting either end deletes the pair; the namespace may hold the
        // other end a moment longer, so both are asked for.
        let _ = quiet_ip(&["link", "del", &self.host_if]);
        let _ = quiet_ip(&["netns", "del", &self.name]);
    }
}

fn ip(args: &[&str]) {
    let output = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip runs");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn quiet_ip(args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

/// The second host: a namespace, its scripted model, its `CODEX_HOME` and
/// the real app-server with signed-bearer auth on its veth address.
pub struct RemoteHost {
    pub model: ScriptedModel,
    pub codex_home: TempDir,
    /// Holds the shared secret (and a wrong one, for the tests that need it).
    secrets: TempDir,
    server: Option<Child>,
    /// Last: everything above ran inside it.
    pub namespace: Namespace,
}

impl RemoteHost {
    /// `None` (after printing why) when this machine cannot make one.
    pub async fn start() -> Option<RemoteHost> {
        if let Some(why) = Namespace::unavailable() {
            eprintln!("skipped: {why}");
            return None;
        }
        let namespace = Namespace::create();
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = bind_in_namespace(&namespace.name, loopback).expect("binds inside");
        let model = ScriptedModel::start_on(listener).expect("the model serves");
        let codex_home = tempfile::tempdir().unwrap();
        model.write_codex_home(codex_home.path()).unwrap();
        let secrets = tempfile::tempdir().unwrap();
        std::fs::write(secrets.path().join("secret"), "s".repeat(48)).unwrap();
        std::fs::write(secrets.path().join("wrong"), "w".repeat(48)).unwrap();
        let mut host = RemoteHost {
            model,
            codex_home,
            secrets,
            server: None,
            namespace,
        };
        host.start_server().await;
        Some(host)
    }

    /// Where the app-server listens, as seen from our side of the link.
    pub fn server_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.namespace.ns_addr, SERVER_PORT))
    }

    pub fn secret_file(&self) -> PathBuf {
        self.secrets.path().join("secret")
    }

    /// A secret the server does not know.
    pub fn wrong_secret_file(&self) -> PathBuf {
        self.secrets.path().join("wrong")
    }

    async fn start_server(&mut self) {
        let listen = format!("ws://{}", self.server_addr());
        let mut command = self.namespace.command(&codex_bin().display().to_string());
        command
            .args(["app-server", "--listen", &listen])
            .args([
                "--ws-auth",
                "signed-bearer-token",
                "--ws-shared-secret-file",
            ])
            .arg(self.secret_file());
        let child = spawn_foreign_server(command, self.codex_home.path());
        self.server = Some(child);
        // Ready once it accepts a connection across the link.
        let address = self.server_addr();
        wait_until_listening(
            "the app-server on the second host",
            EVENT_TIMEOUT,
            || async { tokio::net::TcpStream::connect(address).await.is_ok() },
        )
        .await;
    }

    /// Kills the app-server's whole process group: a server that stays away.
    pub async fn kill_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            if let Some(pid) = child.id() {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = child.wait().await;
        }
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        if let Some(child) = &self.server
            && let Some(pid) = child.id()
        {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}
