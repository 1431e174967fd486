//! [`WsClient`]: receives events and callbacks over the long connection and answers them with
//! the same [`EventDispatcher`] as webhooks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use lark_services::Client;
use lark_types::{BoxError, ConfigError, Domain, LarkError, SecretString};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use super::connect::{bootstrap, dial, tls_connector, Failure, WsStream};
use super::error::{WsError, WsErrorKind};
use super::fragments::{FragmentError, Reassembler, MAX_MESSAGE_ID};
use super::frame::{
    Ack, ClientConfig, Frame, HEADER_MESSAGE_ID, HEADER_SEQ, HEADER_SUM, HEADER_TRACE_ID, METHOD_CONTROL,
    METHOD_DATA, TYPE_CARD, TYPE_EVENT, TYPE_PONG,
};
use super::url::ConnectUrl;
use crate::dispatcher::{EventDispatcher, Outcome};
use crate::error::EventErrorKind;

/// Default time between pings (the platform's pongs may change it): 120 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(120);
/// Default time between reconnect attempts (the platform may change it): 120 s.
pub const DEFAULT_RECONNECT_INTERVAL: Duration = Duration::from_secs(120);
/// Default bound of the random wait before the first reconnect attempt: 30 s.
pub const DEFAULT_RECONNECT_NONCE: Duration = Duration::from_secs(30);
/// Default number of handlers running at once: 64.
pub const DEFAULT_MAX_CONCURRENT_HANDLERS: usize = 64;
/// Default time a graceful stop waits for running handlers: 30 s.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default limit for one dial (TCP, TLS and the WebSocket handshake): 15 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default time the fragments of one message have to arrive: 5 s.
pub const DEFAULT_FRAGMENT_TIME_LIMIT: Duration = Duration::from_secs(5);
/// Default bound of the bytes held in incomplete fragmented messages: 16 MiB.
pub const DEFAULT_FRAGMENT_MEMORY: usize = 16 << 20;
/// Default time a handler has before its message is acked with 500 (and the handler cancelled):
/// 2.5 s. The platform wants the ack within 3 s; the rest is margin for the ack's trip.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_millis(2500);

/// The longest duration a setting may have: longer ones are taken as this (one year), so that
/// deadlines computed from them never overflow.
const MAX_SETTING: Duration = Duration::from_secs(365 * 24 * 3600);

/// Time limit of one write to the socket.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a closing connection waits for the platform's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds of settings the platform sends.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The connection settings in force (the platform's [`ClientConfig`] updates them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Settings {
    ping_interval: Duration,
    reconnect_interval: Duration,
    reconnect_nonce: Duration,
    /// Failed attempts in a row before giving up; `None`: no limit.
    reconnect_count: Option<u32>,
}

impl Settings {
    /// Applies the platform's settings: absent, zero or nonsensical values are ignored (a zero
    /// nonce means no jitter); a negative `ReconnectCount` means no limit.
    fn apply(&mut self, c: &ClientConfig) {
        let secs = |s: i64| Duration::from_secs(s.unsigned_abs()).clamp(MIN_INTERVAL, MAX_INTERVAL);
        if let Some(n) = c.reconnect_count {
            if n < 0 {
                self.reconnect_count = None;
            } else if n > 0 {
                self.reconnect_count = Some(u32::try_from(n).unwrap_or(u32::MAX));
            }
        }
        if let Some(s) = c.reconnect_interval.filter(|s| *s > 0) {
            self.reconnect_interval = secs(s);
        }
        if let Some(s) = c.reconnect_nonce.filter(|s| *s >= 0) {
            self.reconnect_nonce = if s == 0 { Duration::ZERO } else { secs(s) };
        }
        if let Some(s) = c.ping_interval.filter(|s| *s > 0) {
            self.ping_interval = secs(s);
        }
    }
}

/// Where the long-connection client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WsState {
    /// Bootstrapping and dialing for the first time.
    Connecting,
    /// Connected: receiving events.
    Connected,
    /// The connection was lost (or an attempt failed): waiting, bootstrapping again, dialing.
    Reconnecting,
    /// A stop was asked for: running handlers finish and are acked.
    Stopping,
    /// Stopped, by [`WsHandle::stop`] or a final error ([`WsHandle::wait`] tells which).
    Stopped,
}

#[derive(Clone, Debug)]
struct Status {
    state: WsState,
    error: Option<WsError>,
}

struct Inner {
    app_id: String,
    app_secret: SecretString,
    bootstrap: Client,
    dispatcher: EventDispatcher,
    tls: TlsConnector,
    proxy: lark_transport::Proxy,
    settings: Settings,
    max_concurrent: usize,
    idle_timeout: Option<Duration>,
    connect_timeout: Duration,
    stop_timeout: Duration,
    fragment_time_limit: Duration,
    fragment_memory: usize,
    ack_timeout: Duration,
    ws_config: WebSocketConfig,
}

