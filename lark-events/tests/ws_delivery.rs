//! The long-connection client against lark-testkit: events, callbacks and fragments are
//! dispatched to the same handlers as webhooks and acked as the platform specifies.

#![cfg(feature = "ws")]

mod ws_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use lark_events::ws::frame::{Frame, HEADER_BIZ_RT, HEADER_MESSAGE_ID, HEADER_SEQ, HEADER_SUM, METHOD_DATA};
use lark_events::ws::{Ack, Header, WsState};
use lark_events::{CardResponse, EventDispatcher, ToastKind};
use lark_testkit::events::EventSigner;
use lark_testkit::ws::Push;
use serde_json::{json, Value};
use tokio::time::timeout;
use ws_support::*;

#[tokio::test]
async fn an_event_is_handled_and_acked_with_the_same_frame() {
    let platform = platform().await;
    let seen = Seen::default();
    let client = builder(&platform, recording(&seen, false, 0)).build().unwrap();
    let handle = connected(&client).await;
    assert_eq!(handle.state(), WsState::Connected);

    let ws = platform.ws();
    let envelope = message(1);
    let id = ws.push_event(&envelope);
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.is_acked(&id)).await);
    assert_eq!(seen.times(&event_id(&envelope)), 1);

    let acks = ws.acks();
    assert_eq!(acks.len(), 1);
    let ack = &acks[0];
    assert_eq!(ack.message_id, id);
    assert_eq!(ack.ack, Some(Ack { code: 200, data: None }), "events are acked with no data");
    let frame = &ack.frame;
    assert_eq!(frame.method, METHOD_DATA);
    assert_eq!(frame.service, lark_testkit::ws::SERVICE_ID);
    assert_eq!(frame.header(HEADER_MESSAGE_ID), Some(id.as_str()));
    assert_eq!(frame.header(HEADER_SUM), Some("1"));
    assert!(frame.header(HEADER_BIZ_RT).is_some_and(|ms| ms.parse::<u64>().is_ok()), "{frame:?}");
    assert!(ack.biz_rt.is_some());
    // Everything but biz_rt and the payload is the pushed frame.
    let payload: Value = serde_json::from_slice(frame.payload.as_deref().unwrap()).unwrap();
    assert_eq!(payload, json!({"code": 200, "headers": null, "data": null}));
    assert_eq!(frame.headers.len(), 7, "the six pushed headers plus biz_rt: {:?}", frame.headers);

    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn card_callbacks_are_answered_in_the_ack() {
    let platform = platform().await;
    let dispatcher = EventDispatcher::builder()
        .on_card_action(|_ctx, action| async move {
            Ok(CardResponse::toast(ToastKind::Success, format!("clicked {}", action.action.value["n"])))
        })
        .build()
        .unwrap();
    let handle = connected(&builder(&platform, dispatcher).build().unwrap()).await;
    let ws = platform.ws();
    let signer = EventSigner::new();

    // New style: a `type=event` frame with `card.action.trigger`.
    let trigger = ws.push_event(&signer.card_action_trigger("ou_1", "om_1", json!({"n": 1})));
    // Old style: a `type=card` frame with the card request body.
    let legacy = ws.push(Push::card(&signer.legacy_card_action("ou_1", "om_2", json!({"n": 2}))));
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.acked() == 2).await);

    let acks: HashMap<String, Ack> = ws.acks().into_iter().map(|a| (a.message_id, a.ack.unwrap())).collect();
    let data = |id: &str| -> Value {
        let ack = &acks[id];
        assert_eq!(ack.code, 200);
        serde_json::from_slice(ack.data.as_ref().expect("a callback's ack carries the answer")).unwrap()
    };
    assert_eq!(data(&trigger)["toast"], json!({"type": "success", "content": "clicked 1"}));
    assert_eq!(data(&legacy)["toast"]["content"], "clicked 2");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn failures_are_acked_with_500_and_unknown_types_with_200() {
    let platform = platform().await;
    let dispatcher = EventDispatcher::builder()
        .on_raw("im.message.receive_v1", |_ctx, _event| async move { Err("the database is down".into()) })
        .build()
        .unwrap();
    let handle = connected(&builder(&platform, dispatcher).build().unwrap()).await;
    let ws = platform.ws();
    ws.redeliver_on_disconnect(false);

    let failing = ws.push_event(&message(1));
    let unhandled = ws.push_event(&EventSigner::new().event_v2("contact.user.created_v3", json!({})));
    let unknown_type = ws.push(Push::raw("something_new", Bytes::from_static(b"{}")));
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.ack_count() == 3).await);

    let codes: HashMap<String, u16> =
        ws.acks().into_iter().map(|a| (a.message_id, a.ack.map_or(0, |a| a.code))).collect();
    assert_eq!(codes[&failing], 500);
    assert_eq!(codes[&unhandled], 200);
    assert_eq!(codes[&unknown_type], 200);
    assert_eq!(ws.unacked(), vec![failing.clone()]);

    // The platform delivers the failed one again; it fails again, still acked once each time.
    assert_eq!(ws.redeliver_unacked(), 1);
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.ack_count() == 4).await);
    assert_eq!(ws.acks().iter().filter(|a| a.message_id == failing).count(), 2);
    handle.shutdown().await.unwrap();
}

