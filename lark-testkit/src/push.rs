//! Pushing events to a bot's URL as the platform does ([`EventPusher`]): sealed by an
//! [`EventSigner`], retried on any answer other than 200 (or none within 3 s) on the platform's
//! schedule, compressed so tests finish quickly.
//!
//! With [`FakePlatform`](crate::FakePlatform) recording what the bot sends back
//! ([`sent_messages`](crate::FakePlatform::sent_messages)), a test drives a bot end to end:
//!
//! ```no_run
//! use lark_testkit::events::{text_message, EventSigner};
//! use lark_testkit::push::EventPusher;
//! use lark_testkit::FakePlatform;
//!
//! # async fn demo() {
//! let platform = FakePlatform::start().await;
//! // ... start the bot with `platform.base_url()`, serving http://127.0.0.1:8089/webhook/event ...
//! let signer = EventSigner::new().encrypt_key("encrypt-key").verification_token("token");
//! let pusher = EventPusher::new("http://127.0.0.1:8089/webhook/event", signer.clone());
//! let event = signer.event_v2("im.message.receive_v1", text_message("om_1", "oc_1", "ou_1", "hi"));
//! let delivery = pusher.push(&event).await;
//! assert!(delivery.is_success());
//! assert_eq!(platform.sent_messages()[0]["reply_to"], "om_1");
//! # }
//! ```

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::events::{EventSigner, SignedBody};

/// The platform's waits before delivering a failed event again: about 15 s, 5 min, 1 h, 6 h.
pub const PLATFORM_RETRY_SCHEDULE: [Duration; 4] = [
    Duration::from_secs(15),
    Duration::from_secs(5 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(6 * 3600),
];

/// How long the platform waits for an answer before counting the delivery as failed.
pub const PLATFORM_ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// How a push ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The HTTP status of the last attempt, `None` if it got no answer (connection failed or
    /// no answer within the timeout).
    pub status: Option<u16>,
    /// The body of the last answer.
    pub body: Bytes,
    /// How many attempts were made (1 when the first succeeded).
    pub attempts: usize,
}

impl Delivery {
    /// Whether the last attempt was answered with 200, as the platform requires.
    pub fn is_success(&self) -> bool {
        self.status == Some(200)
    }

