//! The long-connection side of the fake platform ([`WsServer`], from
//! [`FakePlatform::ws`](crate::FakePlatform::ws)): the bootstrap endpoint and a WebSocket server
//! speaking the platform's protobuf frames.
//!
//! - `POST /callback/ws/endpoint` on the platform's base URL, body `{"AppID","AppSecret"}` →
//!   `{code:0, data:{URL, ClientConfig}}` with a fresh single-use `ws://127.0.0.1:PORT/ws/v2?…`
//!   URL (`device_id`, `service_id`, and the secrets `access_key` and `ticket`) and the
//!   configured [`ClientConfig`]. Wrong credentials: code [`NO_CREDENTIAL`]. Faults injected with
//!   [`Fault::on_path_prefix`](crate::Fault::on_path_prefix)`("/callback/ws")` apply as on
//!   any route (e.g. `Fault::api_error(1, "system busy")`).
//! - The WebSocket server checks the ticket (each URL works once), answers pings with pongs
//!   (optionally carrying a `ClientConfig`), and records pings and acks.
//! - [`WsServer::push`] sends an event or a card callback to one live connection (round robin;
//!   queued until one connects), optionally in fragments; a message counts as acked once an ack
//!   with code 200 comes back. Messages unacked when their connection ends are pushed again on
//!   the next connection (unless turned off), and [`WsServer::redeliver_unacked`] pushes them
//!   again on demand.
//! - Faults: [`WsServer::refuse_handshakes`] (with the platform's `Handshake-*` headers),
//!   [`WsServer::drop_connections`] (no close frame), [`WsServer::stall_connections`] (open but
//!   silent, like a half-open socket), garbage with [`WsServer::push_bytes`].
//!
//! ```no_run
//! use lark_testkit::events::{text_message, EventSigner};
//! use lark_testkit::ws::Push;
//! use lark_testkit::FakePlatform;
//!
//! # async fn demo() {
//! let platform = FakePlatform::start().await;
//! // ... start a lark_events::ws::WsClient with platform.base_url(), app_id() and app_secret() ...
//! let ws = platform.ws();
//! let event = EventSigner::new().event_v2("im.message.receive_v1", text_message("om_1", "oc_1", "ou_1", "hi"));
//! let message_id = ws.push(Push::event(&event).fragments(3));
//! ws.wait_until(|ws| ws.is_acked(&message_id)).await;
//! assert_eq!(ws.acks()[0].ack.as_ref().map(|a| a.code), Some(200));
//! # }
//! ```

mod conn;
mod hub;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lark_events::ws::frame::{Frame, TYPE_CARD, TYPE_EVENT};
use lark_events::ws::{Ack, ClientConfig};
use serde_json::Value;
use tokio::time::Instant;

use hub::Shared;
pub(crate) use hub::{bootstrap, Hub};

/// The bootstrap reply code for wrong credentials.
pub const NO_CREDENTIAL: i64 = 1_000_040_344;
/// The `service_id` of every connection URL (and so of every frame).
pub const SERVICE_ID: i32 = 33_554_678;

/// A handshake refusal, sent with the platform's `Handshake-Status`, `Handshake-Msg` and
/// `Handshake-Autherrcode` headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `Handshake-Status` (also the HTTP status when it is a valid one).
    pub status: i64,
    /// `Handshake-Autherrcode`, if any.
    pub auth_code: Option<i64>,
    /// `Handshake-Msg`.
    pub message: String,
}

impl Refusal {
    /// The app is banned: status 403 (final for the client).
    pub fn forbidden() -> Refusal {
        Refusal { status: 403, auth_code: None, message: "forbidden".into() }
    }

    /// Too many connections: status 514, auth code 1000040350 (final for the client).
    pub fn too_many_connections() -> Refusal {
        Refusal { status: 514, auth_code: Some(1_000_040_350), message: "exceed connection limit".into() }
    }

    /// Some other refusal (retryable for the client unless it is one of the above).
    pub fn other(status: i64, auth_code: Option<i64>, message: &str) -> Refusal {
        Refusal { status, auth_code, message: message.into() }
    }
}