/// A data frame pushed as is (not tracked by message id), with these headers.
fn raw_frame(seq_id: u64, headers: &[(&str, &str)], payload: &'static [u8]) -> Frame {
    let mut all = vec![Header::new("type", "event")];
    all.extend(headers.iter().map(|(k, v)| Header::new(*k, *v)));
    Frame {
        seq_id,
        service: lark_testkit::ws::SERVICE_ID,
        method: METHOD_DATA,
        headers: all,
        payload: Some(Bytes::from_static(payload)),
        ..Frame::default()
    }
}

#[tokio::test]
async fn deliveries_that_can_never_succeed_get_one_final_ack() {
    const LIMIT: usize = 4096;
    let platform = platform().await;
    let seen = Seen::default();
    let dispatcher = {
        let seen = seen.clone();
        EventDispatcher::builder()
            .body_limit(LIMIT)
            .on_raw("im.message.receive_v1", move |ctx, _event| {
                let seen = seen.clone();
                async move {
                    let id = ctx.event_id().unwrap_or_default().to_owned();
                    *seen.by_event_id.lock().unwrap().entry(id).or_default() += 1;
                    Ok(())
                }
            })
            .build()
            .unwrap()
    };
    let handle = connected(&builder(&platform, dispatcher).build().unwrap()).await;
    let ws = platform.ws();
    ws.redeliver_on_disconnect(false);

    // Frames whose headers can never work: acked (200, no data) by their SeqID.
    let raw = [
        raw_frame(101, &[("message_id", "m_sum"), ("sum", "many")], b"{}"),
        raw_frame(102, &[("message_id", "m_seq"), ("sum", "2"), ("seq", "x")], b"{}"),
        raw_frame(103, &[("sum", "2"), ("seq", "0")], b"{\"a\""),
        raw_frame(104, &[("message_id", "m_many"), ("sum", "5000"), ("seq", "0")], b"{}"),
        raw_frame(105, &[("message_id", "m_range"), ("sum", "3"), ("seq", "3")], b"{}"),
    ];
    for frame in &raw {
        assert!(ws.push_frame(frame));
    }
    // Payloads the dispatcher refuses for good: not JSON, over the body limit (whole or in
    // fragments).
    let big = serde_json::to_vec(&json!({"schema": "2.0", "padding": "x".repeat(2 * LIMIT)})).unwrap();
    let tracked = [
        ws.push(Push::raw("event", Bytes::from_static(b"not json"))),
        ws.push(Push::raw("event", big.clone())),
        ws.push(Push::raw("event", big).fragments(4)),
    ];
    let fine = message(1);
    let fine_id = ws.push_event(&fine);
    let expected = raw.len() + tracked.len() + 1;
    assert!(
        ws.wait_until_for(PATIENCE, |ws| ws.ack_count() == expected && ws.is_acked(&fine_id)).await,
        "{} acks",
        ws.ack_count()
    );

    let acks = ws.acks();
    for frame in &raw {
        let of_frame: Vec<_> = acks.iter().filter(|a| a.frame.seq_id == frame.seq_id).collect();
        assert_eq!(of_frame.len(), 1, "one ack for SeqID {}", frame.seq_id);
        assert_eq!(of_frame[0].ack, Some(Ack::OK), "SeqID {}", frame.seq_id);
        // The ack is the same frame.
        assert_eq!(of_frame[0].frame.headers[..frame.headers.len()], frame.headers[..]);
    }
    for id in &tracked {
        let of_message: Vec<_> = acks.iter().filter(|a| &a.message_id == id).collect();
        assert_eq!(of_message.len(), 1, "one ack for {id}");
        assert_eq!(of_message[0].ack, Some(Ack::OK), "{id}");
    }
    assert!(ws.unacked().is_empty(), "nothing for the platform to deliver again");
    assert_eq!((seen.total(), seen.times(&event_id(&fine))), (1, 1));
    assert_eq!((handle.state(), ws.handshakes()), (WsState::Connected, 1));
    handle.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_handler_past_the_ack_timeout_is_cancelled_and_acked_with_500() {
    struct Running(Arc<AtomicBool>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }
    let platform = platform().await;
    let running = Arc::new(AtomicBool::new(false));
    let dispatcher = {
        let running = running.clone();
        EventDispatcher::builder()
            .on_raw("im.message.receive_v1", move |_ctx, event| {
                let running = running.clone();
                async move {
                    if event["message"]["message_id"] == "om_0" {
                        running.store(true, Ordering::SeqCst);
                        let _guard = Running(running);
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                }
            })
            .build()
            .unwrap()
    };
    let handle = connected(&builder(&platform, dispatcher).build().unwrap()).await;
    let ws = platform.ws();

    let stuck = ws.push_event(&message(0));
    let others: Vec<String> = (1..=3).map(|i| ws.push_event(&message(i))).collect();
    let stuck_acks = |ws: &lark_testkit::ws::WsServer| -> Vec<lark_testkit::ws::RecordedAck> {
        ws.acks().into_iter().filter(|a| a.message_id == stuck).collect()
    };
    assert!(ws.wait_until_for(PATIENCE, |ws| others.iter().all(|id| ws.is_acked(id))).await);
    assert!(stuck_acks(&ws).is_empty(), "the others did not wait for the stuck handler");
    assert!(ws.wait_until_for(PATIENCE, |ws| !stuck_acks(ws).is_empty()).await);

    let acks = stuck_acks(&ws);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].ack, Some(Ack::FAILED), "acked with 500 so the platform delivers it again");
    let biz_rt = acks[0].biz_rt.unwrap();
    let timeout_ms = lark_events::ws::DEFAULT_ACK_TIMEOUT.as_millis() as u64;
    assert!((timeout_ms..timeout_ms + 100).contains(&biz_rt), "biz_rt {biz_rt}");
    assert!(!running.load(Ordering::SeqCst), "the handler was cancelled");
    for id in &others {
        let ack = ws.acks().into_iter().find(|a| &a.message_id == id).unwrap();
        assert_eq!(ack.ack, Some(Ack::OK));
    }
    // Nothing more comes for it.
    assert!(!ws.wait_until_for(Duration::from_secs(30), |ws| stuck_acks(ws).len() > 1).await);
    assert!(!ws.is_acked(&stuck));
    timeout(PATIENCE, handle.shutdown()).await.unwrap().unwrap();
}