/// Receives the platform's events and callbacks over the long connection (WebSocket), with no
/// public URL, and answers them with the same [`EventDispatcher`] (and handlers) as webhooks.
///
/// - Bootstraps with `POST /callback/ws/endpoint` (app id and secret), dials the URL it returns
///   (rustls for `wss://`), and pings on the platform's interval; pongs may update the settings.
/// - Reassembles fragmented messages (time limit and memory bound), runs handlers concurrently
///   (up to [`max_concurrent_handlers`](WsClientBuilder::max_concurrent_handlers); reading pauses
///   at the bound, pings go on), and acks each message when its handler is done: the same frame
///   plus `biz_rt`, code 200 with the callback's answer, or 500 so the platform delivers it again.
/// - The platform wants each ack within 3 s. A handler still running after the
///   [`ack_timeout`](WsClientBuilder::ack_timeout) (default 2.5 s) is cancelled (its future is
///   dropped) and its message acked with 500, so the platform delivers it again: the same as a
///   webhook whose HTTP request the platform gives up on. **Handlers with long work should
///   spawn it** (`tokio::spawn`) and return at once.
/// - Messages that can never be handled (a bad `sum`/`seq` header, fragments without a
///   `message_id` or beyond the limits, a payload the dispatcher refuses as malformed or too
///   large) are acked with 200 and no data, and logged as errors, so that the platform does not
///   deliver them again and again. A failed handler is acked with 500.
/// - Reconnects when the connection is lost or idle too long (a liveness watchdog), after a
///   random wait below the platform's `ReconnectNonce`, then every `ReconnectInterval`, with a
///   fresh bootstrap each time. Stops with a [`WsError`] on final refusals: bootstrap codes other
///   than "busy", `Handshake-Status` 403, 514 with `1000040350`.
/// - [`start`](Self::start) returns a [`WsHandle`] that stops it gracefully: running handlers
///   finish and are acked, then the connection is closed and nothing is left running.
///
/// The app secret and the connection URL's `access_key` and `ticket` never appear in `Debug`
/// output, logs or errors.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use lark_events::ws::WsClient;
/// use lark_events::EventDispatcher;
///
/// let client = lark_services::Client::builder("cli_a1b2c3d4e5f6a7b8", "app-secret").build()?;
/// let dispatcher = EventDispatcher::builder()
///     .client(client)
///     .dedup()
///     .on_raw("im.message.receive_v1", |_ctx, event| async move {
///         println!("message {}", event["message"]["message_id"]);
///         Ok(())
///     })
///     .build()?;
/// let handle = WsClient::builder("cli_a1b2c3d4e5f6a7b8", "app-secret", dispatcher).build()?.start();
/// tokio::signal::ctrl_c().await?;
/// handle.shutdown().await?; // running handlers finish and are acked
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WsClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for WsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("WsClient")
            .field("app_id", &i.app_id)
            .field("app_secret", &i.app_secret)
            .field("base_url", &i.bootstrap.base_url())
            .field("max_concurrent_handlers", &i.max_concurrent)
            .field("settings", &i.settings)
            .finish_non_exhaustive()
    }
}

impl WsClient {
    /// Starts building a client for a self-built app whose deliveries `dispatcher` handles.
    ///
    /// The bootstrap call goes through the dispatcher's [`Client`] (its base URL) when it has
    /// one, else to Feishu; see [`WsClientBuilder::client`] and [`WsClientBuilder::base_url`].
    pub fn builder(
        app_id: impl Into<String>,
        app_secret: impl Into<SecretString>,
        dispatcher: EventDispatcher,
    ) -> WsClientBuilder {
        WsClientBuilder {
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            dispatcher,
            client: None,
            base_url: None,
            settings: Settings {
                ping_interval: DEFAULT_PING_INTERVAL,
                reconnect_interval: DEFAULT_RECONNECT_INTERVAL,
                reconnect_nonce: DEFAULT_RECONNECT_NONCE,
                reconnect_count: None,
            },
            max_concurrent: DEFAULT_MAX_CONCURRENT_HANDLERS,
            idle_timeout: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            fragment_time_limit: DEFAULT_FRAGMENT_TIME_LIMIT,
            fragment_memory: DEFAULT_FRAGMENT_MEMORY,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            proxy: None,
        }
    }

    /// Connects and runs in a task on the current tokio runtime until stopped through the
    /// handle (or dropped handle) or by a final error.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub fn start(&self) -> WsHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (status_tx, status_rx) = watch::channel(Status { state: WsState::Connecting, error: None });
        let run = Run {
            settings: self.inner.settings,
            inner: self.inner.clone(),
            stop: stop_rx,
            status: status_tx,
            tasks: JoinSet::new(),
            generation: 0,
            stop_deadline: None,
        };
        let task = tokio::spawn(run.supervise());
        WsHandle { stop: stop_tx, status: status_rx, task: Some(task), ended: None }
    }

    /// Runs until a final error. Dropping the future asks the client to stop (gracefully, in
    /// the background); [`start`](Self::start) gives a handle to wait for that.
    pub async fn run(&self) -> Result<(), WsError> {
        let mut handle = self.start();
        handle.wait().await
    }
}

