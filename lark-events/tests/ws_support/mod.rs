//! Helpers shared by the long-connection tests: a fake platform with fast settings, a client
//! pointed at it, and a dispatcher that records what it handled.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lark_events::ws::{ClientConfig, WsClient, WsClientBuilder, WsHandle};
use lark_events::EventDispatcher;
use lark_testkit::events::{text_message, EventSigner};
use lark_testkit::FakePlatform;
use serde_json::Value;

/// How long a test waits for something that should happen at once (tokio time).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Settings that make reconnects immediate: no nonce, 1 s interval, no limit.
pub fn fast_config() -> ClientConfig {
    ClientConfig {
        reconnect_count: Some(-1),
        reconnect_interval: Some(1),
        reconnect_nonce: Some(0),
        ping_interval: Some(120),
    }
}

/// A fake platform whose bootstrap replies carry [`fast_config`].
pub async fn platform() -> FakePlatform {
    let p = FakePlatform::start().await;
    p.ws().set_client_config(Some(fast_config()));
    p
}

/// A client builder for `platform`.
pub fn builder(platform: &FakePlatform, dispatcher: EventDispatcher) -> WsClientBuilder {
    WsClient::builder(platform.app_id(), platform.app_secret(), dispatcher).base_url(platform.base_url())
}

/// A text message event with a fresh event_id.
pub fn message(i: usize) -> Value {
    EventSigner::new()
        .event_v2("im.message.receive_v1", text_message(&format!("om_{i}"), "oc_1", "ou_1", "hi"))
}

/// What the recording handler saw.
#[derive(Clone, Default)]
pub struct Seen {
    /// How many times each event_id was handled.
    pub by_event_id: Arc<Mutex<HashMap<String, usize>>>,
    /// Handlers running now, and the most at once.
    pub running: Arc<AtomicUsize>,
    pub max_running: Arc<AtomicUsize>,
}

impl Seen {
    pub fn total(&self) -> usize {
        self.by_event_id.lock().unwrap().values().sum()
    }

    pub fn distinct(&self) -> usize {
        self.by_event_id.lock().unwrap().len()
    }

    pub fn times(&self, event_id: &str) -> usize {
        self.by_event_id.lock().unwrap().get(event_id).copied().unwrap_or(0)
    }
}

/// A dispatcher (dedup on when asked) whose message handler records the event_id, then yields
/// `yields` times so that handlers overlap.
pub fn recording(seen: &Seen, dedup: bool, yields: usize) -> EventDispatcher {
    let seen = seen.clone();
    let mut b = EventDispatcher::builder().on_raw("im.message.receive_v1", move |ctx, _event| {
        let seen = seen.clone();
        async move {
            let now = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
            seen.max_running.fetch_max(now, Ordering::SeqCst);
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            let id = ctx.event_id().unwrap_or_default().to_owned();
            *seen.by_event_id.lock().unwrap().entry(id).or_default() += 1;
            seen.running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    });
    if dedup {
        b = b.dedup();
    }
    b.build().unwrap()
}

/// Starts `client` and waits until it is connected.
pub async fn connected(client: &WsClient) -> WsHandle {
    let handle = client.start();
    assert!(tokio::time::timeout(PATIENCE, handle.connected()).await.unwrap(), "the client did not connect");
    handle
}

/// The event_id of an envelope.
pub fn event_id(envelope: &Value) -> String {
    envelope["header"]["event_id"].as_str().unwrap().to_owned()
}
