//! The rig shared by the integration tests: an app-server world (a scripted
//! model, a throwaway `CODEX_HOME` and project, and a real `codex
//! app-server` on a free loopback port, all private to one test) with the
//! waits a test needs. The worlds themselves live in
//! `codex-mcp-sidecar-test-support`, shared with the benches and examples.

/// A suite's own `World`: the shared `SidecarWorld` under a local type that
/// derefs to it, so the suite can give it methods of its own (a foreign type
/// takes none).
macro_rules! suite_world {
    () => {
        struct World(codex_mcp_sidecar_test_support::world::SidecarWorld);

        impl std::ops::Deref for World {
            type Target = codex_mcp_sidecar_test_support::world::SidecarWorld;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    };
}

pub mod claude;
pub mod claude_sidecar;
pub mod claude_tty;
pub mod codex_setup;
pub mod engine;
pub mod mcp_traffic;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod raw_mcp;
pub mod remote_server;
pub mod tmux;
pub mod tools;

use std::path::Path;
use std::time::Duration;

use codex_mcp_sidecar::appserver::process::live_group_members;
use codex_mcp_sidecar::appserver::{AppServerConnection, ServerEvent};
use codex_mcp_sidecar::protocol::events::TurnEvent;
use codex_mcp_sidecar::protocol::{
    ApprovalPolicy, NotificationKind, SandboxMode, ServerRequest, Thread, ThreadId,
    ThreadStartParams, Turn, TurnStartParams,
};
use codex_mcp_sidecar_test_support::app_server::AppServerWorld;
use tokio::sync::mpsc;

// The Codex under test has one lookup, shared with the benches and examples.
pub use codex_mcp_sidecar_test_support::{codex_bin, codex_binary, codex_version};

/// Longest any single expected event may take to arrive. A scripted turn
/// finishes in well under a second; this only trips when something is stuck,
/// and then the test fails instead of hanging.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// One test's private world: an app-server of its own (see
/// [`AppServerWorld`]), which the test talks to directly.
pub struct Rig(AppServerWorld);

impl std::ops::Deref for Rig {
    type Target = AppServerWorld;
    fn deref(&self) -> &AppServerWorld {
        &self.0
    }
}

impl std::ops::DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut AppServerWorld {
        &mut self.0
    }
}

impl Rig {
    pub async fn start() -> Rig {
        Rig(AppServerWorld::start().await.expect("the rig starts"))
    }

    pub async fn connect(&self) -> (AppServerConnection, Events) {
        let (connection, events) = AppServerConnection::connect(self.connect_options())
            .await
            .expect("connects and initializes");
        (connection, Events(events))
    }

    /// Starts a thread in this rig's work directory.
    pub async fn thread(
        &self,
        connection: &AppServerConnection,
        approval: ApprovalPolicy,
        sandbox: SandboxMode,
    ) -> Thread {
        let params = ThreadStartParams {
            cwd: Some(path_string(self.project.path())),
            approval_policy: Some(approval),
            sandbox: Some(sandbox),
            ..ThreadStartParams::default()
        };
        connection.thread_start(&params).await.unwrap().thread
    }

    /// Stops the app-server and checks that no process of its group is left:
    /// neither the npm launcher nor the native binary it spawned.
    pub async fn finish(self) {
        let pgid = self.0.stop().await.expect("app-server stops");
        assert_no_process_left(pgid);
    }
}

pub fn assert_no_process_left(pgid: i32) {
    let left = live_group_members(pgid);
    assert!(left.is_empty(), "codex processes left behind: {left:?}");
}

pub fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Starts a turn with one text input; it runs on after this returns.
pub async fn start_turn(
    connection: &AppServerConnection,
    thread_id: &ThreadId,
    prompt: impl Into<String>,
) -> Turn {
    connection
        .turn_start(&TurnStartParams::text(thread_id, prompt))
        .await
        .unwrap()
        .turn
}

/// The events of one connection, with waits that fail instead of hanging.
pub struct Events(pub mpsc::Receiver<ServerEvent>);

impl Events {
    /// The next event that `pick` accepts; others are skipped.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(ServerEvent) -> Option<T>) -> T {
        let wait = async {
            while let Some(event) = self.0.recv().await {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            panic!("the event stream ended first")
        };
        tokio::time::timeout(EVENT_TIMEOUT, wait)
            .await
            .expect("expected event within EVENT_TIMEOUT")
    }

    /// Waits for `turn/completed` of `turn_id`, collecting that turn's
    /// agent-message deltas on the way.
    pub async fn turn_completed(&mut self, turn_id: &str) -> (TurnEvent, Vec<String>) {
        let mut deltas = Vec::new();
        let completed = self
            .until(|event| match event {
                ServerEvent::Notification(note) => match note.kind {
                    NotificationKind::AgentMessageDelta(delta) if delta.turn_id == turn_id => {
                        deltas.push(delta.delta);
                        None
                    }
                    NotificationKind::TurnCompleted(done) if done.turn.id == turn_id => Some(done),
                    _ => None,
                },
                _ => None,
            })
            .await;
        (completed, deltas)
    }

    /// The next server request (an approval, say).
    pub async fn server_request(&mut self) -> ServerRequest {
        self.until(|event| match event {
            ServerEvent::Request(request) => Some(request),
            _ => None,
        })
        .await
    }
}

/// The output Codex posted back for the last tool call in a Responses-API
/// request body, when there is one.
pub fn function_call_output(body: &serde_json::Value) -> Option<String> {
    let input = body.get("input")?.as_array()?;
    let item = input.iter().rev().find(|item| {
        item.get("type").and_then(|kind| kind.as_str()) == Some("function_call_output")
    })?;
    match item.get("output")? {
        serde_json::Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}