/// Settings of a [`WsClient`]; see [`WsClient::builder`]. Durations longer than a year are taken
/// as a year.
pub struct WsClientBuilder {
    app_id: String,
    app_secret: SecretString,
    dispatcher: EventDispatcher,
    client: Option<Client>,
    base_url: Option<String>,
    settings: Settings,
    max_concurrent: usize,
    idle_timeout: Option<Duration>,
    connect_timeout: Duration,
    stop_timeout: Duration,
    fragment_time_limit: Duration,
    fragment_memory: usize,
    ack_timeout: Duration,
    /// `None`: read from the environment when built.
    proxy: Option<lark_transport::Proxy>,
}

impl fmt::Debug for WsClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsClientBuilder")
            .field("app_id", &self.app_id)
            .field("app_secret", &self.app_secret)
            .field("base_url", &self.base_url)
            .field("settings", &self.settings)
            .field("max_concurrent_handlers", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl WsClientBuilder {
    /// Sends the bootstrap call through this client (its base URL, timeouts and retries).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Sends the bootstrap call to this base URL (such as `https://open.larksuite.com`, or
    /// lark-testkit's), through a client of its own.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sends the bootstrap call to `domain` (Feishu or Lark), through a client of its own.
    pub fn domain(self, domain: Domain) -> Self {
        let url = domain.base_url().to_owned();
        self.base_url(url)
    }

    /// How many handlers may run at once (default [`DEFAULT_MAX_CONCURRENT_HANDLERS`]); at the
    /// bound, reading pauses until one finishes (pings and acks go on).
    pub fn max_concurrent_handlers(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// The time between pings until the platform says otherwise (default 120 s).
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.settings.ping_interval = d;
        self
    }

    /// The time between reconnect attempts until the platform says otherwise (default 120 s).
    pub fn reconnect_interval(mut self, d: Duration) -> Self {
        self.settings.reconnect_interval = d;
        self
    }

    /// The bound of the random wait before the first reconnect attempt, until the platform says
    /// otherwise (default 30 s; zero: no wait).
    pub fn reconnect_nonce(mut self, d: Duration) -> Self {
        self.settings.reconnect_nonce = d;
        self
    }

    /// How many attempts in a row may fail before the client gives up, until the platform says
    /// otherwise (default `None`: no limit).
    pub fn reconnect_attempts(mut self, n: Option<u32>) -> Self {
        self.settings.reconnect_count = n;
        self
    }

    /// The liveness watchdog: with no frame at all for this long, the connection is taken as
    /// dead and the client reconnects (default: twice the ping interval plus 10 s).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }

    /// The time limit of one dial: TCP, TLS and the WebSocket handshake (default 15 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// The HTTP proxy the WebSocket connection goes through, as a `CONNECT` tunnel with TLS
    /// inside (default: [`Proxy::from_env`](lark_transport::Proxy::from_env), read when built;
    /// [`Proxy::none`](lark_transport::Proxy::none) for none). The bootstrap call goes through
    /// its [`Client`]'s own HTTP client and its proxy setting.
    pub fn proxy(mut self, proxy: lark_transport::Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// How long a graceful stop waits for running handlers before aborting them (default 30 s).
    pub fn stop_timeout(mut self, d: Duration) -> Self {
        self.stop_timeout = d;
        self
    }

    /// The time the fragments of one message have to arrive, from the first (default 5 s).
    pub fn fragment_time_limit(mut self, d: Duration) -> Self {
        self.fragment_time_limit = d;
        self
    }

    /// The bound of the bytes held in incomplete fragmented messages (default 16 MiB); the
    /// oldest incomplete messages are dropped to stay under it. One message is also bounded by
    /// the dispatcher's body limit.
    pub fn fragment_memory(mut self, bytes: usize) -> Self {
        self.fragment_memory = bytes;
        self
    }

    /// How long a handler may run before its message is acked with 500 (so the platform delivers
    /// it again) and the handler is cancelled (default [`DEFAULT_ACK_TIMEOUT`], 2.5 s). The
    /// platform wants the ack within 3 s: a longer timeout only makes sense against another
    /// server. Long work belongs in a task the handler spawns.
    pub fn ack_timeout(mut self, d: Duration) -> Self {
        self.ack_timeout = d;
        self
    }

    /// Checks the settings and builds the client. Durations longer than a year are taken as a
    /// year.
    pub fn build(self) -> Result<WsClient, LarkError> {
        let fail = |msg: &str| Err(LarkError::Config(ConfigError::new(msg.to_owned())));
        if self.app_id.is_empty() || self.app_secret.is_empty() {
            return fail("the long connection needs the app id and app secret");
        }
        if self.max_concurrent == 0 {
            return fail("max_concurrent_handlers must be at least 1");
        }
        let s = &self.settings;
        let zero = [
            s.ping_interval,
            s.reconnect_interval,
            self.connect_timeout,
            self.fragment_time_limit,
            self.ack_timeout,
        ];
        if zero.iter().any(Duration::is_zero) || self.idle_timeout.is_some_and(|d| d.is_zero()) {
            return fail("ping_interval, reconnect_interval, idle_timeout, connect_timeout, fragment_time_limit and ack_timeout must be greater than zero");
        }
        if s.reconnect_count == Some(0) {
            return fail("reconnect_attempts must be at least 1 (or None for no limit)");
        }
        if self.fragment_memory == 0 {
            return fail("fragment_memory must be greater than zero");
        }
        let bootstrap = match (self.client, self.base_url) {
            (Some(_), Some(_)) => {
                return fail("set either client or base_url/domain for the bootstrap call, not both")
            }
            (Some(client), None) => client,
            (None, Some(url)) => {
                Client::builder(self.app_id.clone(), self.app_secret.clone()).base_url(url).build()?
            }
            (None, None) => match self.dispatcher.client() {
                Some(client) => client.clone(),
                None => Client::builder(self.app_id.clone(), self.app_secret.clone()).build()?,
            },
        };
        if bootstrap.tokens().app_id() != self.app_id {
            return fail("the bootstrap client belongs to another app id");
        }
        let tls = tls_connector()?;
        let proxy = match self.proxy {
            Some(proxy) => proxy,
            None => lark_transport::Proxy::from_env()?,
        };
        // A frame is one message plus a few headers.
        let max_message = self.dispatcher.body_limit().saturating_add(64 << 10);
        let mut ws_config = WebSocketConfig::default();
        // Each read zero-fills this much of the read buffer first: frames are small, so keep it
        // small (the default is 128 KiB).
        ws_config.read_buffer_size = 16 << 10;
        ws_config.max_message_size = Some(max_message);
        ws_config.max_frame_size = Some(max_message);
        let clamp = |d: Duration| d.min(MAX_SETTING);
        let settings = Settings {
            ping_interval: clamp(self.settings.ping_interval),
            reconnect_interval: clamp(self.settings.reconnect_interval),
            reconnect_nonce: clamp(self.settings.reconnect_nonce),
            reconnect_count: self.settings.reconnect_count,
        };
        Ok(WsClient {
            inner: Arc::new(Inner {
                app_id: self.app_id,
                app_secret: self.app_secret,
                bootstrap,
                dispatcher: self.dispatcher,
                tls,
                proxy,
                settings,
                max_concurrent: self.max_concurrent,
                idle_timeout: self.idle_timeout.map(clamp),
                connect_timeout: clamp(self.connect_timeout),
                stop_timeout: clamp(self.stop_timeout),
                fragment_time_limit: clamp(self.fragment_time_limit),
                fragment_memory: self.fragment_memory,
                ack_timeout: clamp(self.ack_timeout),
                ws_config,
            }),
        })
    }
}

/// Controls a started [`WsClient`]: its state, a graceful stop, its end.
///
/// Dropping the handle asks the client to stop (gracefully, in the background).
#[must_use = "dropping the handle stops the client"]
pub struct WsHandle {
    stop: watch::Sender<bool>,
    status: watch::Receiver<Status>,
    task: Option<JoinHandle<()>>,
    ended: Option<WsError>,
}

impl fmt::Debug for WsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsHandle").field("state", &self.state()).finish_non_exhaustive()
    }
}

