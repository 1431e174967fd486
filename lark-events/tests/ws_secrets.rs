//! The connection URL's `access_key` and `ticket` never reach logs, at any level, neither the
//! client's own (`tracing`) nor its WebSocket library's (`log`), across connects, a refused
//! handshake, a reconnect and a stop.

#![cfg(feature = "ws")]

mod ws_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use lark_testkit::ws::{Push, Refusal};
use ws_support::*;

/// Every `log` record, formatted with its target.
static LOG_RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LOG_RECORDS.lock().unwrap().push(line);
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// The `tracing` output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The values of `access_key` and `ticket` in a connection URL.
fn secrets_of(url: &str) -> Vec<String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| matches!(*k, "access_key" | "ticket"))
        .map(|(_, v)| v.to_owned())
        .collect()
}

#[tokio::test]
async fn the_connection_secrets_never_reach_the_logs_even_at_trace() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let platform = platform().await;
    let ws = platform.ws();
    let seen = Seen::default();
    let client = builder(&platform, recording(&seen, false, 0)).build().unwrap();
    let handle = connected(&client).await;
    let first = ws.push_event(&message(1));
    let fragmented = ws.push(Push::event(&message(2)).fragments(3));
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.is_acked(&first) && ws.is_acked(&fragmented)).await);

    // A refused handshake, then a reconnect with a new URL.
    ws.refuse_handshakes(Refusal::other(500, None, "busy"), 1);
    ws.drop_connections();
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.handshakes() == 2).await);
    assert!(handle.connected().await);
    let again = ws.push_event(&message(3));
    assert!(ws.wait_until_for(PATIENCE, |ws| ws.is_acked(&again)).await);
    let handle_debug = format!("{handle:?} {client:?}");
    handle.shutdown().await.unwrap();

    let urls = ws.issued_urls();
    assert_eq!(urls.len(), 3, "three bootstraps: {urls:?}");
    let secrets: Vec<String> = urls.iter().flat_map(|u| secrets_of(u)).collect();
    assert_eq!(secrets.len(), 6);
    assert!(secrets.iter().all(|s| s.len() >= 16));

    let records = LOG_RECORDS.lock().unwrap().join("\n");
    let traces = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(records.contains("tungstenite"), "the WebSocket library's log records are captured");
    assert!(traces.contains("long connection established"), "the client's traces are captured");
    for secret in &secrets {
        assert!(!records.contains(secret.as_str()), "a secret leaked into the log records:\n{records}");
        assert!(!traces.contains(secret.as_str()), "a secret leaked into the traces:\n{traces}");
        assert!(!handle_debug.contains(secret.as_str()), "{handle_debug}");
    }
    assert!(!format!("{records}\n{traces}").contains(platform.app_secret()));
}