/// A message to push: its type, payload and fragmentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    pub(crate) kind: String,
    pub(crate) payload: Bytes,
    pub(crate) fragments: usize,
    pub(crate) reversed: bool,
}

impl Push {
    /// An event (`type=event`): the plain envelope JSON, e.g. from
    /// [`EventSigner::event_v2`](crate::events::EventSigner::event_v2). New-style card
    /// callbacks (`card.action.trigger`) arrive this way too.
    pub fn event(envelope: &Value) -> Push {
        Push::raw(TYPE_EVENT, serde_json::to_vec(envelope).unwrap_or_default())
    }

    /// A card callback frame (`type=card`).
    pub fn card(body: &Value) -> Push {
        Push::raw(TYPE_CARD, serde_json::to_vec(body).unwrap_or_default())
    }

    /// Any `type` and payload bytes.
    pub fn raw(kind: &str, payload: impl Into<Bytes>) -> Push {
        Push { kind: kind.to_owned(), payload: payload.into(), fragments: 1, reversed: false }
    }

    /// Splits the payload into `n` fragments of about equal size (`sum` = `n`; at least 1, at
    /// most one per payload byte).
    #[must_use]
    pub fn fragments(mut self, n: usize) -> Push {
        self.fragments = n.clamp(1, self.payload.len().max(1));
        self
    }

    /// Sends the fragments last first.
    #[must_use]
    pub fn reversed(mut self) -> Push {
        self.reversed = true;
        self
    }
}

/// An ack the client sent.
#[derive(Clone, Debug)]
pub struct RecordedAck {
    /// The acked message (`message_id` header).
    pub message_id: String,
    /// Which connection it came on (connections are numbered from 1).
    pub connection: u64,
    /// The ack's payload, `None` if it is not ack JSON.
    pub ack: Option<Ack>,
    /// The `biz_rt` header, if it is a number.
    pub biz_rt: Option<u64>,
    /// The whole frame.
    pub frame: Frame,
}

/// A ping the client sent.
#[derive(Clone, Debug)]
pub struct RecordedPing {
    /// Which connection it came on.
    pub connection: u64,
    /// When it arrived (tokio time: paused in tests that pause it).
    pub at: Instant,
    /// The whole frame.
    pub frame: Frame,
}

/// The long-connection side of a [`FakePlatform`](crate::FakePlatform); cheap to clone.
#[derive(Clone)]
pub struct WsServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsServer").field("connections", &self.connections()).finish_non_exhaustive()
    }
}

impl WsServer {
    /// The `ClientConfig` of bootstrap replies from now on (default: the platform's usual
    /// `ReconnectCount -1, ReconnectInterval 120, ReconnectNonce 30, PingInterval 120`);
    /// `None` sends none.
    pub fn set_client_config(&self, config: Option<ClientConfig>) {
        self.shared.update(|s| s.client_config = config);
    }

    /// The `ClientConfig` pongs carry from now on (default none).
    pub fn set_pong_config(&self, config: Option<ClientConfig>) {
        self.shared.update(|s| s.pong_config = config);
    }

    /// Whether pings are answered (default yes).
    pub fn answer_pings(&self, answer: bool) {
        self.shared.update(|s| s.answer_pings = answer);
    }

    /// Whether messages unacked when their connection ends are pushed again on the next
    /// connection (default yes).
    pub fn redeliver_on_disconnect(&self, redeliver: bool) {
        self.shared.update(|s| s.redeliver_on_disconnect = redeliver);
    }

    /// Refuses the next `times` handshakes with `refusal`.
    pub fn refuse_handshakes(&self, refusal: Refusal, times: usize) {
        self.shared.update(|s| s.refusals.extend(std::iter::repeat_n(refusal, times)));
    }

    /// Pushes a message; returns its `message_id`.
    pub fn push(&self, push: Push) -> String {
        self.shared.push(push)
    }

