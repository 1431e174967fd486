//! The dispatcher through its `tower::Service` interface: requests sealed by lark-testkit's
//! signer exactly as the platform sends them.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use lark_auth::{app_ticket_key, ManualClock, MemoryStore, TokenStore};
use lark_events::crypto::{event_signature, Cipher};
use lark_events::{
    CardResponse, CardStyle, Event, EventContext, EventDispatcher, EventDispatcherBuilder, EventErrorKind,
    InlinePreview, Outcome, Schema, ToastKind, UrlPreviewResponse, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use lark_testkit::events::{text_message, EventSigner, SignedBody};
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;

const KEY: &str = "encrypt-key-abc";
const TOKEN: &str = "verification-token-xyz";
const URL: &str = "http://127.0.0.1/webhook/event";

fn signer() -> EventSigner {
    EventSigner::new().encrypt_key(KEY).verification_token(TOKEN)
}

fn builder() -> EventDispatcherBuilder {
    EventDispatcher::builder().encrypt_key(KEY).verification_token(TOKEN)
}

async fn send_request<B>(d: &EventDispatcher, req: Request<B>) -> (u16, Value)
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<lark_events::BoxError>,
{
    let resp = d.clone().oneshot(req).await.unwrap_or_else(|never| match never {});
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/json; charset=utf-8");
    let body = resp.into_body().collect().await.unwrap_or_else(|never| match never {}).to_bytes();
    (status, serde_json::from_slice(&body).expect("every answer is JSON"))
}

async fn send(d: &EventDispatcher, signed: &SignedBody) -> (u16, Value) {
    send_request(d, signed.to_request(URL)).await
}

/// Counts handler calls.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Deserialize, Debug)]
struct MessageReceive {
    message: Message,
}

#[derive(Deserialize, Debug)]
struct Message {
    message_id: String,
    content: String,
}

impl Event for MessageReceive {
    const EVENT_TYPE: &'static str = "im.message.receive_v1";
}

/// A 1.0 model that lists envelope fields, as the 1.0 models in events.json do.
#[derive(Deserialize, Debug)]
struct AppTicket {
    uuid: String,
    token: String,
    ts: String,
    #[serde(rename = "type")]
    kind: String,
    app_id: String,
    app_ticket: String,
}

impl Event for AppTicket {
    const EVENT_TYPE: &'static str = "app_ticket";
}

fn counting(calls: &Calls) -> EventDispatcherBuilder {
    let c = calls.clone();
    builder().on::<MessageReceive, _, _>(move |_ctx, _ev| {
        let c = c.clone();
        async move {
            c.hit();
            Ok(())
        }
    })
}

fn message_event(s: &EventSigner, text: &str) -> Value {
    s.event_v2("im.message.receive_v1", text_message("om_1", "oc_1", "ou_1", text))
}

#[tokio::test]
async fn url_check_is_answered_plain_and_encrypted() {
    let plain = EventDispatcher::builder().verification_token(TOKEN).build().unwrap();
    let s = EventSigner::new().verification_token(TOKEN);
    assert_eq!(send(&plain, &s.seal(&s.url_check("c-1"))).await, (200, json!({"challenge": "c-1"})));

    let d = builder().build().unwrap();
    let sealed = signer().seal(&signer().url_check("c-2"));
    assert_eq!(send(&d, &sealed).await, (200, json!({"challenge": "c-2"})));
    // The platform may send the check without signature headers: still answered.
    let unsigned = SignedBody { signature: None, ..sealed };
    assert_eq!(send(&d, &unsigned).await, (200, json!({"challenge": "c-2"})));
}

#[tokio::test]
async fn url_check_with_a_wrong_token_is_refused() {
    let d = builder().build().unwrap();
    let s = EventSigner::new().encrypt_key(KEY).verification_token("other");
    let (status, body) = send(&d, &s.seal(&s.url_check("c"))).await;
    assert_eq!((status, body["msg"].as_str()), (401, Some("bad verification token")));
}

#[tokio::test]
async fn typed_v2_event_reaches_its_handler_with_the_context() {
    let seen: Arc<Mutex<Vec<(EventContext, MessageReceive)>>> = Arc::default();
    let client = lark_services::Client::builder("cli_a1b2c3d4e5f6a7b8", "s").build().unwrap();
    let d = builder()
        .client(client)
        .on::<MessageReceive, _, _>({
            let seen = seen.clone();
            move |ctx, ev| {
                seen.lock().unwrap().push((ctx, ev));
                async { Ok(()) }
            }
        })
        .build()
        .unwrap();
    let s = signer().tenant_key("t-42");
    let envelope = message_event(&s, "héllo");
    assert_eq!(send(&d, &s.seal(&envelope)).await, (200, json!({"msg": "success"})));

    let seen = seen.lock().unwrap();
    let (ctx, ev) = &seen[0];
    assert_eq!(seen.len(), 1);
    assert_eq!(ev.message.message_id, "om_1");
    assert_eq!(serde_json::from_str::<Value>(&ev.message.content).unwrap()["text"], "héllo");
    assert_eq!(ctx.schema(), Schema::V2);
    assert_eq!(ctx.event_type(), "im.message.receive_v1");
    assert_eq!(ctx.event_id(), envelope["header"]["event_id"].as_str());
    assert_eq!(ctx.tenant_key(), Some("t-42"));
    assert_eq!(ctx.app_id(), Some("cli_a1b2c3d4e5f6a7b8"));
    let created: u64 = envelope["header"]["create_time"].as_str().unwrap().parse().unwrap();
    assert_eq!(ctx.create_time_ms(), Some(created));
    assert_eq!(ctx.raw_json().unwrap(), envelope, "raw() is the decrypted envelope");
    assert_eq!(ctx.client().map(|c| c.tokens().app_id()), Some("cli_a1b2c3d4e5f6a7b8"));
    let shown = format!("{ctx:?}");
    assert!(!shown.contains(TOKEN) && !shown.contains("héllo"), "{shown}");
}

#[tokio::test]
async fn v1_events_are_routed_with_their_envelope_fields() {
    let tickets: Arc<Mutex<Vec<(EventContext, AppTicket)>>> = Arc::default();
    let raw: Arc<Mutex<Vec<Value>>> = Arc::default();
    let d = builder()
        .on::<AppTicket, _, _>({
            let tickets = tickets.clone();
            move |ctx, ev| {
                tickets.lock().unwrap().push((ctx, ev));
                async { Ok(()) }
            }
        })
        .on_raw("order_paid", {
            let raw = raw.clone();
            move |_ctx, ev| {
                raw.lock().unwrap().push(ev);
                async { Ok(()) }
            }
        })
        .build()
        .unwrap();
    let s = signer();
    let envelope = s.app_ticket("ticket-1");
    assert_eq!(send(&d, &s.seal(&envelope)).await.0, 200);
    let order = s.event_v1(json!({"type": "order_paid", "order_id": "o1"}));
    assert_eq!(send(&d, &s.seal(&order)).await.0, 200);

    let tickets = tickets.lock().unwrap();
    let (ctx, ticket) = &tickets[0];
    assert_eq!(ticket.app_ticket, "ticket-1");
    assert_eq!(ticket.kind, "app_ticket");
    assert_eq!(ticket.app_id, "cli_a1b2c3d4e5f6a7b8");
    assert_eq!(Some(ticket.uuid.as_str()), envelope["uuid"].as_str());
    assert_eq!(ticket.token, TOKEN);
    assert_eq!(Some(ticket.ts.as_str()), envelope["ts"].as_str());
    assert_eq!(ctx.schema(), Schema::V1);
    assert_eq!(ctx.event_id(), envelope["uuid"].as_str());
    assert!(ctx.create_time_ms().is_some());
    let raw = raw.lock().unwrap();
    assert_eq!(raw[0], order["event"], "raw handlers get the event object as sent");
}

#[tokio::test]
async fn unknown_types_are_acknowledged_and_not_dispatched() {
    let calls = Calls::default();
    let d = counting(&calls).build().unwrap();
    let s = signer();
    for envelope in [s.event_v2("contact.user.created_v3", json!({})), s.event_v1(json!({"type": "x"}))] {
        assert_eq!(send(&d, &s.seal(&envelope)).await, (200, json!({"msg": "success"})));
        let sealed = s.seal(&envelope);
        assert_eq!(d.handle_webhook(&sealed.headers(), sealed.body).await.unwrap(), Outcome::Unhandled);
    }
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn a_failing_handler_gets_500_and_its_retry_is_dispatched() {
    let calls = Calls::default();
    let c = calls.clone();
    let d = builder()
        .dedup()
        .on::<MessageReceive, _, _>(move |_ctx, _ev| {
            let c = c.clone();
            async move {
                c.hit();
                if c.get() == 1 {
                    return Err("database down".into());
                }
                Ok(())
            }
        })
        .on_raw("panics_v1", |_ctx, _ev| async { panic!("handler bug") })
        .build()
        .unwrap();
    let s = signer();
    let envelope = message_event(&s, "hi");
    assert_eq!(send(&d, &s.seal(&envelope)).await, (500, json!({"msg": "handler failed"})));
    assert_eq!(send(&d, &s.seal(&envelope)).await, (200, json!({"msg": "success"})));
    assert_eq!(send(&d, &s.seal(&envelope)).await, (200, json!({"msg": "success"})), "now a duplicate");
    assert_eq!(calls.get(), 2);

    let (status, _) = send(&d, &s.seal(&s.event_v2("panics_v1", json!({})))).await;
    assert_eq!(status, 500, "a panicking handler is a failure, not a crash");
}

#[tokio::test]
async fn a_handler_closure_that_panics_before_its_future_gets_500_with_or_without_dedup() {
    fn closure_panics(
        _ctx: EventContext,
        _ev: serde_json::Value,
    ) -> std::future::Ready<Result<(), lark_events::BoxError>> {
        panic!("bug in the closure itself")
    }
    let s = signer();
    for dedup in [false, true] {
        let b = builder().on_raw("closure_panics_v1", closure_panics);
        let d = if dedup { b.dedup() } else { b }.build().unwrap();
        let envelope = s.event_v2("closure_panics_v1", json!({}));
        assert_eq!(
            send(&d, &s.seal(&envelope)).await,
            (500, json!({"msg": "handler failed"})),
            "dedup {dedup}"
        );
        // Not marked as seen: the platform's retry is dispatched (and fails the same way).
        assert_eq!(send(&d, &s.seal(&envelope)).await.0, 500, "dedup {dedup}");
    }
}

#[tokio::test]
async fn an_abandoned_delivery_releases_its_dedup_mark_so_the_retry_is_dispatched() {
    let store = Arc::new(MemoryStore::new());
    let calls = Calls::default();
    let started = Arc::new(tokio::sync::Notify::new());
    let (c, st) = (calls.clone(), started.clone());
    let d = builder()
        .token_store(store.clone())
        .dedup()
        .on::<MessageReceive, _, _>(move |_ctx, _ev| {
            let (c, st) = (c.clone(), st.clone());
            async move {
                c.hit();
                if c.get() == 1 {
                    // The first delivery hangs until it is abandoned (the platform gave up on
                    // the request, or the long connection's ack timeout cancelled it).
                    st.notify_one();
                    std::future::pending::<()>().await;
                }
                Ok(())
            }
        })
        .build()
        .unwrap();
    let s = signer();
    let envelope = message_event(&s, "hi");
    let event_id = envelope["header"]["event_id"].as_str().unwrap().to_owned();
    let key = format!("event_seen:{event_id}");

    let first = tokio::spawn({
        let (d, body) = (d.clone(), s.seal(&envelope));
        async move { send(&d, &body).await }
    });
    started.notified().await;
    assert!(store.get(&key).await.unwrap().is_some(), "the mark is taken while the handler runs");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    // The mark is released by a task the dropped delivery spawned: let it run (bounded).
    let mut released = false;
    for _ in 0..1_000 {
        if store.get(&key).await.unwrap().is_none() {
            released = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(released, "the abandoned delivery's dedup mark was not released");
    assert_eq!(send(&d, &s.seal(&envelope)).await, (200, json!({"msg": "success"})));
    assert_eq!(calls.get(), 2, "the platform's retry is dispatched");
    assert_eq!(send(&d, &s.seal(&envelope)).await, (200, json!({"msg": "success"})));
    assert_eq!(calls.get(), 2, "and a later duplicate is not");
}

/// Flips one byte of `b` at `i`.
fn flip(b: &Bytes, i: usize) -> Bytes {
    let mut v = b.to_vec();
    v[i] ^= 0x01;
    Bytes::from(v)
}

#[tokio::test]
async fn tampered_deliveries_are_refused_and_nothing_is_dispatched() {
    let calls = Calls::default();
    let d = counting(&calls).build().unwrap();
    let s = signer();
    let good = s.seal(&message_event(&s, "hi"));
    let sig = good.signature.clone().unwrap();
    let mut other_sig = sig.clone().into_bytes();
    other_sig[0] = if other_sig[0] == b'0' { b'1' } else { b'0' };
    let tampered = [
        ("body", SignedBody { body: flip(&good.body, good.body.len() / 2), ..good.clone() }),
        ("signature", SignedBody { signature: Some(String::from_utf8(other_sig).unwrap()), ..good.clone() }),
        (
            "timestamp",
            SignedBody {
                timestamp: (good.timestamp.parse::<u64>().unwrap() + 1).to_string(),
                ..good.clone()
            },
        ),
        ("nonce", SignedBody { nonce: format!("{}x", good.nonce), ..good.clone() }),
        ("no signature", SignedBody { signature: None, ..good.clone() }),
        ("short signature", SignedBody { signature: Some(sig[..10].to_owned()), ..good.clone() }),
    ];
    for (what, delivery) in &tampered {
        let (status, body) = send(&d, delivery).await;
        assert_eq!((status, body["msg"].as_str()), (401, Some("bad signature")), "{what}");
    }
    // Correctly signed, but with another verification token inside.
    let wrong_token = EventSigner::new().encrypt_key(KEY).verification_token("forged");
    let (status, body) = send(&d, &wrong_token.seal(&message_event(&wrong_token, "hi"))).await;
    assert_eq!((status, body["msg"].as_str()), (401, Some("bad verification token")));
    assert_eq!(calls.get(), 0, "nothing was dispatched");
    assert_eq!(send(&d, &good).await.0, 200, "the untampered delivery is accepted");
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn signatures_cover_the_raw_bytes_with_whitespace_and_unicode_kept() {
    let texts: Arc<Mutex<Vec<String>>> = Arc::default();
    let d = builder()
        .on::<MessageReceive, _, _>({
            let texts = texts.clone();
            move |_ctx, ev| {
                texts.lock().unwrap().push(ev.message.content);
                async { Ok(()) }
            }
        })
        .build()
        .unwrap();
    let s = signer();
    let envelope = message_event(&s, "naïve 日本語 \u{1F600}");
    let pretty = serde_json::to_string_pretty(&envelope).unwrap() + "\n";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();

    // Unencrypted but signed, pretty-printed with raw unicode: verified as sent.
    let plain_signer = EventSigner::new().verification_token(TOKEN);
    let sent = plain_signer.seal_bytes(pretty.as_bytes(), now);
    let signature = event_signature(&sent.timestamp, &sent.nonce, KEY, pretty.as_bytes());
    let sent = SignedBody { signature: Some(signature), ..sent };
    assert_eq!(send(&d, &sent).await.0, 200);

    // The same JSON re-serialised (compact, escapes) no longer matches the signature.
    let compact = SignedBody { body: Bytes::from(envelope.to_string()), ..sent.clone() };
    assert_eq!(send(&d, &compact).await.0, 401);

    // An encrypted body with odd whitespace around the ciphertext.
    let encrypted = format!("{{ \"encrypt\" :\n  \"{}\" }}\n", Cipher::new(KEY).encrypt(pretty.as_bytes()));
    let signature = event_signature("1", "n", KEY, encrypted.as_bytes());
    let sent = SignedBody {
        body: Bytes::from(encrypted),
        timestamp: "1".into(),
        nonce: "n".into(),
        signature: Some(signature),
    };
    assert_eq!(send(&d, &sent).await.0, 200);
    let texts = texts.lock().unwrap();
    assert_eq!(texts.len(), 2);
    for t in texts.iter() {
        assert_eq!(serde_json::from_str::<Value>(t).unwrap()["text"], "naïve 日本語 \u{1F600}");
    }
}

#[tokio::test]
async fn without_an_encrypt_key_the_token_is_checked_on_every_event() {
    let calls = Calls::default();
    let c = calls.clone();
    let d = EventDispatcher::builder()
        .verification_token(TOKEN)
        .on::<MessageReceive, _, _>(move |_ctx, _ev| {
            c.hit();
            async { Ok(()) }
        })
        .build()
        .unwrap();
    let forged = EventSigner::new();
    let (status, _) = send(&d, &forged.seal(&message_event(&forged, "x"))).await;
    assert_eq!(status, 401, "no token");
    let forged = EventSigner::new().verification_token("guess");
    assert_eq!(send(&d, &forged.seal(&message_event(&forged, "x"))).await.0, 401);
    let v1 = forged.event_v1(json!({"type": "x"}));
    assert_eq!(send(&d, &forged.seal(&v1)).await.0, 401, "1.0 events too");
    assert_eq!(calls.get(), 0);
    let real = EventSigner::new().verification_token(TOKEN);
    assert_eq!(send(&d, &real.seal(&message_event(&real, "x"))).await.0, 200);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn a_duplicate_delivery_is_dispatched_once() {
    let calls = Calls::default();
    let c = calls.clone();
    let d = counting(&calls)
        .dedup()
        .on_raw("order_paid", move |_ctx, _ev| {
            c.hit();
            async { Ok(()) }
        })
        .build()
        .unwrap();
    let s = signer();
    for envelope in [message_event(&s, "once"), s.event_v1(json!({"type": "order_paid"}))] {
        for _ in 0..3 {
            // Each retry is sealed afresh (new IV, timestamp, nonce), as the platform does.
            assert_eq!(send(&d, &s.seal(&envelope)).await, (200, json!({"msg": "success"})));
        }
    }
    assert_eq!(calls.get(), 2);
    let outcome = d.handle_plain(Bytes::from(message_event(&s, "x").to_string())).await.unwrap();
    assert_eq!(outcome, Outcome::Handled);
}

#[tokio::test]
async fn duplicates_across_two_dispatchers_sharing_redis_are_dispatched_once() {
    let Some(redis) = lark_testkit::redis_server::RedisServer::start() else { return };
    let calls = Calls::default();
    let mut dispatchers = Vec::new();
    for _ in 0..2 {
        let store = lark_auth::RedisStore::builder(&redis.url()).connect().await.unwrap();
        dispatchers.push(counting(&calls).token_store(Arc::new(store)).dedup().build().unwrap());
    }
    let s = signer();
    let envelope = message_event(&s, "once");
    assert_eq!(send(&dispatchers[0], &s.seal(&envelope)).await.0, 200);
    assert_eq!(send(&dispatchers[1], &s.seal(&envelope)).await.0, 200);
    assert_eq!(calls.get(), 1);

    // Concurrent deliveries of one new event to both instances: still one dispatch.
    let envelope = message_event(&s, "race");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let d = dispatchers[i % 2].clone();
        let req = s.seal(&envelope).to_request(URL);
        tasks.push(tokio::spawn(async move {
            let reply = d.oneshot(req).await.unwrap_or_else(|n| match n {});
            let status = reply.status();
            let body = reply.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn the_replay_window_refuses_old_and_future_timestamps() {
    let calls = Calls::default();
    let clock = ManualClock::new();
    let d = counting(&calls)
        .replay_window(Duration::from_secs(300))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let s = signer();
    let now = clock.now_secs();
    let at = |ts: u64| s.seal_bytes(message_event(&s, "x").to_string().as_bytes(), ts);
    assert_eq!(send(&d, &at(now)).await.0, 200);
    assert_eq!(send(&d, &at(now - 299)).await.0, 200);
    assert_eq!(send(&d, &at(now + 299)).await.0, 200);
    let (status, body) = send(&d, &at(now - 301)).await;
    assert_eq!((status, body["msg"].as_str()), (401, Some("request timestamp outside the replay window")));
    assert_eq!(send(&d, &at(now + 301)).await.0, 401);
    // A delivery captured now and replayed ten minutes later.
    let captured = at(now);
    clock.advance(Duration::from_secs(600));
    assert_eq!(send(&d, &captured).await.0, 401);
    assert_eq!(calls.get(), 3);

    // Without signatures, a delivery must still carry a timestamp.
    let plain = EventDispatcher::builder()
        .replay_window(Duration::from_secs(300))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let unsigned = EventSigner::new();
    let mut req = unsigned.seal(&message_event(&unsigned, "x")).to_request(URL);
    req.headers_mut().remove(TIMESTAMP_HEADER);
    assert_eq!(send_request(&plain, req).await.0, 401);
}

trait NowSecs {
    fn now_secs(&self) -> u64;
}

impl NowSecs for ManualClock {
    fn now_secs(&self) -> u64 {
        lark_auth::Clock::now_unix_ms(self) / 1000
    }
}

#[tokio::test]
async fn legacy_card_callbacks_are_verified_with_sha1_and_answered() {
    let seen: Arc<Mutex<Vec<(EventContext, lark_events::CardAction)>>> = Arc::default();
    let d = builder()
        .on_card_action({
            let seen = seen.clone();
            move |ctx, action| {
                let answer = match action.action.value["do"].as_str() {
                    Some("toast") => CardResponse::toast(ToastKind::Info, "noted"),
                    _ => CardResponse::card(json!({"elements": [{"tag": "markdown", "content": "done"}]})),
                };
                seen.lock().unwrap().push((ctx, action));
                async move { Ok(answer) }
            }
        })
        .build()
        .unwrap();
    for s in [signer(), EventSigner::new().verification_token(TOKEN)] {
        let body = s.legacy_card_action("ou_9", "om_9", json!({"do": "card"}));
        let (status, answer) = send(&d, &s.seal_legacy_card(&body)).await;
        assert_eq!((status, answer), (200, json!({"elements": [{"tag": "markdown", "content": "done"}]})));
        let body = s.legacy_card_action("ou_9", "om_9", json!({"do": "toast"}));
        let (_, answer) = send(&d, &s.seal_legacy_card(&body)).await;
        assert_eq!(answer, json!({"toast": {"type": "info", "content": "noted"}}));
    }
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        let (ctx, action) = &seen[0];
        assert_eq!(ctx.schema(), Schema::LegacyCard);
        assert_eq!(ctx.event_type(), lark_events::LEGACY_CARD_ACTION);
        assert_eq!(action.style, CardStyle::Legacy);
        assert_eq!(action.operator.open_id.as_deref(), Some("ou_9"));
        assert_eq!(action.context.open_message_id.as_deref(), Some("om_9"));
    }
    // A wrong SHA-1, a SHA-1 under another token, and no signature: refused.
    let s = EventSigner::new().verification_token(TOKEN);
    let good = s.seal_legacy_card(&s.legacy_card_action("ou_9", "om_9", json!({})));
    let forged = EventSigner::new().verification_token("guess");
    for bad in [
        SignedBody { body: flip(&good.body, 5), ..good.clone() },
        forged.seal_legacy_card(&forged.legacy_card_action("ou_9", "om_9", json!({}))),
        SignedBody { signature: None, ..good.clone() },
    ] {
        assert_eq!(send(&d, &bad).await.0, 401);
    }
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn card_action_trigger_is_answered_with_toast_and_card() {
    let d = builder()
        .on_card_action(|ctx, action| async move {
            assert_eq!(ctx.event_type(), "card.action.trigger");
            assert_eq!(action.style, CardStyle::Trigger);
            let n = action.action.value["n"].as_i64().unwrap_or(0);
            Ok(CardResponse::toast(ToastKind::Success, format!("clicked {n}"))
                .with_card(json!({"elements": [{"tag": "markdown", "content": format!("count {}", n + 1)}]})))
        })
        .build()
        .unwrap();
    let s = signer();
    let (status, answer) = send(&d, &s.seal(&s.card_action_trigger("ou_1", "om_1", json!({"n": 1})))).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({
            "toast": {"type": "success", "content": "clicked 1"},
            "card": {"type": "raw", "data": {"elements": [{"tag": "markdown", "content": "count 2"}]}},
        })
    );
}

#[tokio::test]
async fn link_previews_are_answered() {
    let d = builder()
        .on_url_preview(|_ctx, preview| async move {
            let url = preview.context.url.unwrap_or_default();
            Ok(UrlPreviewResponse::inline(InlinePreview::new(format!("Preview of {url}"))))
        })
        .build()
        .unwrap();
    let s = signer();
    let (status, answer) = send(&d, &s.seal(&s.url_preview("ou_1", "https://example.com/x"))).await;
    assert_eq!((status, answer), (200, json!({"inline": {"title": "Preview of https://example.com/x"}})));
}

#[tokio::test]
async fn callbacks_without_handlers_are_acknowledged_with_an_empty_object() {
    let d = builder().build().unwrap();
    let s = signer();
    assert_eq!(send(&d, &s.seal(&s.card_action_trigger("ou", "om", json!({})))).await, (200, json!({})));
    assert_eq!(send(&d, &s.seal(&s.url_preview("ou", "https://x"))).await, (200, json!({})));
    let legacy = s.seal_legacy_card(&s.legacy_card_action("ou", "om", json!({})));
    assert_eq!(send(&d, &legacy).await, (200, json!({})));
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let calls = Calls::default();
    let d = counting(&calls).body_limit(4096).build().unwrap();
    let s = signer();
    let big = s.seal(&message_event(&s, &"x".repeat(5000)));
    let (status, body) = send(&d, &big).await;
    assert_eq!((status, body["msg"].as_str()), (413, Some("body too large")));

    // Streamed with no Content-Length: cut off while reading.
    let chunks: Vec<Result<http_body::Frame<Bytes>, Infallible>> =
        big.body.chunks(1000).map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c)))).collect();
    let mut req = Request::new(StreamBody::new(futures_util::stream::iter(chunks)));
    *req.method_mut() = http::Method::POST;
    *req.headers_mut() = big.headers();
    assert_eq!(send_request(&d, req).await.0, 413);

    // The default limit is 1 MiB.
    let d = builder().build().unwrap();
    let over = SignedBody { body: Bytes::from(vec![b' '; (1 << 20) + 1]), ..big.clone() };
    assert_eq!(send(&d, &over).await.0, 413);
    assert_eq!(d.handle_plain(over.body).await.unwrap_err().kind(), EventErrorKind::BodyTooLarge);
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn garbage_gets_400() {
    let calls = Calls::default();
    let d = counting(&calls).build().unwrap();
    // Signed garbage: the signature holds, the content does not.
    let signed = |body: &[u8]| SignedBody {
        body: Bytes::copy_from_slice(body),
        timestamp: "1".into(),
        nonce: "n".into(),
        signature: Some(event_signature("1", "n", KEY, body)),
    };
    let cipher = Cipher::new(KEY);
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"[1,2]".to_vec(),
        b"{}".to_vec(),
        b"{\"encrypt\":\"!!!\"}".to_vec(),
        b"{\"encrypt\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}".to_vec(),
        format!("{{\"encrypt\":\"{}\"}}", cipher.encrypt(b"not json inside")).into_bytes(),
        format!("{{\"encrypt\":\"{}\"}}", cipher.encrypt(b"{\"schema\":\"2.0\"}")).into_bytes(),
        vec![0xff, 0xfe, 0x00],
    ];
    for body in &bodies {
        let (status, answer) = send(&d, &signed(body)).await;
        assert_eq!((status, answer["msg"].as_str()), (400, Some("malformed delivery")), "{body:?}");
    }
    // An event that does not match its typed model.
    let s = signer();
    let wrong = s.event_v2("im.message.receive_v1", json!({"message": {"message_id": 5}}));
    assert_eq!(send(&d, &s.seal(&wrong)).await.0, 400);
    // Encrypted, but this dispatcher has no Encrypt Key.
    let keyless = EventDispatcher::builder().build().unwrap();
    assert_eq!(send(&keyless, &s.seal(&message_event(&s, "x"))).await.0, 400);
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn the_app_ticket_is_stored_in_the_token_store() {
    let store = Arc::new(MemoryStore::new());
    let d = builder().token_store(store.clone()).build().unwrap();
    let s = signer().app_id("cli_market");
    assert_eq!(send(&d, &s.seal(&s.app_ticket("tkt-1"))).await, (200, json!({"msg": "success"})));
    assert_eq!(store.get(&app_ticket_key("cli_market")).await.unwrap().as_deref(), Some("tkt-1"));
    assert_eq!(send(&d, &s.seal(&s.app_ticket("tkt-2"))).await.0, 200);
    assert_eq!(store.get(&app_ticket_key("cli_market")).await.unwrap().as_deref(), Some("tkt-2"));
    let broken = s.event_v1(json!({"type": "app_ticket", "app_id": "cli_market"}));
    assert_eq!(send(&d, &s.seal(&broken)).await.0, 400);
}

#[tokio::test]
async fn a_marketplace_client_mints_tokens_from_a_ticket_another_instance_received() {
    let Some(redis) = lark_testkit::redis_server::RedisServer::start() else { return };
    let platform = lark_testkit::FakePlatform::start().await;
    let instance = || async {
        let store = lark_auth::RedisStore::builder(&redis.url()).key_prefix("isv:").connect().await.unwrap();
        lark_services::Client::builder(platform.app_id(), platform.app_secret())
            .base_url(platform.base_url())
            .marketplace()
            .token_store(store)
            .build()
            .unwrap()
    };
    let (a, b) = (instance().await, instance().await);
    let receiver = builder().client(a).build().unwrap();

    // Instance B has no ticket yet: a clear error (and a resend request).
    let err = b.tokens().app_access_token().await.unwrap_err();
    assert!(err.to_string().contains("app_ticket"), "{err}");

    let s = signer().app_id(platform.app_id());
    let ticket = platform.issue_app_ticket();
    assert_eq!(send(&receiver, &s.seal(&s.app_ticket(&ticket))).await.0, 200);
    b.tokens().app_access_token().await.expect("B mints an app token with the ticket A received");
    let sent = b
        .post("/open-apis/im/v1/messages")
        .query("receive_id_type", "open_id")
        .tenant_key("tenant_a")
        .json(&json!({"receive_id": "ou_1", "msg_type": "text", "content": "{\"text\":\"hi\"}"}))
        .send_json()
        .await
        .unwrap();
    assert!(sent["message_id"].as_str().is_some());
    assert_eq!(platform.sent_messages()[0]["tenant_key"], "tenant_a");
}

#[tokio::test]
async fn plain_json_from_an_authenticated_source_is_dispatched_without_crypto() {
    let calls = Calls::default();
    let d = counting(&calls)
        .on_card_action(|_ctx, _a| async { Ok(CardResponse::toast(ToastKind::Info, "hi")) })
        .build()
        .unwrap();
    let s = EventSigner::new();
    let event = Bytes::from(message_event(&s, "x").to_string());
    assert_eq!(d.handle_plain(event).await.unwrap(), Outcome::Handled);
    let card = Bytes::from(s.card_action_trigger("ou", "om", json!({})).to_string());
    let Outcome::Replied(body) = d.handle_plain(card).await.unwrap() else {
        panic!("a callback is answered")
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"toast": {"type": "info", "content": "hi"}})
    );
    assert_eq!(
        d.handle_plain(Bytes::from_static(b"nope")).await.unwrap_err().kind(),
        EventErrorKind::Malformed
    );
    assert_eq!(calls.get(), 1);
}

#[test]
fn the_builder_names_configuration_mistakes() {
    let twice = builder()
        .on_raw("a.b_v1", |_c, _e| async { Ok(()) })
        .on_raw("a.b_v1", |_c, _e| async { Ok(()) })
        .build()
        .unwrap_err();
    assert!(twice.to_string().contains("two handlers are registered for `a.b_v1`"), "{twice}");
    let clash = builder()
        .on_card_action(|_c, _a| async { Ok(CardResponse::empty()) })
        .on_raw("card.action.trigger", |_c, _e| async { Ok(()) })
        .build()
        .unwrap_err();
    assert!(clash.to_string().contains("card.action.trigger"), "{clash}");
    let empty = EventDispatcher::builder().encrypt_key("").build().unwrap_err();
    assert!(empty.to_string().contains("encrypt key is empty"), "{empty}");
    assert!(EventDispatcher::builder().body_limit(0).build().is_err());
}

#[tokio::test]
async fn secrets_never_show_in_debug_or_errors() {
    let d = builder().dedup().build().unwrap();
    let mut text = format!("{d:?} {:?}", builder());
    let s = EventSigner::new().encrypt_key(KEY).verification_token("forged-token-value");
    let sealed = s.seal(&s.url_check("c"));
    let err = d.handle_webhook(&sealed.headers(), sealed.body.clone()).await.unwrap_err();
    assert_eq!(err.kind(), EventErrorKind::BadToken);
    text.push_str(&format!("{err} {err:?} {}", String::from_utf8_lossy(&err.body())));
    let mut headers = sealed.headers();
    headers.insert(SIGNATURE_HEADER, http::HeaderValue::from_static("00"));
    let err = d.handle_webhook(&headers, sealed.body).await.unwrap_err();
    assert_eq!(err.kind(), EventErrorKind::BadSignature);
    text.push_str(&format!("{err} {err:?}"));
    for secret in [KEY, TOKEN, "forged-token-value"] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test]
async fn generated_models_are_dispatched() {
    use lark_events::generated::im::MessageReceiveV1;
    use lark_events::generated::legacy::AppTicket as GeneratedAppTicket;

    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let d = builder()
        .on::<MessageReceiveV1, _, _>({
            let seen = seen.clone();
            move |_ctx, ev| {
                let message = ev.message.unwrap_or_default();
                seen.lock().unwrap().push(format!("{:?} {:?}", message.message_id, message.chat_type));
                async { Ok(()) }
            }
        })
        .on::<GeneratedAppTicket, _, _>({
            let seen = seen.clone();
            move |_ctx, ev| {
                let ticket = ev.app_ticket.map(|t| t.expose_secret().to_owned());
                let has_envelope_fields = ev.uuid.is_some() && ev.ts.is_some() && ev.token.is_some();
                seen.lock().unwrap().push(format!("{ticket:?} {has_envelope_fields}"));
                async { Ok(()) }
            }
        })
        .build()
        .unwrap();
    let s = signer();
    assert_eq!(send(&d, &s.seal(&message_event(&s, "x"))).await.0, 200);
    assert_eq!(send(&d, &s.seal(&s.app_ticket("tkt-9"))).await.0, 200);
    assert_eq!(*seen.lock().unwrap(), ["Some(\"om_1\") Some(\"p2p\")", "Some(\"tkt-9\") true"]);
}
