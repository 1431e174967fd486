//! The state of the long-connection side: settings, tickets, live connections, messages and
//! what was recorded; and the bootstrap endpoint.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use lark_events::ws::frame::{
    Frame, Header, HEADER_MESSAGE_ID, HEADER_SEQ, HEADER_SUM, HEADER_TIMESTAMP, HEADER_TRACE_ID, HEADER_TYPE,
    METHOD_DATA,
};
use lark_events::ws::ClientConfig;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch, Notify};

use super::conn::{self, Command};
use super::{Push, RecordedAck, RecordedPing, Refusal, WsServer, NO_CREDENTIAL, SERVICE_ID};
use crate::reply::{self, Reply};
use crate::state::{lock, random_hex, State};

/// A connection URL issued by the bootstrap endpoint, not used yet.
pub(super) struct Ticket {
    pub(super) access_key: String,
    pub(super) device_id: String,
}

/// A live connection, as the hub sees it.
pub(super) struct Conn {
    pub(super) tx: mpsc::UnboundedSender<Command>,
    pub(super) stalled: bool,
}

/// A pushed message.
pub(super) struct Msg {
    /// Its frames, in the order they are sent.
    frames: Vec<Bytes>,
    /// The connection it was last sent on.
    conn: Option<u64>,
    pub(super) acked: bool,
}

/// Everything behind the hub's lock.
pub(super) struct HubState {
    pub(super) client_config: Option<ClientConfig>,
    pub(super) pong_config: Option<ClientConfig>,
    pub(super) answer_pings: bool,
    pub(super) redeliver_on_disconnect: bool,
    pub(super) tickets: HashMap<String, Ticket>,
    pub(super) refusals: VecDeque<Refusal>,
    pub(super) conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    /// The connection that got the last message (round robin).
    cursor: u64,
    /// Messages waiting for a connection.
    queue: VecDeque<String>,
    pub(super) messages: HashMap<String, Msg>,
    pub(super) order: Vec<String>,
    pub(super) acked: usize,
    pub(super) acks: Vec<RecordedAck>,
    pub(super) pings: Vec<RecordedPing>,
    pub(super) bootstraps: usize,
    pub(super) handshakes: usize,
    pub(super) refused: usize,
    pub(super) undecodable: usize,
    /// Every connection URL the bootstrap endpoint issued, in order.
    pub(super) issued: Vec<String>,
    next_seq: u64,
    next_device: u64,
}

/// What the hub, its listener and its connections share.
pub(crate) struct Shared {
    state: Mutex<HubState>,
    /// Notified after every change, for [`WsServer::wait_until`].
    pub(super) changed: Notify,
    /// The WebSocket listener's address, once bound.
    listening: Mutex<Option<SocketAddr>>,
    bind_ip: Mutex<IpAddr>,
    /// Dropped (with the hub) or flipped to stop the listener and every connection.
    shutdown: watch::Receiver<bool>,
}

/// The long-connection side of one fake platform.
pub(crate) struct Hub {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn new() -> Hub {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = HubState {
            client_config: Some(ClientConfig {
                reconnect_count: Some(-1),
                reconnect_interval: Some(120),
                reconnect_nonce: Some(30),
                ping_interval: Some(120),
            }),
            pong_config: None,
            answer_pings: true,
            redeliver_on_disconnect: true,
            tickets: HashMap::new(),
            refusals: VecDeque::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            cursor: 0,
            queue: VecDeque::new(),
            messages: HashMap::new(),
            order: Vec::new(),
            acked: 0,
            acks: Vec::new(),
            pings: Vec::new(),
            bootstraps: 0,
            handshakes: 0,
            refused: 0,
            undecodable: 0,
            issued: Vec::new(),
            next_seq: 0,
            next_device: 0,
        };
        Hub {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                changed: Notify::new(),
                listening: Mutex::new(None),
                bind_ip: Mutex::new(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                shutdown: shutdown_rx,
            }),
            shutdown,
        }
    }

    /// The address the WebSocket listener binds (default loopback); set before it starts.
    pub(crate) fn set_bind_ip(&self, ip: IpAddr) {
        *lock(&self.shared.bind_ip) = ip;
    }

    pub(crate) fn server(&self) -> WsServer {
        WsServer { shared: self.shared.clone() }
    }

    /// Stops the listener and closes every connection.
    pub(crate) fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

#[derive(Deserialize)]
struct BootstrapBody {
    #[serde(rename = "AppID", default)]
    app_id: String,
    #[serde(rename = "AppSecret", default)]
    app_secret: String,
}