impl WsHandle {
    /// Where the client is now.
    pub fn state(&self) -> WsState {
        self.status.borrow().state
    }

    /// Asks the client to stop: it reads no more messages, lets running handlers finish (up to
    /// the stop timeout) and acks them, closes the connection and ends. Returns at once; see
    /// [`wait`](Self::wait) and [`shutdown`](Self::shutdown).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until the client is in `state`; `false` if it stopped first (`true` at once when
    /// it is in `state` now). A state the client passes through quickly may be missed (then
    /// this waits on); put a timeout around it when that matters.
    ///
    /// ```no_run
    /// # async fn demo(handle: lark_events::ws::WsHandle) {
    /// use lark_events::ws::WsState;
    ///
    /// handle.stop();
    /// // Running handlers are finishing.
    /// assert!(handle.wait_for_state(WsState::Stopping).await);
    /// # }
    /// ```
    pub async fn wait_for_state(&self, state: WsState) -> bool {
        let mut status = self.status.clone();
        let reached = status.wait_for(|s| s.state == state || s.state == WsState::Stopped).await;
        reached.is_ok_and(|s| s.state == state)
    }

    /// Waits until the client is connected; `false` if it stopped first.
    pub async fn connected(&self) -> bool {
        let mut status = self.status.clone();
        let reached = status.wait_for(|s| matches!(s.state, WsState::Connected | WsState::Stopped)).await;
        reached.is_ok_and(|s| s.state == WsState::Connected)
    }

    /// Waits until the client has ended and nothing of it runs any more: `Ok` after a stop,
    /// the final error otherwise. Cancel-safe; may be called again.
    pub async fn wait(&mut self) -> Result<(), WsError> {
        if let Some(task) = &mut self.task {
            let joined = task.await;
            self.task = None;
            if let Err(e) = joined {
                self.ended = Some(WsError::new(WsErrorKind::Internal).with_source(e));
            }
        }
        match (&self.ended, &self.status.borrow().error) {
            (Some(e), _) | (None, Some(e)) => Err(e.clone()),
            (None, None) => Ok(()),
        }
    }

    /// [`stop`](Self::stop), then [`wait`](Self::wait).
    pub async fn shutdown(mut self) -> Result<(), WsError> {
        self.stop();
        self.wait().await
    }
}

impl Drop for WsHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// What a handler task hands back: the ack, for the connection it came from.
struct Done {
    generation: u64,
    ack: Frame,
}

/// How a session ended.
enum End {
    Stopped,
    Lost(BoxError),
}