    /// The last answer's body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Pushes events to one URL as the platform does.
#[derive(Clone, Debug)]
pub struct EventPusher {
    url: String,
    signer: EventSigner,
    schedule: Vec<Duration>,
    answer_timeout: Option<Duration>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl EventPusher {
    /// A pusher to `url` (e.g. `http://127.0.0.1:8089/webhook/event`) sealing with `signer`,
    /// retrying on the platform's schedule compressed 1,000 times (15 ms, 300 ms, 3.6 s, 21.6 s).
    pub fn new(url: impl Into<String>, signer: EventSigner) -> EventPusher {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        EventPusher {
            url: url.into(),
            signer,
            schedule: PLATFORM_RETRY_SCHEDULE.iter().map(|d| *d / 1000).collect(),
            answer_timeout: Some(PLATFORM_ANSWER_TIMEOUT),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The platform's schedule divided by `factor` (1 keeps the real waits).
    #[must_use]
    pub fn compressed(mut self, factor: u32) -> EventPusher {
        self.schedule = PLATFORM_RETRY_SCHEDULE.iter().map(|d| *d / factor.max(1)).collect();
        self
    }

    /// The waits before each retry; as many retries as entries.
    #[must_use]
    pub fn retry_schedule(mut self, schedule: impl IntoIterator<Item = Duration>) -> EventPusher {
        self.schedule = schedule.into_iter().collect();
        self
    }

    /// One attempt only.
    #[must_use]
    pub fn no_retries(self) -> EventPusher {
        self.retry_schedule([])
    }

    /// How long to wait for an answer (default 3 s, as the platform); `None` waits forever.
    #[must_use]
    pub fn answer_timeout(mut self, timeout: Option<Duration>) -> EventPusher {
        self.answer_timeout = timeout;
        self
    }

    /// The signer.
    pub fn signer(&self) -> &EventSigner {
        &self.signer
    }

    /// The URL pushed to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Pushes an envelope (see [`EventSigner`]'s builders): each attempt carries the same
    /// envelope (same event_id) freshly encrypted, timestamped and signed.
    pub async fn push(&self, envelope: &Value) -> Delivery {
        self.push_with(|| self.signer.seal(envelope)).await
    }

    /// Pushes an old-style card callback body, signed with SHA-1 and the verification token.
    pub async fn push_legacy_card(&self, body: &Value) -> Delivery {
        self.push_with(|| self.signer.seal_legacy_card(body)).await
    }

    /// Pushes exactly these bytes and headers on every attempt (e.g. a tampered delivery).
    pub async fn push_signed(&self, signed: &SignedBody) -> Delivery {
        self.push_with(|| signed.clone()).await
    }

    async fn push_with(&self, mut seal: impl FnMut() -> SignedBody) -> Delivery {
        let mut attempts = 0;
        let mut waits = self.schedule.iter();
        loop {
            attempts += 1;
            let (status, body) = self.attempt(&seal()).await;
            if status == Some(200) {
                return Delivery { status, body, attempts };
            }
            let Some(wait) = waits.next() else { return Delivery { status, body, attempts } };
            tracing::debug!(?status, attempts, ?wait, "lark-testkit: delivery failed, retrying");
            tokio::time::sleep(*wait).await;
        }
    }

    async fn attempt(&self, signed: &SignedBody) -> (Option<u16>, Bytes) {
        let exchange = async {
            let resp = self.client.request(signed.to_request(&self.url)).await.ok()?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            Some((status, body))
        };
        let answer = match self.answer_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange).await.ok().flatten(),
            None => exchange.await,
        };
        match answer {
            Some((status, body)) => (Some(status), body),
            None => (None, Bytes::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use lark_events::EventDispatcher;
    use serde_json::json;
    use tokio::net::TcpListener;

    use super::*;
    use crate::events::text_message;

    const KEY: &str = "push-key";
    const TOKEN: &str = "push-token";

    /// Serves `dispatcher` over HTTP/1.1 on loopback; returns the event URL.
    async fn serve(dispatcher: EventDispatcher) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhook/event", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let dispatcher = dispatcher.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let dispatcher = dispatcher.clone();
                        async move { Ok::<_, Infallible>(dispatcher.handle_request(req).await.map(Full::new)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        url
    }

    fn signer() -> EventSigner {
        EventSigner::new().encrypt_key(KEY).verification_token(TOKEN)
    }

    /// A dispatcher whose message handler fails its first `fail_until` calls and, with
    /// `slow_first`, takes 10 s to answer the first one.
    fn dispatcher(calls: &Arc<AtomicUsize>, fail_until: usize, slow_first: bool) -> EventDispatcher {
        let calls = calls.clone();
        EventDispatcher::builder()
            .encrypt_key(KEY)
            .verification_token(TOKEN)
            .replay_window(Duration::from_secs(60))
            .on_raw("im.message.receive_v1", move |_ctx, _event| {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if slow_first && n == 1 {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                    if n <= fail_until {
                        return Err("not yet".into());
                    }
                    Ok(())
                }
            })
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn deliveries_are_sealed_as_the_platform_does() {
        let calls = Arc::new(AtomicUsize::new(0));
        let url = serve(dispatcher(&calls, 0, false)).await;
        let s = signer();
        let pusher = EventPusher::new(url, s.clone());
        let d = pusher
            .push(&s.event_v2("im.message.receive_v1", text_message("om_1", "oc_1", "ou_1", "hi")))
            .await;
        assert_eq!((d.status, d.attempts, d.json()), (Some(200), 1, Some(json!({"msg": "success"}))));
        let check = pusher.push(&s.url_check("xyz")).await;
        assert_eq!(check.json(), Some(json!({"challenge": "xyz"})));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_deliveries_are_retried_on_the_compressed_schedule() {
        let calls = Arc::new(AtomicUsize::new(0));
        let url = serve(dispatcher(&calls, usize::MAX, false)).await;
        let s = signer();
        let pusher = EventPusher::new(url, s.clone()).answer_timeout(None);
        let started = tokio::time::Instant::now();
        let d = pusher
            .push(&s.event_v2("im.message.receive_v1", text_message("om_1", "oc_1", "ou_1", "x")))
            .await;
        assert_eq!((d.status, d.attempts), (Some(500), 5));
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        // 15 ms + 300 ms + 3.6 s + 21.6 s of (paused, virtual) waiting.
        assert!(started.elapsed() >= Duration::from_millis(25_515), "{:?}", started.elapsed());

        let once = EventPusher::new(pusher.url(), s.clone()).no_retries();
        let d =
            once.push(&s.event_v2("im.message.receive_v1", text_message("om_2", "oc_1", "ou_1", "x"))).await;
        assert_eq!(d.attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_within_three_seconds_counts_as_a_failure() {
        let calls = Arc::new(AtomicUsize::new(0));
        let url = serve(dispatcher(&calls, 0, true)).await;
        let s = signer();
        let d = EventPusher::new(url, s.clone())
            .push(&s.event_v2("im.message.receive_v1", text_message("om_1", "oc_1", "ou_1", "slow")))
            .await;
        assert_eq!(
            (d.status, d.attempts),
            (Some(200), 2),
            "the slow first attempt timed out and was retried"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_listening_is_a_failed_delivery() {
        let port = crate::redis_server::free_port();
        let s = signer();
        let d = EventPusher::new(format!("http://127.0.0.1:{port}/webhook/event"), s.clone())
            .no_retries()
            .push(&s.url_check("c"))
            .await;
        assert_eq!((d.status, d.attempts, d.is_success()), (None, 1, false));
    }
}