#[tokio::test]
async fn fragments_are_reassembled_and_acked_once() {
    let platform = platform().await;
    let seen = Seen::default();
    let handle = connected(&builder(&platform, recording(&seen, false, 0)).build().unwrap()).await;
    let ws = platform.ws();

    let in_order = message(1);
    let reversed = message(2);
    let a = ws.push(Push::event(&in_order).fragments(3));
    let b = ws.push(Push::event(&reversed).fragments(5).reversed());
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.acked() == 2).await);
    assert_eq!(seen.times(&event_id(&in_order)), 1);
    assert_eq!(seen.times(&event_id(&reversed)), 1);

    let acks = ws.acks();
    assert_eq!(acks.len(), 2, "one ack per message, not per fragment");
    let ack_of = |id: &str| acks.iter().find(|x| x.message_id == id).unwrap().frame.clone();
    // The ack is the frame that completed the message.
    assert_eq!((ack_of(&a).header(HEADER_SUM), ack_of(&a).header(HEADER_SEQ)), (Some("3"), Some("2")));
    assert_eq!((ack_of(&b).header(HEADER_SUM), ack_of(&b).header(HEADER_SEQ)), (Some("5"), Some("0")));
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_is_ignored_and_the_connection_goes_on() {
    let platform = platform().await;
    let seen = Seen::default();
    let handle = connected(&builder(&platform, recording(&seen, false, 0)).build().unwrap()).await;
    let ws = platform.ws();

    assert!(ws.push_bytes(Bytes::from_static(b"\xff\xff\xff definitely not protobuf")));
    // A data frame with a nonsensical fragment header is acked for good, not handled.
    let bad_sum = Frame {
        method: METHOD_DATA,
        headers: vec![Header::new("type", "event"), Header::new("sum", "many")],
        payload: Some(Bytes::from_static(b"{}")),
        ..Frame::default()
    };
    assert!(ws.push_frame(&bad_sum));
    let id = ws.push_event(&message(1));
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.is_acked(&id) && ws.ack_count() == 2).await);
    let acks = ws.acks();
    assert_eq!(acks[0].frame.header(HEADER_SUM), Some("many"));
    assert_eq!(acks[0].ack, Some(Ack::OK));
    assert_eq!(seen.total(), 1);
    assert_eq!((handle.state(), ws.handshakes()), (WsState::Connected, 1));
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_run_concurrently_and_each_is_acked_exactly_once() {
    const N: usize = 1000;
    const BOUND: usize = 32;
    let platform = platform().await;
    let seen = Seen::default();
    let client =
        builder(&platform, recording(&seen, false, 20)).max_concurrent_handlers(BOUND).build().unwrap();
    let handle = connected(&client).await;
    let ws = platform.ws();

    let envelopes: Vec<Value> = (0..N).map(message).collect();
    let ids: Vec<String> = envelopes.iter().map(|e| ws.push_event(e)).collect();
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.acked() == N).await, "acked {} of {N}", ws.acked());

    let mut per_message: HashMap<String, usize> = HashMap::new();
    for ack in ws.acks() {
        assert_eq!(ack.ack.as_ref().map(|a| a.code), Some(200));
        *per_message.entry(ack.message_id).or_default() += 1;
    }
    assert_eq!(per_message.len(), N);
    assert!(ids.iter().all(|id| per_message[id] == 1), "every message acked exactly once");
    assert_eq!((seen.total(), seen.distinct()), (N, N), "every event handled exactly once");
    let max = seen.max_running.load(Ordering::SeqCst);
    assert!(max > 1 && max <= BOUND, "handlers ran concurrently within the bound: {max}");
    handle.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_stalls_neither_other_events_nor_pings() {
    let platform = platform().await;
    platform
        .ws()
        .set_client_config(Some(lark_events::ws::ClientConfig { ping_interval: Some(10), ..fast_config() }));
    let release = Arc::new(tokio::sync::Notify::new());
    let done = Arc::new(Mutex::new(Vec::new()));
    let dispatcher = {
        let (release, done) = (release.clone(), done.clone());
        EventDispatcher::builder()
            .on_raw("im.message.receive_v1", move |_ctx, event| {
                let (release, done) = (release.clone(), done.clone());
                async move {
                    let text = event["message"]["message_id"].as_str().unwrap_or_default().to_owned();
                    if text == "om_0" {
                        release.notified().await;
                    }
                    done.lock().unwrap().push(text);
                    Ok(())
                }
            })
            .build()
            .unwrap()
    };
    // The ack timeout is longer than the test: the slow handler is not cancelled.
    let client = builder(&platform, dispatcher).ack_timeout(Duration::from_secs(600)).build().unwrap();
    let handle = connected(&client).await;
    let ws = platform.ws();

    let slow = ws.push_event(&message(0));
    let fast: Vec<String> = (1..=5).map(|i| ws.push_event(&message(i))).collect();
    assert!(ws.wait_until_for(PATIENCE, |ws| fast.iter().all(|id| ws.is_acked(id))).await);
    assert!(!ws.is_acked(&slow));
    // Time goes on with the slow handler still running: pings keep their cadence.
    let pings_before = ws.pings().len();
    assert!(
        ws.wait_until_for(std::time::Duration::from_secs(35), |ws| ws.pings().len() >= pings_before + 3)
            .await
    );
    assert!(!ws.is_acked(&slow));

    release.notify_one();
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.is_acked(&slow)).await);
    assert_eq!(done.lock().unwrap().last().map(String::as_str), Some("om_0"));
    timeout(PATIENCE, handle.shutdown()).await.unwrap().unwrap();
}