/// The supervisor: one task owning the connection, the settings and the handler tasks.
struct Run {
    inner: Arc<Inner>,
    settings: Settings,
    stop: watch::Receiver<bool>,
    status: watch::Sender<Status>,
    /// Handler tasks; they outlive a lost connection (their acks are then dropped).
    tasks: JoinSet<Done>,
    /// Counts connections, so acks go only to the connection their message came from.
    generation: u64,
    /// When a stop was asked for, the time running handlers must be done by.
    stop_deadline: Option<Instant>,
}

impl Run {
    async fn supervise(mut self) {
        let result = self.main_loop().await;
        self.drain().await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "the long connection stopped");
        }
        self.status.send_modify(|s| {
            s.state = WsState::Stopped;
            s.error = result.err();
        });
    }

    fn set_state(&self, state: WsState) {
        self.status.send_if_modified(|s| {
            let changed = s.state != state;
            s.state = state;
            changed
        });
    }

    fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    fn note_stop(&mut self) {
        if self.stop_deadline.is_none() {
            self.stop_deadline = Some(Instant::now() + self.inner.stop_timeout);
            self.set_state(WsState::Stopping);
        }
    }

    async fn main_loop(&mut self) -> Result<(), WsError> {
        let mut first = true;
        loop {
            let Some((ws, url)) = self.connect(first).await? else { return Ok(()) };
            first = false;
            self.generation += 1;
            self.set_state(WsState::Connected);
            tracing::info!(url = %url, device_id = url.device_id().unwrap_or_default(), "long connection established");
            match self.session(ws, &url).await {
                End::Stopped => return Ok(()),
                End::Lost(reason) => {
                    tracing::warn!(reason = %reason, url = %url, "long connection lost; reconnecting");
                }
            }
            if self.stop_requested() {
                return Ok(());
            }
            self.set_state(WsState::Reconnecting);
        }
    }

    /// Waits `d`; `false` when a stop was asked for meanwhile.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = stop_asked(&mut self.stop) => false,
            _ = sleep(d) => true,
        }
    }

    /// Bootstraps and dials until connected (`None`: stopped first), retrying retryable
    /// failures every reconnect interval; after a lost connection, first waits a random time
    /// below the reconnect nonce.
    async fn connect(&mut self, first: bool) -> Result<Option<(WsStream, ConnectUrl)>, WsError> {
        if !first && !self.settings.reconnect_nonce.is_zero() {
            let nonce = self.settings.reconnect_nonce.as_millis().min(u128::from(u64::MAX)) as u64;
            if !self.pause(Duration::from_millis(fastrand::u64(0..nonce.max(1)))).await {
                return Ok(None);
            }
        }
        let mut failures = 0u32;
        loop {
            if self.stop_requested() {
                return Ok(None);
            }
            let attempt = tokio::select! {
                _ = stop_asked(&mut self.stop) => return Ok(None),
                a = attempt(&self.inner, &mut self.settings) => a,
            };
            match attempt {
                Ok(connected) => return Ok(Some(connected)),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Retry(e)) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "long connection attempt failed; retrying");
                    if self.settings.reconnect_count.is_some_and(|max| failures >= max) {
                        return Err(WsError::new(WsErrorKind::ReconnectsExhausted)
                            .with_message(format!("{failures} attempts in a row failed"))
                            .with_source(e));
                    }
                }
            }
            if !self.pause(self.settings.reconnect_interval).await {
                return Ok(None);
            }
        }
    }

    fn idle_timeout(&self) -> Duration {
        self.inner.idle_timeout.unwrap_or(self.settings.ping_interval * 2 + Duration::from_secs(10))
    }

    /// Serves one connection until it is lost or the client stops.
    async fn session(&mut self, mut ws: WsStream, url: &ConnectUrl) -> End {
        let inner = self.inner.clone();
        let service = url.service_id();
        let mut fragments =
            Reassembler::new(inner.fragment_memory, inner.dispatcher.body_limit(), inner.fragment_time_limit);
        // Ping at once: the pong may bring the settings.
        let mut last_ping = Instant::now();
        if let Err(e) = send(&mut ws, &Frame::ping(service)).await {
            return End::Lost(e);
        }
        let mut last_seen = Instant::now();
        // Timers live across iterations (re-arming one per message would cost more than the
        // message); the watchdog is pushed back lazily when it fires.
        let mut idle_limit = self.idle_timeout();
        let ping_timer = sleep_until(last_ping + self.settings.ping_interval);
        let idle_timer = sleep_until(last_seen + idle_limit);
        tokio::pin!(ping_timer, idle_timer);
        loop {
            let now = Instant::now();
            let stopping = self.stop_deadline.is_some();
            let reading = !stopping && self.tasks.len() < inner.max_concurrent;
            if !reading {
                // The watchdog only counts time spent reading.
                last_seen = now;
            }
            let next_ping = last_ping + self.settings.ping_interval;
            if ping_timer.deadline() != next_ping {
                ping_timer.as_mut().reset(next_ping);
            }
            // A pong changed the ping interval, and so the watchdog's limit: re-arm it now (a
            // shorter limit would otherwise only apply when the old timer fires).
            let limit = self.idle_timeout();
            if limit != idle_limit {
                idle_limit = limit;
                idle_timer.as_mut().reset(last_seen + limit);
            }
            let stop_deadline = self.stop_deadline.unwrap_or(now);
            tokio::select! {
                biased;
                _ = stop_asked(&mut self.stop), if !stopping => {
                    self.note_stop();
                    if self.tasks.is_empty() {
                        close(&mut ws).await;
                        return End::Stopped;
                    }
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    let mut acks = Vec::new();
                    let generation = self.generation;
                    let mut collect = |joined: Result<Done, tokio::task::JoinError>| match joined {
                        Ok(done) if done.generation == generation => acks.push(done.ack),
                        Ok(_) => tracing::debug!("the ack of a message from a lost connection is dropped"),
                        Err(e) if e.is_cancelled() => {}
                        Err(e) => tracing::error!(error = %e, "a handler task failed; its message is not acked"),
                    };
                    collect(joined);
                    while let Some(more) = self.tasks.try_join_next() {
                        collect(more);
                    }
                    if let Err(e) = send_all(&mut ws, &acks).await {
                        return if stopping { End::Stopped } else { End::Lost(e) };
                    }
                    if stopping && self.tasks.is_empty() {
                        close(&mut ws).await;
                        return End::Stopped;
                    }
                }
                _ = sleep_until(stop_deadline), if stopping => {
                    tracing::warn!(running = self.tasks.len(), "handlers still running at the stop timeout are aborted");
                    self.tasks.abort_all();
                    close(&mut ws).await;
                    return End::Stopped;
                }
                () = ping_timer.as_mut() => {
                    last_ping = Instant::now();
                    fragments.expire(last_ping);
                    if let Err(e) = send(&mut ws, &Frame::ping(service)).await {
                        return if stopping { End::Stopped } else { End::Lost(e) };
                    }
                }
                () = idle_timer.as_mut(), if reading => {
                    let deadline = last_seen + self.idle_timeout();
                    if deadline <= Instant::now() {
                        return End::Lost(format!("no frame for {:?}", self.idle_timeout()).into());
                    }
                    idle_timer.as_mut().reset(deadline);
                }
                message = ws.next(), if reading => {
                    last_seen = Instant::now();
                    match message {
                        None => return End::Lost("the platform closed the connection".into()),
                        Some(Err(e)) => return End::Lost(e.into()),
                        Some(Ok(Message::Binary(bytes))) => {
                            if let Err(e) = self.on_frame(&bytes, &mut ws, &mut fragments).await {
                                return End::Lost(e);
                            }
                        }
                        Some(Ok(Message::Close(_))) => return End::Lost("the platform closed the connection".into()),
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
    }

    /// Handles one binary message: pongs update the settings; data frames (once whole) go to
    /// a handler task. Only a failed write is an error.
    async fn on_frame(
        &mut self,
        bytes: &Bytes,
        ws: &mut WsStream,
        fragments: &mut Reassembler,
    ) -> Result<(), BoxError> {
        let mut frame = match Frame::from_bytes(bytes) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!(error = %e, len = bytes.len(), "an undecodable frame is ignored");
                return Ok(());
            }
        };
        match frame.method {
            METHOD_CONTROL => {
                if frame.kind() == TYPE_PONG {
                    if let Some(payload) = frame.payload.as_ref().filter(|p| !p.is_empty()) {
                        match serde_json::from_slice::<ClientConfig>(payload) {
                            Ok(config) => {
                                self.settings.apply(&config);
                                tracing::debug!(settings = ?self.settings, "settings updated by a pong");
                            }
                            Err(e) => tracing::warn!(error = %e, "a pong's settings are not JSON; ignored"),
                        }
                    }
                }
                Ok(())
            }
            METHOD_DATA => {
                let sum = frame.header(HEADER_SUM).map_or(Ok(1), |v| v.trim().parse::<usize>());
                let seq = frame.header(HEADER_SEQ).map_or(Ok(0), |v| v.trim().parse::<usize>());
                let payload = frame.payload.take().unwrap_or_default();
                let payload = match (sum, seq) {
                    (Ok(0 | 1), _) => payload,
                    (Ok(sum), Ok(seq)) => {
                        let id = frame.header(HEADER_MESSAGE_ID).unwrap_or_default();
                        match fragments.add(id, sum, seq, payload, Instant::now()) {
                            Ok(Some(whole)) => whole,
                            Ok(None) => return Ok(()),
                            Err(FragmentError::AlreadyRefused) => {
                                tracing::debug!(
                                    message_id = shown(id),
                                    "a fragment of a refused message is dropped"
                                );
                                return Ok(());
                            }
                            Err(e) if e.is_permanent() => {
                                tracing::error!(
                                    message_id = shown(id),
                                    sum,
                                    seq,
                                    error = %e,
                                    "a fragment that can never be reassembled is acked so that the platform does not deliver it again"
                                );
                                return send(ws, &frame.to_ack(&Ack::OK, 0)).await;
                            }
                            Err(e) => {
                                tracing::warn!(message_id = shown(id), error = %e, "a fragment is dropped");
                                return Ok(());
                            }
                        }
                    }
                    _ => {
                        tracing::error!(
                            message_id = shown(frame.header(HEADER_MESSAGE_ID).unwrap_or_default()),
                            "a data frame with a sum or seq header that is not a number is acked so that the platform does not deliver it again"
                        );
                        return send(ws, &frame.to_ack(&Ack::OK, 0)).await;
                    }
                };
                if !matches!(frame.kind(), TYPE_EVENT | TYPE_CARD) {
                    tracing::debug!(
                        kind = frame.kind(),
                        "a data frame of an unknown type is acked unhandled"
                    );
                    return send(ws, &frame.to_ack(&Ack::OK, 0)).await;
                }
                self.spawn_handler(frame, payload);
                Ok(())
            }
            other => {
                tracing::debug!(method = other, "a frame of an unknown method is ignored");
                Ok(())
            }
        }
    }

    fn spawn_handler(&mut self, frame: Frame, payload: Bytes) {
        let dispatcher = self.inner.dispatcher.clone();
        let ack_timeout = self.inner.ack_timeout;
        let generation = self.generation;
        let span = tracing::debug_span!(
            "lark_ws_message",
            message_id = frame.header(HEADER_MESSAGE_ID).unwrap_or_default(),
            trace_id = frame.header(HEADER_TRACE_ID).unwrap_or_default(),
        );
        self.tasks.spawn(
            async move {
                let started = Instant::now();
                // On expiry the handler's future is dropped: the handler is cancelled.
                let result = timeout(ack_timeout, dispatcher.handle_plain(payload)).await;
                let biz_rt = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let message_id = || shown(frame.header(HEADER_MESSAGE_ID).unwrap_or_default());
                let ack = match result {
                    Ok(Ok(outcome)) => Ack { code: 200, data: answer(&outcome) },
                    Ok(Err(e)) if never_succeeds(e.kind()) => {
                        tracing::error!(
                            message_id = message_id(),
                            error = %e,
                            "a delivery that can never be handled is acked so that the platform does not deliver it again"
                        );
                        Ack::OK
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "the delivery failed; acked with 500 so the platform delivers it again");
                        Ack::FAILED
                    }
                    Err(_) => {
                        tracing::warn!(
                            message_id = message_id(),
                            ack_timeout_ms = u64::try_from(ack_timeout.as_millis()).unwrap_or(u64::MAX),
                            "the handler did not finish within the ack timeout: it is cancelled and the message acked with 500 so the platform delivers it again"
                        );
                        Ack::FAILED
                    }
                };
                Done { generation, ack: frame.to_ack(&ack, biz_rt) }
            }
            .instrument(span),
        );
    }

    /// Lets handlers still running finish (their acks have nowhere to go), up to the stop
    /// deadline, then aborts the rest and waits for them: nothing is left running.
    async fn drain(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        self.note_stop();
        let deadline = self.stop_deadline.unwrap_or_else(Instant::now);
        let tasks = &mut self.tasks;
        let _ = timeout_at(deadline, async { while tasks.join_next().await.is_some() {} }).await;
        if !self.tasks.is_empty() {
            tracing::warn!(
                running = self.tasks.len(),
                "handlers still running at the stop timeout are aborted"
            );
            self.tasks.shutdown().await;
        }
    }
}

