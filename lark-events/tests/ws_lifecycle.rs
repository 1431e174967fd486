//! The long-connection client's lifecycle against lark-testkit: pings, reconnects, final
//! errors, the liveness watchdog and graceful stops.

#![cfg(feature = "ws")]

mod ws_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lark_events::ws::{ClientConfig, WsErrorKind, WsState};
use lark_events::EventDispatcher;
use lark_testkit::ws::{Refusal, NO_CREDENTIAL};
use lark_testkit::Fault;
use tokio::time::{timeout, Instant};
use ws_support::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn pings_keep_the_platform_interval_and_pongs_change_it() {
    let platform = platform().await;
    let ws = platform.ws();
    ws.set_client_config(Some(ClientConfig { ping_interval: Some(30), ..fast_config() }));
    let seen = Seen::default();
    let handle = connected(&builder(&platform, recording(&seen, false, 0)).build().unwrap()).await;

    // One ping at once, then one every 30 s (the bootstrap's PingInterval).
    assert!(ws.wait_until_for(secs(100), |ws| ws.pings().len() >= 4).await);
    let gaps = |from: usize, to: usize| -> Vec<Duration> {
        let pings = ws.pings();
        (from..to).map(|i| pings[i + 1].at - pings[i].at).collect()
    };
    for gap in gaps(0, 3) {
        assert!(gap >= secs(30) && gap < secs(30) + Duration::from_millis(100), "{gap:?}");
    }
    let ping = &ws.pings()[0].frame;
    assert_eq!((ping.seq_id, ping.log_id, ping.method), (0, 0, 0));
    assert_eq!(ping.service, lark_testkit::ws::SERVICE_ID);
    assert_eq!(ping.header("type"), Some("ping"));

    // The next pong carries PingInterval 5: from then on, a ping every 5 s.
    ws.set_pong_config(Some(ClientConfig { ping_interval: Some(5), ..ClientConfig::default() }));
    let n = ws.pings().len();
    assert!(ws.wait_until_for(secs(60), |ws| ws.pings().len() >= n + 4).await);
    for gap in gaps(n, n + 3) {
        assert!(gap >= secs(5) && gap < secs(5) + Duration::from_millis(100), "{gap:?}");
    }
    assert_eq!(ws.handshakes(), 1, "pongs kept the connection alive");
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_dropped_connection_events_resume_and_nothing_is_lost() {
    const N: usize = 200;
    let platform = platform().await;
    let seen = Seen::default();
    let handle = connected(&builder(&platform, recording(&seen, true, 5)).build().unwrap()).await;
    let ws = platform.ws();

    let envelopes: Vec<_> = (0..N).map(message).collect();
    for e in &envelopes[..N / 2] {
        ws.push_event(e);
    }
    // Drop the connection while messages are in flight.
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.acked() >= N / 10).await);
    ws.drop_connections();
    for e in &envelopes[N / 2..] {
        ws.push_event(e);
    }
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.acked() == N).await, "acked {} of {N}", ws.acked());
    assert!(handle.connected().await);
    assert_eq!(ws.handshakes(), 2);
    assert_eq!(ws.bootstraps(), 2, "a fresh bootstrap for the new connection");
    let acks = ws.acks();
    assert!(acks.iter().any(|a| a.connection == 1) && acks.iter().any(|a| a.connection == 2));
    for e in &envelopes {
        assert_eq!(seen.times(&event_id(e)), 1, "handled once (dedup absorbs redeliveries)");
    }
    handle.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reconnects_wait_the_nonce_jitter_then_the_interval() {
    let platform = platform().await;
    let ws = platform.ws();
    ws.set_client_config(Some(ClientConfig {
        reconnect_count: Some(-1),
        reconnect_interval: Some(60),
        reconnect_nonce: Some(10),
        ping_interval: Some(120),
    }));
    let seen = Seen::default();
    let handle = connected(&builder(&platform, recording(&seen, false, 0)).build().unwrap()).await;

    ws.refuse_handshakes(Refusal::other(514, Some(1_000_040_351), "auth failed"), 1);
    let dropped_at = Instant::now();
    ws.close_connections();
    assert!(ws.wait_until_for(secs(30), |ws| ws.refused_handshakes() == 1).await);
    let first = dropped_at.elapsed();
    assert!(first < secs(10), "the first attempt waits below the nonce: {first:?}");
    assert!(ws.wait_until_for(secs(120), |ws| ws.handshakes() == 2).await);
    let second = dropped_at.elapsed() - first;
    assert!(second >= secs(60) && second < secs(61), "then the interval: {second:?}");
    assert_eq!(ws.bootstraps(), 3, "a bootstrap for every attempt");
    assert!(handle.connected().await);
    handle.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn busy_bootstraps_and_other_refusals_are_retried() {
    let platform = platform().await;
    let ws = platform.ws();
    platform.inject(Fault::api_error(1, "system busy").on_path_prefix("/callback/ws"));
    platform.inject(Fault::api_error(1_000_040_343, "internal error").on_path_prefix("/callback/ws"));
    ws.refuse_handshakes(Refusal::other(514, Some(1_000_040_351), "auth failed"), 1);
    ws.refuse_handshakes(Refusal::other(500, None, "busy"), 1);
    let seen = Seen::default();
    let started = Instant::now();
    let client = builder(&platform, recording(&seen, false, 0)).reconnect_interval(secs(1)).build().unwrap();
    let handle = connected(&client).await;
    assert_eq!((ws.refused_handshakes(), ws.handshakes(), ws.bootstraps()), (2, 1, 3));
    // Each failed attempt is followed by the 1 s reconnect interval.
    assert!(started.elapsed() >= secs(2), "{:?}", started.elapsed());
    let id = ws.push_event(&message(1));
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.is_acked(&id)).await);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn final_refusals_stop_the_client_with_a_clear_error() {
    for (refusal, kind, code) in [
        (Refusal::forbidden(), WsErrorKind::Forbidden, 403),
        (Refusal::too_many_connections(), WsErrorKind::TooManyConnections, 514),
    ] {
        let platform = platform().await;
        let ws = platform.ws();
        ws.refuse_handshakes(refusal, 1);
        let seen = Seen::default();
        let mut handle = builder(&platform, recording(&seen, false, 0)).build().unwrap().start();
        let err = timeout(PATIENCE, handle.wait()).await.unwrap().unwrap_err();
        assert_eq!((err.kind(), err.code()), (kind, Some(code)));
        assert_eq!(handle.state(), WsState::Stopped);
        assert!(!handle.connected().await);
        assert_eq!((ws.bootstraps(), ws.refused_handshakes(), ws.handshakes()), (1, 1, 0), "no retry");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(platform.app_secret()) && !shown.contains("ticket="), "{shown}");
        // The error stays available.
        assert_eq!(handle.wait().await.unwrap_err().kind(), kind);
    }
}

