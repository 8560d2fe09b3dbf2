//! App-server WebSocket text frames, as the connection worker decodes them
//! (`Incoming::parse`, then the typed notification and request views), and
//! the notifications folded into a run's record and rendered as its
//! summary, the way a run actor and the audit use them. The input is a
//! stream of frames, one per line, so that a sequence (a turn started,
//! items, deltas, completed) can build up state.
#![no_main]

use std::path::PathBuf;

use codex_mcp_sidecar::actors::run_state::{RunRecord, RunSettings};
use codex_mcp_sidecar::protocol::{
    Incoming, ServerNotification, ServerRequest, ThreadResponse, TurnStartResponse,
};
use codex_mcp_sidecar::store::{RunId, render_markdown};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut record = RunRecord::new(
        RunId::generate(),
        "title".into(),
        "prompt".into(),
        PathBuf::from("/p"),
        RunSettings::unknown(),
        "thread".into(),
    );
    record.turn_id = Some("turn".into());
    for frame in text.split('\n') {
        match Incoming::parse(frame) {
            Ok(Incoming::Notification { method, params }) => {
                let note = ServerNotification::new(method, params);
                let _ = (note.thread_id(), note.turn_id());
                if let Some(turn) = record.apply(&note) {
                    let _ = turn.final_message();
                    record.finish_with_turn(&turn);
                }
            }
            Ok(Incoming::Request { id, method, params }) => {
                let request = ServerRequest::new(id, method, params);
                let _ = (request.thread_id(), request.turn_id());
            }
            Ok(Incoming::Response { result, .. }) => {
                let _ = serde_json::from_value::<ThreadResponse>(result.clone());
                let _ = serde_json::from_value::<TurnStartResponse>(result);
            }
            Ok(Incoming::Error { error, .. }) => {
                let _ = error.to_string();
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
    let _ = (record.live(), record.progress(), record.result());
    let _ = render_markdown(&record.summary());
});
