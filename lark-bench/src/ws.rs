//! The `ws` scenario: events per second through the long connection, against lark-testkit.
//!
//! A `WsClient` (one worker thread, `bench-client`) with a typed `im.message.receive_v1`
//! handler receives text messages that lark-testkit (its own thread) pushes over its WebSocket
//! server, keeping at most `--concurrency` messages unacked (the window), as the platform does.
//! Each event is decoded from its protobuf frame, dispatched, handled and acked. Wall time runs
//! from the first push to the last ack; CPU counts the client's thread only.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lark_events::generated::im::MessageReceiveV1;
use lark_events::ws::{ClientConfig, WsClient};
use lark_events::EventDispatcher;
use lark_testkit::events::{text_message, EventSigner};
use lark_testkit::ws::{Push, WsServer};
use serde_json::{json, Value};

use crate::{thread_cpu_seconds, Target, CLIENT_THREAD};

/// Distinct messages prepared up front, pushed in turn.
const POOL: usize = 4096;
/// Limit of one measured run.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Pushes `n` messages from `pool`, at most `window` unacked at a time; returns when all are
/// acked (or the limit passed) with how many were acked.
async fn drive(server: WsServer, pool: Arc<Vec<Push>>, n: usize, window: usize) -> usize {
    let base = server.acked();
    let acked = |s: &WsServer| s.acked() - base;
    let run = async {
        let mut pushed = 0;
        while pushed < n {
            while pushed < n && pushed - acked(&server) < window {
                server.push(pool[pushed % pool.len()].clone());
                pushed += 1;
            }
            server.wait_until(|s| pushed - acked(s) < window || acked(s) >= n).await;
        }
        server.wait_until(|s| acked(s) >= n).await;
    };
    let _ = tokio::time::timeout(RUN_LIMIT, run).await;
    acked(&server)
}

pub(crate) async fn ws(t: &Target, n: usize, window: usize) -> Result<Value, String> {
    let (Some(platform), Some(server_rt)) = (&t.platform, &t._server) else {
        return Err("the ws scenario runs against lark-testkit (no --base-url)".into());
    };
    let server = platform.ws();
    server.set_client_config(Some(ClientConfig {
        reconnect_count: Some(-1),
        reconnect_interval: Some(1),
        reconnect_nonce: Some(0),
        ping_interval: Some(120),
    }));
    let handled = Arc::new(AtomicUsize::new(0));
    let dispatcher = {
        let handled = handled.clone();
        EventDispatcher::builder()
            .on::<MessageReceiveV1, _, _>(move |_ctx, event| {
                black_box(event);
                handled.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            })
            .build()
            .map_err(|e| e.to_string())?
    };
    let client = WsClient::builder(t.app_id.clone(), t.app_secret.clone(), dispatcher)
        .base_url(t.base_url.clone())
        .max_concurrent_handlers(window.max(1))
        .build()
        .map_err(|e| e.to_string())?;
    let handle = client.start();
    if !tokio::time::timeout(Duration::from_secs(10), handle.connected()).await.unwrap_or(false) {
        return Err("the long connection did not come up".into());
    }
    let signer = EventSigner::new().app_id(t.app_id.clone());
    let envelopes: Vec<Value> = (0..POOL)
        .map(|i| {
            let text = format!("message {i}: the quick brown fox jumps over the lazy dog — 你好，世界");
            signer.event_v2(
                "im.message.receive_v1",
                text_message(&format!("om_{i:032x}"), "oc_bench", "ou_1", &text),
            )
        })
        .collect();
    let payload_bytes = envelopes[0].to_string().len();
    let pool: Arc<Vec<Push>> = Arc::new(envelopes.iter().map(Push::event).collect());
    let run = |count: usize| server_rt.spawn(drive(server.clone(), pool.clone(), count, window.max(1)));

    run((n / 10).clamp(1000, 10_000)).await.map_err(|e| e.to_string())?;
    let handled_before = handled.load(Ordering::Relaxed);
    let cpu0 = thread_cpu_seconds(CLIENT_THREAD);
    let start = Instant::now();
    let acked = run(n).await.map_err(|e| e.to_string())?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds(CLIENT_THREAD) - cpu0;
    let handled = handled.load(Ordering::Relaxed) - handled_before;
    handle.shutdown().await.map_err(|e| e.to_string())?;
    if acked < n {
        return Err(format!("only {acked} of {n} events were acked within {RUN_LIMIT:?}"));
    }
    Ok(json!({
        "scenario": "ws",
        "events": n,
        "window": window,
        "events_per_s": (n as f64 / wall).round(),
        "client_cpu_us_per_event": (cpu * 1e6 / n as f64 * 10.0).round() / 10.0,
        "handled": handled,
        "payload_bytes": payload_bytes,
    }))
}
