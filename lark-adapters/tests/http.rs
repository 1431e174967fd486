//! One suite of real HTTP requests on loopback, run against every enabled framework: the
//! lark-testkit pusher posts as the platform does, raw TCP covers methods and paths.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lark_adapters::{CARD_PATH, EVENT_PATH};
use lark_events::crypto::event_signature;
use lark_events::{CardResponse, EventDispatcher, EventDispatcherBuilder, ToastKind};
use lark_testkit::events::{text_message, EventSigner, SignedBody};
use lark_testkit::push::EventPusher;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "adapter-encrypt-key";
const TOKEN: &str = "adapter-verification-token";

/// A running server; stops on drop.
struct Server {
    base: String,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

impl Server {
    fn pusher(&self, path: &str) -> EventPusher {
        EventPusher::new(format!("{}{path}", self.base), signer()).no_retries()
    }
}

#[cfg(feature = "axum")]
async fn start_axum(dispatcher: EventDispatcher) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(std::future::IntoFuture::into_future(axum::serve(
        listener,
        lark_adapters::axum::router(dispatcher),
    )));
    Server { base, stop: None }
}

#[cfg(feature = "warp")]
async fn start_warp(dispatcher: EventDispatcher) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(lark_adapters::warp::routes(dispatcher)).incoming(listener).run());
    Server { base, stop: None }
}

#[cfg(feature = "actix")]
async fn start_actix(dispatcher: EventDispatcher) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().configure(lark_adapters::actix::configure(dispatcher.clone()))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Server {
        base,
        stop: Some(Box::new(move || {
            // The stop command is sent when `stop` is called.
            drop(handle.stop(false));
        })),
    }
}

fn signer() -> EventSigner {
    EventSigner::new().encrypt_key(KEY).verification_token(TOKEN)
}

fn builder() -> EventDispatcherBuilder {
    EventDispatcher::builder().encrypt_key(KEY).verification_token(TOKEN)
}

fn message(s: &EventSigner, text: &str) -> Value {
    s.event_v2("im.message.receive_v1", text_message("om_1", "oc_1", "ou_1", text))
}

/// Sends a bodiless request over a fresh connection and returns the status.
async fn raw_status(base: &str, method: &str, path: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not HTTP: {text}"))
}

async fn url_checks_and_events<F, Fut>(start: F)
where
    F: Fn(EventDispatcher) -> Fut,
    Fut: Future<Output = Server>,
{
    let texts: Arc<Mutex<Vec<String>>> = Arc::default();
    let d = builder()
        .on_raw("im.message.receive_v1", {
            let texts = texts.clone();
            move |_ctx, event| {
                texts
                    .lock()
                    .unwrap()
                    .push(event["message"]["content"].as_str().unwrap_or_default().to_owned());
                async { Ok(()) }
            }
        })
        .build()
        .unwrap();
    let server = start(d).await;
    let s = signer();
    for path in [EVENT_PATH, CARD_PATH] {
        let pusher = server.pusher(path);
        let check = pusher.push(&s.url_check("challenge-1")).await;
        assert_eq!((check.status, check.json()), (Some(200), Some(json!({"challenge": "challenge-1"}))));
        let delivery = pusher.push(&message(&s, "hello 世界")).await;
        assert_eq!((delivery.status, delivery.json()), (Some(200), Some(json!({"msg": "success"}))));
    }
    let texts = texts.lock().unwrap();
    assert_eq!(texts.len(), 2);
    assert_eq!(serde_json::from_str::<Value>(&texts[0]).unwrap()["text"], "hello 世界");
}