#[tokio::test]
async fn bad_credentials_stop_the_client() {
    let platform = platform().await;
    let seen = Seen::default();
    let client =
        lark_events::ws::WsClient::builder(platform.app_id(), "not-the-secret", recording(&seen, false, 0))
            .base_url(platform.base_url())
            .build()
            .unwrap();
    let mut handle = client.start();
    let err = timeout(PATIENCE, handle.wait()).await.unwrap().unwrap_err();
    assert_eq!((err.kind(), err.code()), (WsErrorKind::Bootstrap, Some(NO_CREDENTIAL)));
    assert!(err.message().is_some_and(|m| m.contains("no credential")));
    assert!(!format!("{err} {err:?} {client:?}").contains("not-the-secret"));
    assert_eq!(platform.ws().handshakes(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_platform_reconnect_count_bounds_attempts() {
    let platform = platform().await;
    let ws = platform.ws();
    ws.set_client_config(Some(ClientConfig { reconnect_count: Some(3), ..fast_config() }));
    ws.refuse_handshakes(Refusal::other(500, None, "try later"), 10);
    let seen = Seen::default();
    let mut handle = builder(&platform, recording(&seen, false, 0)).build().unwrap().start();
    let err = timeout(PATIENCE, handle.wait()).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), WsErrorKind::ReconnectsExhausted);
    assert!(std::error::Error::source(&err).is_some_and(|s| s.to_string().contains("Handshake-Status 500")));
    assert_eq!(ws.refused_handshakes(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_detected_and_replaced() {
    let platform = platform().await;
    let ws = platform.ws();
    ws.set_client_config(Some(ClientConfig { ping_interval: Some(10), ..fast_config() }));
    let seen = Seen::default();
    let handle = connected(&builder(&platform, recording(&seen, false, 0)).build().unwrap()).await;

    // Half-open: no pong, no frame. The watchdog (2 × 10 s + 10 s) gives up on it.
    ws.stall_connections();
    let stalled_at = Instant::now();
    assert!(ws.wait_until_for(secs(120), |ws| ws.handshakes() == 2).await);
    let waited = stalled_at.elapsed();
    assert!(waited >= secs(20) && waited <= secs(31), "{waited:?}");
    let id = ws.push_event(&message(1));
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.is_acked(&id)).await);
    assert_eq!(seen.total(), 1);
    handle.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_pong_that_shortens_the_ping_interval_rearms_the_watchdog_at_once() {
    let platform = platform().await;
    let ws = platform.ws();
    // The bootstrap says 120 s (a 250 s watchdog); the first pong says 5 s (a 20 s watchdog).
    ws.set_pong_config(Some(ClientConfig { ping_interval: Some(5), ..ClientConfig::default() }));
    let seen = Seen::default();
    let handle = connected(&builder(&platform, recording(&seen, false, 0)).build().unwrap()).await;
    assert!(ws.wait_until_for(PATIENCE, |ws| !ws.pings().is_empty()).await);
    // The pong is on its way; then the connection goes silent.
    ws.stall_connections();
    let stalled_at = Instant::now();
    assert!(ws.wait_until_for(secs(300), |ws| ws.handshakes() == 2).await);
    let waited = stalled_at.elapsed();
    assert!(waited >= secs(19) && waited <= secs(22), "the 20 s watchdog applied at once: {waited:?}");
    handle.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_for_state_reports_states_and_a_stop_first() {
    let platform = platform().await;
    let seen = Seen::default();
    let handle = builder(&platform, recording(&seen, false, 0)).build().unwrap().start();
    assert!(timeout(PATIENCE, handle.wait_for_state(WsState::Connected)).await.unwrap());
    assert!(handle.wait_for_state(WsState::Connected).await, "at once when in the state");
    handle.stop();
    assert!(timeout(PATIENCE, handle.wait_for_state(WsState::Stopped)).await.unwrap());
    assert!(!handle.wait_for_state(WsState::Reconnecting).await, "stopped first");
    handle.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn durations_of_any_size_never_overflow() {
    let platform = platform().await;
    let ws = platform.ws();
    // No platform settings: the client's own stay in force.
    ws.set_client_config(None);
    let seen = Seen::default();
    let client = builder(&platform, recording(&seen, false, 0))
        .ping_interval(Duration::MAX)
        .reconnect_interval(Duration::MAX)
        .reconnect_nonce(Duration::MAX)
        .connect_timeout(Duration::MAX)
        .stop_timeout(Duration::MAX)
        .fragment_time_limit(Duration::MAX)
        .ack_timeout(Duration::MAX)
        .build()
        .unwrap();
    let handle = connected(&client).await;
    let whole = ws.push_event(&message(1));
    let fragmented = ws.push(lark_testkit::ws::Push::event(&message(2)).fragments(2));
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.is_acked(&whole) && ws.is_acked(&fragmented)).await);
    // A pending fragment set, a ping and the watchdog far away, and a stop: no overflow.
    let partial = lark_events::ws::Frame {
        method: lark_events::ws::frame::METHOD_DATA,
        headers: vec![
            lark_events::ws::Header::new("type", "event"),
            lark_events::ws::Header::new("message_id", "m_partial"),
            lark_events::ws::Header::new("sum", "2"),
            lark_events::ws::Header::new("seq", "0"),
        ],
        ..lark_events::ws::Frame::default()
    };
    assert!(ws.push_frame(&partial));
    let last = ws.push_event(&message(3));
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.is_acked(&last)).await);
    timeout(PATIENCE, handle.shutdown()).await.unwrap().unwrap();
    assert_eq!(seen.total(), 3);

    let client = builder(&platform, recording(&seen, false, 0)).idle_timeout(Duration::MAX).build().unwrap();
    let handle = connected(&client).await;
    timeout(PATIENCE, handle.shutdown()).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_graceful_stop_lets_running_handlers_finish_and_acks_them() {
    let platform = platform().await;
    let ws = platform.ws();
    let started = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let dispatcher = {
        let (started, release) = (started.clone(), release.clone());
        EventDispatcher::builder()
            .on_raw("im.message.receive_v1", move |_ctx, _event| {
                let (started, release, started_tx) = (started.clone(), release.clone(), started_tx.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    let _ = started_tx.send(());
                    release.acquire().await?.forget();
                    Ok(())
                }
            })
            .build()
            .unwrap()
    };
    let mut handle = connected(&builder(&platform, dispatcher).build().unwrap()).await;
    let ids: Vec<String> = (0..3).map(|i| ws.push_event(&message(i))).collect();
    for _ in 0..3 {
        timeout(PATIENCE, started_rx.recv()).await.unwrap().unwrap();
    }

    handle.stop();
    // The running handlers hold it in Stopping.
    assert!(timeout(PATIENCE, handle.wait_for_state(WsState::Stopping)).await.unwrap());
    assert_eq!(handle.state(), WsState::Stopping);
    let late = ws.push_event(&message(99));
    release.add_permits(3);
    timeout(PATIENCE, handle.wait()).await.unwrap().unwrap();
    assert_eq!(handle.state(), WsState::Stopped);

    assert!(ids.iter().all(|id| ws.is_acked(id)), "in-flight handlers were acked before closing");
    assert!(!ws.is_acked(&late), "nothing new was read after the stop");
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.connections() == 0).await, "the connection is closed");
}

