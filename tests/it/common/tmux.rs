//! A terminal a test can type into and read: a detached tmux session on a
//! tmux server of its own (`-L`), so tests run in parallel and never touch
//! a person's sessions. The server is killed when the guard drops.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How often the screen is read while waiting for text.
const POLL: Duration = Duration::from_millis(200);

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A `width`×`height` terminal in `cwd` running `command` (one shell
    /// string) with `env` added to the environment.
    pub fn start(command: &str, cwd: &Path, env: &[(&str, &str)], width: u16, height: u16) -> Tmux {
        let socket = format!(
            "sidecar-test-{}-{}",
            std::process::id(),
            SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let tmux = Tmux { socket };
        let mut args: Vec<String> = vec![
            "new-session".into(),
            "-d".into(),
            "-x".into(),
            width.to_string(),
            "-y".into(),
            height.to_string(),
            "-c".into(),
            cwd.display().to_string(),
        ];
        for (name, value) in env {
            args.push("-e".into());
            args.push(format!("{name}={value}"));
        }
        // Keep the pane after the program exits, so its last words can be read.
        args.push(format!("{command}; echo '[exited]'; sleep 3600"));
        tmux.run(&args);
        tmux
    }

    fn run(&self, args: &[String]) -> String {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux runs");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Keys as tmux names them (`Enter`, `Down`, `C-c`, or literal text).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys".to_string(), "-t".into(), "0".into()];
        args.extend(keys.iter().map(|key| key.to_string()));
        self.run(&args);
    }

    /// The pid of the pane's shell, which leads the process group of what
    /// runs in the pane (a non-interactive shell starts no job of its own).
    pub fn pane_pid(&self) -> i32 {
        let pid = self.run(&[
            "display-message".into(),
            "-p".into(),
            "-t".into(),
            "0".into(),
            "#{pane_pid}".into(),
        ]);
        pid.trim().parse().expect("tmux prints the pane's pid")
    }

    /// What the screen shows now.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane".into(), "-p".into(), "-t".into(), "0".into()])
    }

    /// Waits until the screen satisfies `test`; fails with the screen.
    pub async fn wait_for(&self, what: &str, timeout: Duration, test: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if test(&screen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on screen within {timeout:?}:\n{screen}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `text` is on the screen.
    pub async fn wait_for_text(&self, text: &str, timeout: Duration) {
        self.wait_for(&format!("{text:?}"), timeout, |screen| {
            screen.contains(text)
        })
        .await;
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

static SESSIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