/// Completes when a stop is asked for (or the handle is gone).
async fn stop_asked(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One attempt: bootstrap (which may bring settings), then dial.
async fn attempt(inner: &Inner, settings: &mut Settings) -> Result<(WsStream, ConnectUrl), Failure> {
    let endpoint = bootstrap(&inner.bootstrap, &inner.app_id, &inner.app_secret).await?;
    if let Some(config) = &endpoint.config {
        settings.apply(config);
    }
    match timeout(inner.connect_timeout, dial(&endpoint.url, &inner.tls, &inner.proxy, inner.ws_config)).await
    {
        Ok(Ok(ws)) => Ok((ws, endpoint.url)),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(Failure::Retry(format!("dialing timed out after {:?}", inner.connect_timeout).into())),
    }
}

/// Whether a delivery refused with `kind` can never succeed, however often the platform
/// delivers it: its bytes are what they are. Handler and store failures may pass next time.
fn never_succeeds(kind: EventErrorKind) -> bool {
    match kind {
        EventErrorKind::Malformed
        | EventErrorKind::BodyTooLarge
        | EventErrorKind::BadSignature
        | EventErrorKind::BadToken
        | EventErrorKind::Stale => true,
        EventErrorKind::Handler | EventErrorKind::Store => false,
    }
}

/// A `message_id` from the network, cut for logs.
fn shown(message_id: &str) -> &str {
    if message_id.len() <= MAX_MESSAGE_ID {
        return message_id;
    }
    let mut end = MAX_MESSAGE_ID;
    while !message_id.is_char_boundary(end) {
        end -= 1;
    }
    &message_id[..end]
}

/// The `data` of an ack: the answer of a callback; nothing for events.
fn answer(outcome: &Outcome) -> Option<Bytes> {
    match outcome {
        Outcome::Replied(_) | Outcome::Challenge(_) => Some(outcome.body()),
        Outcome::Handled | Outcome::Unhandled | Outcome::Duplicate => None,
    }
}

/// Writes one frame.
async fn send(ws: &mut WsStream, frame: &Frame) -> Result<(), BoxError> {
    send_all(ws, std::slice::from_ref(frame)).await
}

/// Writes several frames with one flush, within the write time limit.
async fn send_all(ws: &mut WsStream, frames: &[Frame]) -> Result<(), BoxError> {
    if frames.is_empty() {
        return Ok(());
    }
    let write = async {
        for frame in frames {
            ws.feed(Message::Binary(frame.to_bytes())).await?;
        }
        ws.flush().await
    };
    match timeout(WRITE_TIMEOUT, write).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err("a write timed out".into()),
    }
}