#[tokio::test(start_paused = true)]
async fn the_stop_timeout_aborts_handlers_that_never_finish() {
    struct Running(Arc<AtomicBool>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }
    let platform = platform().await;
    let ws = platform.ws();
    let running = Arc::new(AtomicBool::new(false));
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let dispatcher = {
        let running = running.clone();
        EventDispatcher::builder()
            .on_raw("im.message.receive_v1", move |_ctx, _event| {
                let (running, started_tx) = (running.clone(), started_tx.clone());
                async move {
                    running.store(true, Ordering::SeqCst);
                    let _ = started_tx.send(());
                    let _guard = Running(running);
                    std::future::pending::<()>().await;
                    Ok(())
                }
            })
            .build()
            .unwrap()
    };
    // The ack timeout is longer than the stop timeout: the stop is what ends the handler.
    let client = builder(&platform, dispatcher).stop_timeout(secs(5)).ack_timeout(secs(60)).build().unwrap();
    let handle = connected(&client).await;
    let id = ws.push_event(&message(1));
    timeout(PATIENCE, started_rx.recv()).await.unwrap().unwrap();
    assert!(running.load(Ordering::SeqCst));
    let stopping = Instant::now();
    handle.shutdown().await.unwrap();
    assert!(stopping.elapsed() >= secs(5));
    assert!(!running.load(Ordering::SeqCst), "the handler was aborted: nothing is left running");
    assert!(!ws.is_acked(&id));
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_reconnect_waits_ends_at_once() {
    let platform = platform().await;
    let ws = platform.ws();
    ws.set_client_config(Some(ClientConfig { reconnect_interval: Some(600), ..fast_config() }));
    ws.refuse_handshakes(Refusal::other(500, None, "try later"), 100);
    let seen = Seen::default();
    let handle = builder(&platform, recording(&seen, false, 0)).build().unwrap().start();
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.refused_handshakes() == 1).await);
    assert_eq!(handle.state(), WsState::Connecting);
    let stopping = Instant::now();
    handle.shutdown().await.unwrap();
    assert!(stopping.elapsed() < secs(1), "the 600 s wait was cut short: {:?}", stopping.elapsed());
    assert_eq!(ws.refused_handshakes(), 1);
}

