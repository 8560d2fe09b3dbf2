//! Property tests of what a client sends us: tool arguments, the stdio
//! framing, and run ids. Whatever arrives, checking it never panics, an
//! unknown argument is always named, well-typed arguments always pass, and
//! a run id that parses can only ever name a file in the run directory.
//! The fuzz targets in `fuzz/` run the same functions for longer.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::catalog::{check_arguments, tool_names};
use super::framing::{self, INVALID_REQUEST, PARSE_ERROR, Verdict};
use super::params::ArgumentError;
use crate::protocol::properties::{CASES, arb_json};
use crate::store::RunId;

fn arb_tool() -> impl Strategy<Value = String> {
    let known: Vec<&'static str> = tool_names().collect();
    prop_oneof![
        prop::sample::select(known).prop_map(str::to_string),
        any::<String>(),
    ]
}

fn arb_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((any::<String>(), arb_json()), 0..6)
        .prop_map(|pairs| pairs.into_iter().collect())
}

/// `codex_run` arguments of the right types, any subset of the optional
/// ones.
fn arb_run_arguments() -> impl Strategy<Value = Map<String, Value>> {
    (
        any::<String>(),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop::sample::select(
            &["yolo", "workspace-write", "read-only"][..],
        )),
        proptest::option::of(prop::sample::select(
            &["never", "on-request", "on-failure", "untrusted"][..],
        )),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(prompt, cwd, run_async, permissions, policy, timeout)| {
            let mut arguments = Map::new();
            arguments.insert("prompt".into(), json!(prompt));
            let optional = [
                ("cwd", cwd.map(Value::from)),
                ("async", run_async.map(Value::from)),
                ("permissions", permissions.map(Value::from)),
                ("approval_policy", policy.map(Value::from)),
                ("timeout_ms", timeout.map(Value::from)),
            ];
            for (name, value) in optional {
                if let Some(value) = value {
                    arguments.insert(name.into(), value);
                }
            }
            arguments
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any tool name, any arguments: an answer, never a panic, and an
    /// error names the tool it is about.
    #[test]
    fn argument_checks_never_panic(tool in arb_tool(), arguments in arb_object()) {
        if let Err(error) = check_arguments(&tool, &arguments) {
            prop_assert!(error.to_string().starts_with(tool.as_str()));
        }
    }

    #[test]
    fn well_typed_run_arguments_pass(arguments in arb_run_arguments()) {
        prop_assert_eq!(check_arguments("codex_run", &arguments), Ok(()));
    }

    /// An argument the tool does not take is refused by its name, whatever
    /// the name and the value.
    #[test]
    fn an_unknown_argument_is_always_named(
        arguments in arb_run_arguments(),
        name in "[a-z_]{1,12}|.{1,20}",
        value in arb_json(),
    ) {
        let known = ["prompt", "cwd", "run_name", "async", "permissions", "sandbox",
            "approval_policy", "model", "reasoning_effort", "timeout_ms"];
        prop_assume!(!known.contains(&name.as_str()));
        let mut arguments = arguments;
        arguments.insert(name.clone(), value);
        match check_arguments("codex_run", &arguments) {
            Err(ArgumentError::Unknown { name: named, .. }) => {
                prop_assert!(name.starts_with(named.trim_end_matches('…')));
            }
            other => prop_assert!(false, "expected an unknown argument, got {:?}", other),
        }
    }

    /// Any bytes on stdin: a verdict, never a panic; a line that is not
    /// UTF-8 is always a parse error.
    #[test]
    fn any_line_gets_a_verdict(line in prop::collection::vec(any::<u8>(), 0..200)) {
        let verdict = framing::classify(&line);
        if std::str::from_utf8(&line).is_err() {
            let Verdict::Refuse(answer) = verdict else {
                return Err(TestCaseError::fail("invalid UTF-8 passed"));
            };
            prop_assert_eq!(&answer["error"]["code"], &json!(PARSE_ERROR));
        }
    }

    /// Any JSON message shape: objects with a request method and an id
    /// pass, everything that is not an object is refused as invalid.
    #[test]
    fn json_lines_are_refused_only_for_their_shape(value in arb_json(), id in any::<i64>()) {
        let line = value.to_string();
        match (&value, framing::classify(line.as_bytes())) {
            (Value::Object(_), Verdict::Refuse(answer)) => {
                prop_assert_eq!(&answer["error"]["code"], &json!(INVALID_REQUEST));
                prop_assert!(value.get("id").is_none());
            }
            (Value::Object(_), Verdict::Pass) => {}
            (_, Verdict::Refuse(answer)) => {
                prop_assert_eq!(&answer["error"]["code"], &json!(INVALID_REQUEST));
            }
            (_, Verdict::Pass) => prop_assert!(false, "a non-object passed: {}", line),
        }
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": value});
        prop_assert_eq!(framing::classify(request.to_string().as_bytes()), Verdict::Pass);
    }

    /// A run id that parses is exactly 26 characters of digits, lowercase
    /// hex and dashes: never a path, never a dot.
    #[test]
    fn a_run_id_that_parses_names_no_path(text in any::<String>()) {
        if let Ok(run_id) = RunId::parse(&text) {
            prop_assert_eq!(run_id.as_ref().len(), 26);
            prop_assert!(run_id
                .as_ref()
                .bytes()
                .all(|byte| byte == b'-' || byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)));
        }
    }

    /// The same, for strings close to a run id: one byte of a real id
    /// changed.
    #[test]
    fn a_run_id_with_one_byte_changed(at in 0usize..26, byte in any::<u8>()) {
        let mut bytes = RunId::generate().as_ref().as_bytes().to_vec();
        bytes[at] = byte;
        if let Ok(text) = String::from_utf8(bytes)
            && let Ok(run_id) = RunId::parse(&text)
        {
            prop_assert!(!run_id.as_ref().contains(['/', '.', '\\']));
            prop_assert_eq!(run_id.as_ref(), text.as_str());
        }
    }
}