async fn card_callbacks<F, Fut>(start: F)
where
    F: Fn(EventDispatcher) -> Fut,
    Fut: Future<Output = Server>,
{
    let d = builder()
        .on_card_action(|_ctx, action| async move {
            let card = json!({"elements": [{"tag": "markdown", "content": format!("got {}", action.action.value["k"])}]});
            Ok(CardResponse::toast(ToastKind::Success, "saved").with_card(card))
        })
        .build()
        .unwrap();
    let server = start(d).await;
    let s = signer();
    let pusher = server.pusher(CARD_PATH);
    let trigger = pusher.push(&s.card_action_trigger("ou_1", "om_1", json!({"k": "v1"}))).await;
    assert_eq!(trigger.status, Some(200));
    assert_eq!(
        trigger.json().unwrap(),
        json!({
            "toast": {"type": "success", "content": "saved"},
            "card": {"type": "raw", "data": {"elements": [{"tag": "markdown", "content": "got \"v1\""}]}},
        })
    );
    let legacy = pusher.push_legacy_card(&s.legacy_card_action("ou_1", "om_1", json!({"k": "v2"}))).await;
    assert_eq!(legacy.status, Some(200));
    assert_eq!(legacy.json().unwrap()["card"]["data"]["elements"][0]["content"], "got \"v2\"");
}

async fn refusals<F, Fut>(start: F)
where
    F: Fn(EventDispatcher) -> Fut,
    Fut: Future<Output = Server>,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let d = builder()
        .body_limit(4096)
        .on_raw("im.message.receive_v1", move |_ctx, _event| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .build()
        .unwrap();
    let server = start(d).await;
    let s = signer();
    let pusher = server.pusher(EVENT_PATH);

    let good = s.seal(&message(&s, "hi"));
    let forged = SignedBody { signature: Some("0".repeat(64)), ..good.clone() };
    let answer = pusher.push_signed(&forged).await;
    assert_eq!((answer.status, answer.json()), (Some(401), Some(json!({"msg": "bad signature"}))));

    let garbage = b"definitely not json";
    let signed_garbage = SignedBody {
        body: Bytes::from_static(garbage),
        timestamp: "1".into(),
        nonce: "n".into(),
        signature: Some(event_signature("1", "n", KEY, garbage)),
    };
    let answer = pusher.push_signed(&signed_garbage).await;
    assert_eq!((answer.status, answer.json()), (Some(400), Some(json!({"msg": "malformed delivery"}))));

    let answer = pusher.push(&message(&s, &"x".repeat(5000))).await;
    assert_eq!((answer.status, answer.json()), (Some(413), Some(json!({"msg": "body too large"}))));

    let get = raw_status(&server.base, "GET", EVENT_PATH).await;
    assert!(get == 404 || get == 405, "GET is not served: {get}");
    assert_eq!(raw_status(&server.base, "POST", "/webhook/other").await, 404);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing was dispatched");
    assert_eq!(pusher.push_signed(&good).await.status, Some(200));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

async fn failures_are_retried_on_the_platform_schedule<F, Fut>(start: F)
where
    F: Fn(EventDispatcher) -> Fut,
    Fut: Future<Output = Server>,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let d = builder()
        .dedup()
        .on_raw("im.message.receive_v1", move |_ctx, _event| {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n < 3 {
                    return Err(format!("attempt {n} fails").into());
                }
                Ok(())
            }
        })
        .build()
        .unwrap();
    let server = start(d).await;
    let s = signer();
    // The platform's 15 s / 5 min / 1 h / 6 h, a million times faster.
    let pusher = EventPusher::new(format!("{}{EVENT_PATH}", server.base), s.clone()).compressed(1_000_000);
    let event = message(&s, "retry me");
    let delivery = pusher.push(&event).await;
    assert_eq!((delivery.status, delivery.attempts), (Some(200), 3));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Delivered once more after success: a duplicate, acknowledged and not dispatched.
    assert_eq!(pusher.push(&event).await.attempts, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

macro_rules! suite {
    ($feature:literal, $module:ident, $start:ident) => {
        #[cfg(feature = $feature)]
        mod $module {
            #[tokio::test]
            async fn url_checks_and_events() {
                super::url_checks_and_events(super::$start).await;
            }

            #[tokio::test]
            async fn card_callbacks() {
                super::card_callbacks(super::$start).await;
            }

            #[tokio::test]
            async fn refusals() {
                super::refusals(super::$start).await;
            }

            #[tokio::test]
            async fn failures_are_retried_on_the_platform_schedule() {
                super::failures_are_retried_on_the_platform_schedule(super::$start).await;
            }
        }
    };
}

suite!("axum", axum_suite, start_axum);
suite!("actix", actix_suite, start_actix);
suite!("warp", warp_suite, start_warp);