/// `POST /callback/ws/endpoint`.
pub(crate) fn bootstrap(state: &State, method: &Method, body: &[u8]) -> Reply {
    if method != Method::POST {
        return reply::not_found();
    }
    let Ok(creds) = serde_json::from_slice::<BootstrapBody>(body) else {
        return reply::code(StatusCode::BAD_REQUEST, reply::BAD_REQUEST, "the body is not a JSON object");
    };
    if creds.app_id != state.app_id || creds.app_secret != state.app_secret {
        return reply::code(StatusCode::OK, NO_CREDENTIAL, "no credential: invalid AppID or AppSecret");
    }
    let shared = &state.ws.shared;
    let addr = match shared.ensure_listening() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::warn!(error = %e, "lark-testkit: cannot bind the WebSocket listener");
            return reply::code(StatusCode::INTERNAL_SERVER_ERROR, 1_000_040_343, "internal error");
        }
    };
    let host = match addr.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let (access_key, ticket) = (random_hex(32), random_hex(32));
    let config = shared.update(|s| {
        s.next_device += 1;
        let device_id = format!("{}", 7_000_000_000u64 + s.next_device);
        s.bootstraps += 1;
        let url = format!(
            "ws://{}/ws/v2?fpid=493&aid=552564&device_id={device_id}&access_key={access_key}&service_id={SERVICE_ID}&ticket={ticket}",
            SocketAddr::new(host, addr.port())
        );
        s.tickets.insert(ticket.clone(), Ticket { access_key: access_key.clone(), device_id });
        s.issued.push(url.clone());
        (url, s.client_config)
    });
    let (url, client_config) = config;
    let mut data = json!({ "URL": url });
    if let Some(c) = client_config {
        data["ClientConfig"] = serde_json::to_value(c).unwrap_or_default();
    }
    reply::ok_data(data)
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

impl Shared {
    /// Runs `f` on the state, then wakes waiters.
    pub(super) fn update<T>(&self, f: impl FnOnce(&mut HubState) -> T) -> T {
        let out = f(&mut lock(&self.state));
        self.changed.notify_waiters();
        out
    }

    /// Reads the state.
    pub(super) fn read<T>(&self, f: impl FnOnce(&HubState) -> T) -> T {
        f(&lock(&self.state))
    }

    pub(super) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Binds the WebSocket listener on first use.
    fn ensure_listening(self: &Arc<Self>) -> std::io::Result<SocketAddr> {
        let mut listening = lock(&self.listening);
        if let Some(addr) = *listening {
            return Ok(addr);
        }
        let ip = *lock(&self.bind_ip);
        let std_listener = std::net::TcpListener::bind(SocketAddr::new(ip, 0))?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let addr = listener.local_addr()?;
        tokio::spawn(conn::listen(listener, self.clone()));
        *listening = Some(addr);
        Ok(addr)
    }