#[tokio::test]
async fn dropping_the_handle_stops_the_client() {
    let platform = platform().await;
    let ws = platform.ws();
    let seen = Seen::default();
    let handle = connected(&builder(&platform, recording(&seen, false, 0)).build().unwrap()).await;
    assert_eq!(ws.connections(), 1);
    drop(handle);
    assert!(
        ws.wait_until_for(PATIENCE, |ws| ws.connections() == 0).await,
        "the client closed its connection"
    );
    assert_eq!(ws.handshakes(), 1, "and did not reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_long_connection_goes_through_a_proxy_tunnel() {
    let platform = platform().await;
    let proxy = lark_testkit::connect_proxy::ConnectProxy::start_with_credentials("bot", "pw@1").await;
    let seen = Seen::default();
    let client = builder(&platform, recording(&seen, false, 0))
        .proxy(lark_transport::Proxy::all(&proxy.url("bot:pw%401@")).unwrap())
        .build()
        .unwrap();
    let handle = connected(&client).await;
    let ws = platform.ws();
    let envelope = message(1);
    ws.push_event(&envelope);
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.acked() == 1).await);
    assert_eq!(seen.times(&event_id(&envelope)), 1);
    // One tunnel, to the WebSocket's address; the bootstrap call went straight (its client has
    // no proxy).
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let url = ws.issued_urls().pop().unwrap();
    let target = url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_owned();
    assert!(heads[0].starts_with(&format!("CONNECT {target} HTTP/1.1\r\n")), "{}", heads[0]);
    assert_eq!(ws.handshakes(), 1);
    handle.shutdown().await.unwrap();
}
