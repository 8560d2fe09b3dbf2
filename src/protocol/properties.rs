//! Property tests of the app-server decoders: whatever a frame holds,
//! decoding it never panics, and what we frame decodes back to itself. The
//! fuzz targets in `fuzz/` run the same decoders for longer; these run in
//! every `cargo test`. Also home to [`arb_json`], the JSON generator other
//! modules' properties share.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::events::{NotificationKind, ServerNotification, ServerRequest};
use super::jsonrpc::{
    FrameError, Incoming, RequestId, RpcError, error_frame, notification_frame, request_frame,
    response_frame,
};

/// A few hundred cases a property: enough to find a shallow panic, fast
/// enough (well under a second each) for every `cargo test`.
pub(crate) const CASES: u32 = 256;

/// Keys the decoders look for, so generated objects reach the typed paths
/// rather than being rejected at the first field.
const KNOWN_KEYS: [&str; 16] = [
    "id",
    "method",
    "params",
    "result",
    "error",
    "threadId",
    "turnId",
    "itemId",
    "turn",
    "thread",
    "item",
    "items",
    "status",
    "type",
    "text",
    "tokenUsage",
];

/// Any JSON value, a few levels deep, with keys often ones we decode.
pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // serde_json reads some floats back one ulp off (it parses fast,
        // not exactly); those would fail round trips for a reason that is
        // not ours.
        any::<f64>().prop_filter_map("finite and read back exactly", |float| {
            let number = serde_json::Number::from_f64(float)?;
            let back: f64 = serde_json::from_str(&number.to_string()).ok()?;
            (back == float).then_some(Value::Number(number))
        }),
        any::<String>().prop_map(Value::String),
        prop::sample::select(&["completed", "agentMessage", "inProgress", ""][..])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(&KNOWN_KEYS[..]).prop_map(str::to_string),
            any::<String>(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn arb_id() -> impl Strategy<Value = RequestId> {
    prop_oneof![
        any::<i64>().prop_map(RequestId::Integer),
        any::<String>().prop_map(RequestId::String),
    ]
}

/// The methods whose params we decode into types, and some we do not.
fn arb_method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "turn/started",
                "turn/completed",
                "item/started",
                "item/completed",
                "item/agentMessage/delta",
                "thread/tokenUsage/updated",
                "error",
                "item/commandExecution/requestApproval",
                "item/fileChange/requestApproval",
                "item/permissions/requestApproval",
                "item/tool/requestUserInput",
                "mcpServer/elicitation/request",
            ][..]
        )
        .prop_map(str::to_string),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any text, as a WebSocket text frame: a message or a `FrameError`,
    /// never a panic; a refusal quotes at most 200 characters of it.
    #[test]
    fn any_text_decodes_or_is_refused(text in any::<String>()) {
        if let Err(FrameError::NotJsonRpc(quoted)) = Incoming::parse(&text) {
            prop_assert!(quoted.chars().count() <= 201);
        }
    }

    /// Any JSON: the same, and a decoded message is the kind its fields say.
    #[test]
    fn any_json_decodes_by_its_fields(value in arb_json()) {
        let text = value.to_string();
        match Incoming::parse(&text) {
            Ok(Incoming::Request { method, .. }) | Ok(Incoming::Notification { method, .. }) => {
                prop_assert_eq!(value.get("method").and_then(Value::as_str), Some(method.as_str()));
            }
            Ok(Incoming::Response { .. }) | Ok(Incoming::Error { .. }) => {
                prop_assert!(value.get("id").is_some());
                prop_assert!(value.get("method").is_none_or(Value::is_null));
            }
            Err(FrameError::NotJsonRpc(quoted)) => prop_assert!(quoted.chars().count() <= 201),
            Err(FrameError::NotJson(_)) => {}
        }
    }

    /// What we send, and what the server sends us, decodes back whole.
    #[test]
    fn framed_messages_round_trip(
        id in arb_id(),
        method in arb_method(),
        params in arb_json(),
        code in any::<i64>(),
        message in any::<String>(),
    ) {
        let request = Incoming::parse(&request_frame(&id, &method, &params)).unwrap();
        let wire_params = params.clone();
        prop_assert_eq!(request, Incoming::Request { id: id.clone(), method: method.clone(), params: wire_params });
        let notification = Incoming::parse(&notification_frame(&method, Some(&params))).unwrap();
        prop_assert_eq!(notification, Incoming::Notification { method: method.clone(), params: params.clone() });
        let response = Incoming::parse(&response_frame(&id, &params)).unwrap();
        prop_assert_eq!(response, Incoming::Response { id: id.clone(), result: params.clone() });
        // `"data": null` reads back as no data, which is what it means.
        let error = RpcError { code, message, data: (!params.is_null()).then_some(params) };
        let decoded = Incoming::parse(&error_frame(&id, &error)).unwrap();
        prop_assert_eq!(decoded, Incoming::Error { id, error });
    }

    /// The typed views keep the raw params whatever they hold, and route by
    /// the `threadId` the params name, typed or not.
    #[test]
    fn typed_views_keep_params_and_route(
        method in arb_method(),
        params in arb_json(),
        thread in any::<String>(),
        id in arb_id(),
    ) {
        let mut routed = params.clone();
        if let Value::Object(object) = &mut routed {
            object.insert("threadId".into(), json!(thread));
        }
        let note = ServerNotification::new(method.clone(), routed.clone());
        prop_assert_eq!(&note.params, &routed);
        if routed.is_object() {
            prop_assert_eq!(note.thread_id(), Some(thread.as_str()));
        }
        if let NotificationKind::TurnCompleted(event) = &note.kind {
            prop_assert_eq!(&event.thread_id, &thread);
        }
        let request = ServerRequest::new(id.clone(), method, params.clone());
        prop_assert_eq!(request.id, id);
        prop_assert_eq!(request.params, params);
    }
}