    /// Checks a handshake's query: the next queued refusal, else the ticket (used up here).
    pub(super) fn admit(&self, query: &str) -> Result<u64, Refusal> {
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                .unwrap_or_default()
        };
        self.update(|s| {
            if let Some(refusal) = s.refusals.pop_front() {
                s.refused += 1;
                return Err(refusal);
            }
            let valid = s
                .tickets
                .get(param("ticket"))
                .is_some_and(|t| t.access_key == param("access_key") && t.device_id == param("device_id"));
            if !valid {
                s.refused += 1;
                return Err(Refusal::other(514, None, "invalid or used ticket"));
            }
            s.tickets.remove(param("ticket"));
            s.handshakes += 1;
            s.next_conn += 1;
            Ok(s.next_conn)
        })
    }

    /// Registers an accepted connection and sends it the messages waiting for one.
    pub(super) fn connected(&self, id: u64, tx: mpsc::UnboundedSender<Command>) {
        self.update(|s| {
            s.conns.insert(id, Conn { tx, stalled: false });
            while let Some(msg) = s.queue.pop_front() {
                deliver(s, &msg);
            }
        });
    }

    /// Forgets a connection; its unacked messages go to another one (or wait), if so set.
    pub(super) fn disconnected(&self, id: u64) {
        self.update(|s| {
            s.conns.remove(&id);
            if !s.redeliver_on_disconnect {
                return;
            }
            let orphans: Vec<String> = s
                .order
                .iter()
                .filter(|m| s.messages.get(*m).is_some_and(|m| !m.acked && m.conn == Some(id)))
                .cloned()
                .collect();
            for msg in orphans {
                deliver(s, &msg);
            }
        });
    }

    pub(super) fn stalled(&self, id: u64) {
        self.update(|s| {
            if let Some(c) = s.conns.get_mut(&id) {
                c.stalled = true;
            }
        });
    }

    /// Records a ping; returns whether to answer it, and the pong's config.
    pub(super) fn record_ping(&self, ping: RecordedPing) -> (bool, Option<ClientConfig>) {
        self.update(|s| {
            s.pings.push(ping);
            (s.answer_pings, s.pong_config)
        })
    }

    pub(super) fn record_ack(&self, ack: RecordedAck) {
        self.update(|s| {
            if ack.ack.as_ref().is_some_and(|a| a.code == 200) {
                if let Some(m) = s.messages.get_mut(&ack.message_id) {
                    if !m.acked {
                        m.acked = true;
                        s.acked += 1;
                    }
                }
            }
            s.acks.push(ack);
        });
    }

    pub(super) fn record_undecodable(&self) {
        self.update(|s| s.undecodable += 1);
    }

    pub(super) fn push(&self, push: Push) -> String {
        self.update(|s| {
            s.next_seq += 1;
            let id = format!("msg_{}_{}", s.next_seq, random_hex(8));
            let trace_id = random_hex(16);
            let timestamp = now_ms().to_string();
            let n = push.fragments.max(1);
            let len = push.payload.len();
            let mut frames: Vec<Bytes> = (0..n)
                .map(|seq| {
                    let (start, end) = (seq * len / n, (seq + 1) * len / n);
                    s.next_seq += 1;
                    Frame {
                        seq_id: s.next_seq,
                        log_id: fastrand::u64(..),
                        service: SERVICE_ID,
                        method: METHOD_DATA,
                        headers: vec![
                            Header::new(HEADER_TYPE, push.kind.as_str()),
                            Header::new(HEADER_MESSAGE_ID, id.as_str()),
                            Header::new(HEADER_SUM, n.to_string()),
                            Header::new(HEADER_SEQ, seq.to_string()),
                            Header::new(HEADER_TRACE_ID, trace_id.as_str()),
                            Header::new(HEADER_TIMESTAMP, timestamp.as_str()),
                        ],
                        payload: Some(push.payload.slice(start..end)),
                        ..Frame::default()
                    }
                    .to_bytes()
                })
                .collect();
            if push.reversed {
                frames.reverse();
            }
            s.messages.insert(id.clone(), Msg { frames, conn: None, acked: false });
            s.order.push(id.clone());
            deliver(s, &id);
            id
        })
    }

    pub(super) fn redeliver_unacked(&self) -> usize {
        self.update(|s| {
            let unacked: Vec<String> =
                s.order.iter().filter(|m| s.messages.get(*m).is_some_and(|m| !m.acked)).cloned().collect();
            for msg in &unacked {
                deliver(s, msg);
            }
            unacked.len()
        })
    }

    pub(super) fn send_raw(&self, bytes: Bytes) -> bool {
        self.update(|s| match next_conn(s) {
            Some(id) => s.conns.get(&id).is_some_and(|c| c.tx.send(Command::Send(bytes)).is_ok()),
            None => false,
        })
    }

    pub(super) fn command_all(&self, command: Command) {
        self.update(|s| {
            for c in s.conns.values() {
                let _ = c.tx.send(command.clone());
            }
            if matches!(command, Command::Stall) {
                for c in s.conns.values_mut() {
                    c.stalled = true;
                }
            }
        });
    }
}

/// The next live, not stalled connection after the cursor (round robin).
fn next_conn(s: &mut HubState) -> Option<u64> {
    let live = |(id, c): (&u64, &Conn)| (!c.stalled).then_some(*id);
    let id = s.conns.range(s.cursor + 1..).find_map(live).or_else(|| s.conns.iter().find_map(live))?;
    s.cursor = id;
    Some(id)
}

/// Sends a message's frames to one connection, or queues it when there is none.
fn deliver(s: &mut HubState, msg: &str) {
    loop {
        let Some(id) = next_conn(s) else {
            if !s.queue.iter().any(|m| m == msg) {
                s.queue.push_back(msg.to_owned());
            }
            return;
        };
        let Some(m) = s.messages.get_mut(msg) else { return };
        let tx = &s.conns[&id].tx;
        if m.frames.iter().all(|f| tx.send(Command::Send(f.clone())).is_ok()) {
            m.conn = Some(id);
            return;
        }
        // The connection's task is gone: forget it and try another.
        s.conns.remove(&id);
    }
}
