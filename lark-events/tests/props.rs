//! Property tests: any input gives an answer (a value or a typed error), never a panic.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use lark_auth::MemoryStore;
use lark_events::crypto::{event_signature, Cipher};
use lark_events::generated::im::MessageReceiveV1;
use lark_events::generated::legacy::AppTicket;
use lark_events::{
    CardResponse, EventDispatcher, EventErrorKind, UrlPreviewResponse, NONCE_HEADER, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};
use proptest::prelude::*;
use serde_json::Value;

const KEY: &str = "prop-key";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("a runtime")
}

/// Handlers on every path, none of which fails: any error must come from the input.
fn dispatcher(encrypt_key: Option<&str>) -> EventDispatcher {
    let mut b = EventDispatcher::builder()
        .token_store(Arc::new(MemoryStore::new()))
        .dedup()
        .on::<MessageReceiveV1, _, _>(|_c, _e| async { Ok(()) })
        .on::<AppTicket, _, _>(|_c, _e| async { Ok(()) })
        .on_raw("custom_v1", |_c, _e| async { Ok(()) })
        .on_card_action(|_c, _a| async { Ok(CardResponse::empty()) })
        .on_url_preview(|_c, _p| async { Ok(UrlPreviewResponse::empty()) });
    if let Some(k) = encrypt_key {
        b = b.encrypt_key(k).verification_token("prop-token");
    }
    b.build().expect("a valid dispatcher")
}

fn input_error(kind: EventErrorKind) -> bool {
    matches!(
        kind,
        EventErrorKind::Malformed
            | EventErrorKind::BadSignature
            | EventErrorKind::BadToken
            | EventErrorKind::BodyTooLarge
    )
}

/// JSON values shaped like envelopes: the platform's field names and values, nested.
fn envelope_like() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "schema",
        "header",
        "event",
        "event_type",
        "event_id",
        "token",
        "type",
        "uuid",
        "ts",
        "challenge",
        "action",
        "encrypt",
        "create_time",
        "app_id",
        "tenant_key",
        "app_ticket",
        "value",
        "operator",
        "context",
        "message",
        "sender",
        "content",
        "x",
    ]);
    let text = prop::sample::select(vec![
        "2.0",
        "event_callback",
        "url_verification",
        "app_ticket",
        "custom_v1",
        "card.action.trigger",
        "url.preview.get",
        "im.message.receive_v1",
        "",
        "é\u{0}\"\\",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text.prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_and_headers_get_an_answer(
        body in prop::collection::vec(any::<u8>(), 0..1500),
        timestamp in prop::option::of(".{0,12}"),
        nonce in prop::option::of(".{0,12}"),
        signature in prop::option::of("[0-9a-fA-F]{0,70}"),
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in [(TIMESTAMP_HEADER, timestamp), (NONCE_HEADER, nonce), (SIGNATURE_HEADER, signature)] {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, v);
            }
        }
        let body = Bytes::from(body);
        let rt = runtime();
        for d in [dispatcher(None), dispatcher(Some(KEY))] {
            if let Err(e) = rt.block_on(d.handle_webhook(&headers, body.clone())) {
                prop_assert!(input_error(e.kind()), "{e:?}");
            }
        }
        if let Err(e) = rt.block_on(dispatcher(None).handle_plain(body)) {
            prop_assert!(input_error(e.kind()), "{e:?}");
        }
    }

    #[test]
    fn envelope_shaped_json_gets_an_answer(value in envelope_like()) {
        let body = Bytes::from(value.to_string());
        let rt = runtime();
        if let Err(e) = rt.block_on(dispatcher(None).handle_webhook(&HeaderMap::new(), body.clone())) {
            prop_assert!(input_error(e.kind()), "{e:?} for {value}");
        }
        if let Err(e) = rt.block_on(dispatcher(None).handle_plain(body)) {
            prop_assert!(input_error(e.kind()), "{e:?} for {value}");
        }
    }

    #[test]
    fn signed_and_encrypted_arbitrary_plaintext_gets_an_answer(value in envelope_like(), raw in any::<bool>()) {
        let plain = if raw { value.to_string().into_bytes().into_iter().rev().collect() } else { value.to_string().into_bytes() };
        let body = format!("{{\"encrypt\":\"{}\"}}", Cipher::new(KEY).encrypt(&plain));
        let mut headers = HeaderMap::new();
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static("1"));
        headers.insert(NONCE_HEADER, HeaderValue::from_static("n"));
        let signature = event_signature("1", "n", KEY, body.as_bytes());
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).expect("hex is a header value"));
        if let Err(e) = runtime().block_on(dispatcher(Some(KEY)).handle_webhook(&headers, Bytes::from(body))) {
            // The SHA-256 holds: the content, the token inside it, or (for an old-style card
            // body, which needs a SHA-1) the kind of signature can be wrong.
            prop_assert!(input_error(e.kind()) && e.kind() != EventErrorKind::BodyTooLarge, "{e:?}");
        }
    }
}
