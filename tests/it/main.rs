//! One integration-test binary: `common/` holds the rig, `suite/` the tests.
//! Every test runs the real, pinned Codex CLI against the scripted model, each
//! with its own throwaway `CODEX_HOME`, directories and ports.

// This whole crate is tests: a failed step should panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;
mod suite;