    /// Pushes an event envelope in one frame; returns its `message_id`.
    pub fn push_event(&self, envelope: &Value) -> String {
        self.push(Push::event(envelope))
    }

    /// Sends a frame as is to one live connection (not tracked for acks); `false` if none.
    pub fn push_frame(&self, frame: &Frame) -> bool {
        self.shared.send_raw(frame.to_bytes())
    }

    /// Sends any bytes as one binary WebSocket message to one live connection; `false` if none.
    pub fn push_bytes(&self, bytes: impl Into<Bytes>) -> bool {
        self.shared.send_raw(bytes.into())
    }

    /// Pushes every message not acked yet again (those in flight too); returns how many.
    pub fn redeliver_unacked(&self) -> usize {
        self.shared.redeliver_unacked()
    }

    /// Drops every connection without a close frame.
    pub fn drop_connections(&self) {
        self.shared.command_all(conn::Command::Drop);
    }

    /// Closes every connection with a close frame.
    pub fn close_connections(&self) {
        self.shared.command_all(conn::Command::Close);
    }

    /// Makes every connection silent: open, but nothing is read, answered or pushed on it any
    /// more (a half-open socket). Messages pushed meanwhile go to other connections or wait.
    pub fn stall_connections(&self) {
        self.shared.command_all(conn::Command::Stall);
    }

    /// How many connections are open (stalled ones included).
    pub fn connections(&self) -> usize {
        self.shared.read(|s| s.conns.len())
    }

    /// How many handshakes were accepted so far.
    pub fn handshakes(&self) -> usize {
        self.shared.read(|s| s.handshakes)
    }

    /// How many handshakes were refused so far.
    pub fn refused_handshakes(&self) -> usize {
        self.shared.read(|s| s.refused)
    }

    /// How many bootstrap calls with the right credentials were answered.
    pub fn bootstraps(&self) -> usize {
        self.shared.read(|s| s.bootstraps)
    }

    /// Every connection URL the bootstrap endpoint issued, in order. They carry the secrets
    /// `access_key` and `ticket`: tests can check that a client never shows them.
    pub fn issued_urls(&self) -> Vec<String> {
        self.shared.read(|s| s.issued.clone())
    }

    /// How many messages were pushed.
    pub fn pushed(&self) -> usize {
        self.shared.read(|s| s.messages.len())
    }

    /// Whether `message_id` got an ack with code 200.
    pub fn is_acked(&self, message_id: &str) -> bool {
        self.shared.read(|s| s.messages.get(message_id).is_some_and(|m| m.acked))
    }

    /// How many pushed messages got an ack with code 200.
    pub fn acked(&self) -> usize {
        self.shared.read(|s| s.acked)
    }

    /// The message ids not acked yet, in push order.
    pub fn unacked(&self) -> Vec<String> {
        self.shared.read(|s| {
            s.order.iter().filter(|id| s.messages.get(*id).is_some_and(|m| !m.acked)).cloned().collect()
        })
    }

    /// Every ack received, in order.
    pub fn acks(&self) -> Vec<RecordedAck> {
        self.shared.read(|s| s.acks.clone())
    }

    /// How many acks were received.
    pub fn ack_count(&self) -> usize {
        self.shared.read(|s| s.acks.len())
    }

    /// Every ping received, in order.
    pub fn pings(&self) -> Vec<RecordedPing> {
        self.shared.read(|s| s.pings.clone())
    }

    /// How many binary messages from clients were neither pings nor data frames (garbage).
    pub fn undecodable_frames(&self) -> usize {
        self.shared.read(|s| s.undecodable)
    }