/// Closes the connection politely: a close frame, then the platform's, briefly.
async fn close(ws: &mut WsStream) {
    let _ = timeout(CLOSE_TIMEOUT, async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings {
            ping_interval: DEFAULT_PING_INTERVAL,
            reconnect_interval: DEFAULT_RECONNECT_INTERVAL,
            reconnect_nonce: DEFAULT_RECONNECT_NONCE,
            reconnect_count: None,
        }
    }

    #[test]
    fn platform_settings_apply_within_bounds() {
        let mut s = defaults();
        s.apply(&ClientConfig {
            reconnect_count: Some(3),
            reconnect_interval: Some(5),
            reconnect_nonce: Some(0),
            ping_interval: Some(1_000_000),
        });
        assert_eq!(
            s,
            Settings {
                ping_interval: MAX_INTERVAL,
                reconnect_interval: Duration::from_secs(5),
                reconnect_nonce: Duration::ZERO,
                reconnect_count: Some(3),
            }
        );
        // Absent and zero fields change nothing; a negative count lifts the limit.
        let before = Settings { reconnect_count: None, ..s };
        s.apply(&ClientConfig {
            reconnect_count: Some(-1),
            ping_interval: Some(0),
            ..ClientConfig::default()
        });
        assert_eq!(s, before);
        s.apply(&ClientConfig {
            reconnect_count: Some(0),
            reconnect_interval: Some(-4),
            ..ClientConfig::default()
        });
        assert_eq!(s, before);
    }

    #[test]
    fn builder_refuses_bad_settings() {
        let dispatcher = || EventDispatcher::builder().build().unwrap();
        let bad = [
            WsClient::builder("", "secret", dispatcher()),
            WsClient::builder("cli_1", "secret", dispatcher()).max_concurrent_handlers(0),
            WsClient::builder("cli_1", "secret", dispatcher()).ping_interval(Duration::ZERO),
            WsClient::builder("cli_1", "secret", dispatcher()).ack_timeout(Duration::ZERO),
            WsClient::builder("cli_1", "secret", dispatcher()).reconnect_attempts(Some(0)),
            WsClient::builder("cli_1", "secret", dispatcher())
                .base_url("http://127.0.0.1:1")
                .client(Client::builder("cli_1", "secret").build().unwrap()),
            WsClient::builder("cli_1", "secret", dispatcher())
                .client(Client::builder("cli_2", "s").build().unwrap()),
        ];
        for b in bad {
            assert!(matches!(b.build(), Err(LarkError::Config(_))));
        }
        let ok =
            WsClient::builder("cli_1", "the-app-secret", dispatcher()).base_url("http://127.0.0.1:1").build();
        let shown = format!("{:?}", ok.unwrap());
        assert!(!shown.contains("the-app-secret"), "{shown}");
    }

    #[test]
    fn huge_durations_are_taken_as_a_year() {
        let client = WsClient::builder("cli_1", "secret", EventDispatcher::builder().build().unwrap())
            .base_url("http://127.0.0.1:1")
            .ping_interval(Duration::MAX)
            .reconnect_interval(Duration::MAX)
            .reconnect_nonce(Duration::MAX)
            .idle_timeout(Duration::MAX)
            .connect_timeout(Duration::MAX)
            .stop_timeout(Duration::MAX)
            .fragment_time_limit(Duration::MAX)
            .ack_timeout(Duration::MAX)
            .build()
            .unwrap();
        let i = &client.inner;
        let s = i.settings;
        for d in [
            s.ping_interval,
            s.reconnect_interval,
            s.reconnect_nonce,
            i.idle_timeout.unwrap_or_default(),
            i.connect_timeout,
            i.stop_timeout,
            i.fragment_time_limit,
            i.ack_timeout,
        ] {
            assert_eq!(d, MAX_SETTING);
        }
        // Deadlines computed from them fit.
        let now = Instant::now();
        assert!(now.checked_add(s.ping_interval * 2 + Duration::from_secs(10)).is_some());
    }

    #[test]
    fn only_malformed_and_oversized_deliveries_are_final() {
        use EventErrorKind::*;
        for kind in [Malformed, BodyTooLarge, BadSignature, BadToken, Stale] {
            assert!(never_succeeds(kind), "{kind:?}");
        }
        assert!(!never_succeeds(Handler) && !never_succeeds(Store));
        assert_eq!(shown("m_1"), "m_1");
        let long = "é".repeat(MAX_MESSAGE_ID);
        assert!(shown(&long).len() <= MAX_MESSAGE_ID && long.starts_with(shown(&long)));
    }
}
