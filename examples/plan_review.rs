//! Plan, then review, in one conversation: `codex_plan` critiques a plan
//! before any code is written, then `codex_review` reviews the change on the
//! same session, so Codex reviews it knowing the plan it critiqued.
//!
//! ```sh
//! cargo build && cargo run --example plan_review          # offline
//! cargo run --example plan_review -- --real               # your Codex, this directory
//! ```

mod common;

use clap::Parser;
use codex_mcp_sidecar_test_support::scripted_model::Script;
use common::{Result, Session};
use serde_json::json;

/// Offline, the answers stream one word this often.
const WORD_INTERVAL_MS: u64 = 150;

const REQUIREMENTS: &str = "Add a --verbose flag to this project's command line \
    that prints each step it takes to stderr.";
const PLAN: &str = "1. Parse --verbose next to the other flags.\n\
    2. Pass a `verbose` boolean down to each step.\n\
    3. Print the step's name to stderr before it runs.";
const CHANGE: &str = "Added --verbose as planned, but as a global logger set up \
    once in main instead of a boolean passed down; steps call log::debug!.";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: common::Options,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    common::run(&args.common, plan_review).await
}

async fn plan_review(session: &Session) -> Result<()> {
    let critique = [
        "The plan ",
        "threads a flag ",
        "through every step; ",
        "a logger set once ",
        "in main would be simpler. ",
        "It also needs a test ",
        "that stderr stays quiet without the flag.",
    ];
    let plan = session.prompt(PLAN, Script::stream(&critique, WORD_INTERVAL_MS));
    let planned = session
        .call(
            "codex_plan",
            json!({"requirements": REQUIREMENTS, "plan": plan}),
        )
        .await?;
    let session_id = planned["session_id"].as_str().unwrap_or_default();
    println!("codex_plan, session {session_id}:");
    println!(
        "{}\n",
        indent(planned["critique"].as_str().unwrap_or_default())
    );

    // The same session_id continues the conversation.
    let review = [
        "The change ",
        "follows the critique: ",
        "a logger instead of a flag ",
        "passed down. ",
        "Still missing: ",
        "the quiet-stderr test.",
    ];
    let change = session.prompt(CHANGE, Script::stream(&review, WORD_INTERVAL_MS));
    let reviewed = session
        .call(
            "codex_review",
            json!({"change_summary": change, "session_id": session_id}),
        )
        .await?;
    let review_session = reviewed["session_id"].as_str().unwrap_or_default();
    println!("codex_review, session {review_session}:");
    println!(
        "{}\n",
        indent(reviewed["review"].as_str().unwrap_or_default())
    );
    if review_session != session_id {
        return Err(format!("the review ran on session {review_session}, not {session_id}").into());
    }
    println!("plan and review on one session: {session_id}");
    if !session.offline() {
        println!("continue it in Codex itself: codex resume {session_id}");
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