    /// Waits until `condition` holds, checking after every change (connection, ack, ping,
    /// bootstrap). Put a timeout around it.
    pub async fn wait_until(&self, mut condition: impl FnMut(&WsServer) -> bool) {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if condition(self) {
                return;
            }
            notified.await;
        }
    }

    /// Like [`wait_until`](Self::wait_until), giving up after `limit` (tokio time); `true` if
    /// the condition held.
    pub async fn wait_until_for(&self, limit: Duration, condition: impl FnMut(&WsServer) -> bool) -> bool {
        tokio::time::timeout(limit, self.wait_until(condition)).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use lark_events::ws::frame::{METHOD_CONTROL, TYPE_PONG};
    use lark_events::ws::{BOOTSTRAP_PATH, HANDSHAKE_STATUS};
    use serde_json::json;
    use tokio_tungstenite::tungstenite::Message;

    use super::*;
    use crate::FakePlatform;

    async fn bootstrap(p: &FakePlatform, secret: &str) -> Value {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let body = json!({"AppID": p.app_id(), "AppSecret": secret}).to_string();
        let req = http::Request::post(format!("{}{BOOTSTRAP_PATH}", p.base_url()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    async fn dial(url: &str) -> Result<WebSocketStreamTcp, tokio_tungstenite::tungstenite::Error> {
        let uri: http::Uri = url.parse().unwrap();
        let tcp = tokio::net::TcpStream::connect(uri.authority().unwrap().as_str()).await.unwrap();
        tokio_tungstenite::client_async(url, tcp).await.map(|(ws, _)| ws)
    }

    type WebSocketStreamTcp = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

    #[tokio::test]
    async fn a_bootstrap_url_works_once_and_pings_get_pongs() {
        let p = FakePlatform::start().await;
        let ws = p.ws();
        ws.set_pong_config(Some(ClientConfig { ping_interval: Some(7), ..ClientConfig::default() }));

        let refused = bootstrap(&p, "wrong").await;
        assert_eq!(refused["code"], NO_CREDENTIAL);
        let reply = bootstrap(&p, p.app_secret()).await;
        assert_eq!(reply["code"], 0);
        assert_eq!(reply["data"]["ClientConfig"]["PingInterval"], 120);
        let url = reply["data"]["URL"].as_str().unwrap().to_owned();
        for param in ["device_id=", "access_key=", "ticket=", &format!("service_id={SERVICE_ID}")] {
            assert!(url.contains(param), "{url}");
        }
        assert_eq!(ws.bootstraps(), 1);

        let mut conn = dial(&url).await.unwrap();
        assert!(ws.wait_until_for(Duration::from_secs(5), |ws| ws.connections() == 1).await);
        conn.send(Message::Binary(Frame::ping(SERVICE_ID).to_bytes())).await.unwrap();
        let Some(Ok(Message::Binary(bytes))) = conn.next().await else { panic!("no pong") };
        let pong = Frame::from_bytes(&bytes).unwrap();
        assert_eq!((pong.method, pong.kind(), pong.service), (METHOD_CONTROL, TYPE_PONG, SERVICE_ID));
        assert_eq!(pong.payload.as_deref(), Some(&br#"{"PingInterval":7}"#[..]));
        assert_eq!(ws.pings().len(), 1);

        // The same URL a second time: refused, as a used ticket.
        match dial(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.headers()[HANDSHAKE_STATUS], "514");
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        assert_eq!((ws.handshakes(), ws.refused_handshakes()), (1, 1));

        // Pushed before anyone listens: queued, then delivered.
        drop(conn);
        assert!(ws.wait_until_for(Duration::from_secs(5), |ws| ws.connections() == 0).await);
        let id = ws.push(Push::raw("event", Bytes::from_static(b"abcdef")).fragments(4));
        let url = bootstrap(&p, p.app_secret()).await["data"]["URL"].as_str().unwrap().to_owned();
        let mut conn = dial(&url).await.unwrap();
        let mut payload = Vec::new();
        for seq in 0..4 {
            let Some(Ok(Message::Binary(bytes))) = conn.next().await else { panic!("no frame") };
            let frame = Frame::from_bytes(&bytes).unwrap();
            assert_eq!(frame.header("message_id"), Some(id.as_str()));
            assert_eq!(
                (frame.header("sum"), frame.header("seq")),
                (Some("4"), Some(seq.to_string().as_str()))
            );
            payload.extend_from_slice(frame.payload.as_deref().unwrap());
        }
        assert_eq!(payload, b"abcdef");
    }
}
