//! One line of stdin, as the framing guard in front of rmcp judges it: a
//! verdict for any bytes, and a refusal is always a JSON-RPC error.
#![no_main]

use codex_mcp_sidecar::mcp::framing::{Verdict, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Verdict::Refuse(answer) = classify(data) {
        assert!(answer["error"]["code"].is_i64());
        assert_eq!(answer["jsonrpc"], "2.0");
    }
});
