//! The connection pool under [`HttpClient`](crate::HttpClient): hyper's own HTTP/1 and HTTP/2
//! connections, kept per scheme and authority.
//!
//! Why not hyper-util's pooled client: for every HTTP/1 request whose reply has a body, it spawns
//! a task that waits for the connection to become idle again, and it boxes the request future,
//! formats the `Host` header and locks the pool twice. Here the caller that reads the reply puts
//! the connection back itself once the body has ended ([`Lease::release`]), so a call costs one
//! lock to take a connection, one to return it, and no task. On the loopback benchmark a scratch
//! client on hyper's connections with a trivial pool used about 4 µs less client CPU per call than
//! the bare hyper-util client (20 µs against 24 µs).
//!
//! Behaviour kept from hyper-util: connections are reused last-in first-out, and only once ready
//! for their next request; a request that a reused connection closed before sending is sent
//! again on another one (it was not sent, so this is safe for any method); HTTPS negotiates
//! HTTP/2 by ALPN, and an HTTP/2 connection is shared by all calls to its host; a connect
//! finishes (and its connection is pooled) even when the call that started it gave up; idle
//! connections are dropped after the idle timeout (by a reaper task that runs only while some
//! are idle) and beyond the per-host idle limit.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::connect::Connection as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use lark_types::{LarkError, TransportError, TransportErrorKind};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::Body;

/// The connector: TCP (straight or through a proxy's tunnel), then TLS for `https` (ALPN `h2`
/// and `http/1.1`).
pub(crate) type Connector = hyper_rustls::HttpsConnector<crate::proxy::ProxyConnector>;

/// The pool's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolConfig {
    /// How long an idle connection is kept.
    pub(crate) idle_timeout: Duration,
    /// Idle HTTP/1 connections kept per host (0: none are reused).
    pub(crate) max_idle_per_host: usize,
    /// Every connection speaks HTTP/2 (prior knowledge on `http`, ALPN `h2` only on `https`).
    pub(crate) http2_only: bool,
    /// Time allowed for a whole connect: TCP, TLS and the HTTP handshake.
    pub(crate) connect_timeout: Duration,
}

/// Connections by scheme and authority.
pub(crate) struct Pool {
    connector: Connector,
    config: PoolConfig,
    /// Hosts in the order first seen: an SDK talks to one or a few, so a scan beats hashing.
    hosts: Mutex<Vec<(Key, Host)>>,
    /// Whether the idle reaper task is running.
    reaping: AtomicBool,
}

#[derive(Clone, PartialEq, Eq)]
struct Key {
    scheme: Scheme,
    authority: Authority,
}

impl Key {
    /// The key of an absolute `http` or `https` URI.
    fn of(uri: &Uri) -> Result<Key, LarkError> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            // The URI itself is left out: its query may carry something private.
            return Err(transport(TransportErrorKind::Other, "request URI has no scheme or host"));
        };
        if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
            let e = format!("unsupported URI scheme `{scheme}`");
            return Err(transport(TransportErrorKind::Other, e));
        }
        Ok(Key { scheme: scheme.clone(), authority: authority.clone() })
    }
}

/// The future of [`Pool::send`].
pub(crate) type SendFuture =
    Pin<Box<dyn Future<Output = Result<(Response<Incoming>, Lease), LarkError>> + Send>>;

type ConnectLock = Arc<tokio::sync::Mutex<()>>;

struct Host {
    /// Idle HTTP/1 connections, oldest first, each ready for a request.
    idle: VecDeque<Idle>,
    /// The HTTP/2 connection shared by every call to this host, once one was negotiated.
    h2: Option<Shared>,
    /// The `Host` header of HTTP/1 requests: the authority without user info, the port only
    /// when it is not the scheme's default.
    host_header: HeaderValue,
    /// Whether this host speaks HTTP/2 (negotiated before): calls that find no open connection
    /// then wait for one connect instead of each opening their own.
    h2_expected: bool,
    /// Held by the call connecting to a host that speaks HTTP/2.
    connecting: ConnectLock,
    /// Connect attempts finished, and the error of the last one if it failed: a call that waited
    /// for another's connect fails with its error rather than trying again at once.
    connects: u64,
    last_connect_error: Option<Arc<str>>,
}

/// A host's shared HTTP/2 connection and when a call last took it (it is closed after the idle
/// timeout like an idle HTTP/1 connection; calls still holding it finish first).
struct Shared {
    tx: http2::SendRequest<Body>,
    used: Instant,
}

struct Idle {
    conn: H1,
    since: Instant,
}

/// How long a connection must have been idle before its reuse checks for a close by the server
/// ([`H1::peer_closed`]). Servers close idle connections after their keep-alive timeout,
/// seconds or minutes after the last reply; a connection reused sooner under load skips the
/// check and its system call (about 5% of the throughput of the loopback benchmark when paid on
/// every call).
const CHECK_AFTER_IDLE: Duration = Duration::from_millis(1);

/// An HTTP/1 connection: hyper's sender, and a second handle on its TCP socket (when there is
/// one) to look for a close the connection's task has not noticed yet.
struct H1 {
    tx: http1::SendRequest<Body>,
    socket: Option<socket2::Socket>,
}

impl H1 {
    /// Whether the server closed this idle connection (or sent something unasked, which makes it
    /// unusable too): its socket has an end of stream, data or an error waiting. The
    /// connection's task learns of a close only when the runtime next polls its socket; a
    /// request handed over before that would be written to a connection the server has
    /// already closed, and fail after it may have been sent, which cannot be sent again
    /// safely. One non-blocking `recv` with `MSG_PEEK` per reuse rules that out.
    fn peer_closed(&self) -> bool {
        let Some(socket) = &self.socket else { return false };
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        match socket.peek(&mut byte) {
            Ok(_) => true,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted),
        }
    }
}

/// What [`Pool::take`] found for a host.
struct Taken {
    sender: Option<Sender>,
    host_header: HeaderValue,
    /// The host's connect lock when connects to it are made one at a time (it speaks HTTP/2).
    one_at_a_time: Option<ConnectLock>,
    connects: u64,
    last_connect_error: Option<Arc<str>>,
}

enum Sender {
    H1(H1),
    H2(http2::SendRequest<Body>),
}

/// A connection lent to one call. An HTTP/1 connection goes back to the pool through
/// [`Lease::release`] once the reply's body has been read to its end; dropped otherwise (the
/// reply was cut short or abandoned), it is not reused. HTTP/2 connections are shared, so
/// there is nothing to give back.
pub(crate) struct Lease {
    back: Option<(Arc<Pool>, Key, H1)>,
}

impl Lease {
    /// Returns the connection to the pool: the reply it carried has been read whole.
    pub(crate) fn release(mut self) {
        if let Some((pool, key, tx)) = self.back.take() {
            pool.put_back(key, tx);
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("http1", &self.back.is_some()).finish()
    }
}

fn transport(kind: TransportErrorKind, e: impl Into<lark_types::BoxError>) -> LarkError {
    LarkError::Transport(TransportError::new(kind, e))
}

/// `t + d`, or about thirty years on when that does not fit (a timeout of `Duration::MAX` means
/// "never").
fn after(t: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    t.checked_add(d).or_else(|| t.checked_add(FAR)).unwrap_or(t)
}

impl Pool {
    pub(crate) fn new(connector: Connector, config: PoolConfig) -> Arc<Pool> {
        Arc::new(Pool { connector, config, hosts: Mutex::new(Vec::new()), reaping: AtomicBool::new(false) })
    }

    fn hosts(&self) -> MutexGuard<'_, Vec<(Key, Host)>> {
        // The map stays consistent even if a holder panicked: every critical section is a
        // single push, pop or insert.
        self.hosts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `req` (an absolute URI) on a pooled or new connection; the future gives the
    /// reply's head, with the lease of the connection its body arrives on.
    ///
    /// The common case, an idle HTTP/1 connection, hands the request to it right away, and the
    /// future only waits for the reply; anything else (HTTP/2, connecting, sending again) is a
    /// second, boxed future.
    pub(crate) fn send(self: &Arc<Self>, mut req: Request<Body>) -> SendFuture {
        let key = match Key::of(req.uri()) {
            Ok(key) => key,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        match self.take(&key) {
            Ok(Taken { sender: Some(Sender::H1(mut conn)), host_header, .. }) if conn.tx.is_ready() => {
                let uri = req.uri().clone();
                prepare_h1(&mut req, &uri, host_header);
                let sent = conn.tx.try_send_request(req);
                let pool = self.clone();
                Box::pin(async move {
                    match sent.await {
                        Ok(resp) => Ok((resp, pool.lease(key, conn))),
                        // Closed before it went out (a reused connection): on another one.
                        Err(e) => Box::pin(pool.send_slow(key, unsent(e, &uri)?, None)).await,
                    }
                })
            }
            Ok(Taken { sender, .. }) => Box::pin(self.clone().send_slow(key, req, sender)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    /// The lease of an HTTP/1 connection, given back at the end of its reply's body.
    fn lease(self: Arc<Self>, key: Key, conn: H1) -> Lease {
        Lease { back: (self.config.max_idle_per_host > 0).then_some((self, key, conn)) }
    }

    /// The general path: `first` (a connection taken from the pool) or the next one the pool
    /// has, or a new one; a request a reused connection closed before sending is sent again on
    /// another (the loop is bounded: each turn consumes a pooled connection, and a request that
    /// fails on a new connection is not sent again).
    async fn send_slow(
        self: Arc<Self>,
        key: Key,
        mut req: Request<Body>,
        mut first: Option<Sender>,
    ) -> Result<(Response<Incoming>, Lease), LarkError> {
        let uri = req.uri().clone();
        loop {
            let (sender, reused) = match first.take() {
                Some(Sender::H1(mut conn)) => match conn.tx.ready().await {
                    Ok(()) => (Sender::H1(conn), true),
                    Err(_) => continue,
                },
                Some(h2) => (h2, true),
                None => self.checkout(&key).await?,
            };
            let e = match sender {
                Sender::H1(mut conn) => {
                    prepare_h1(&mut req, &uri, self.host_header(&key)?);
                    match conn.tx.try_send_request(req).await {
                        Ok(resp) => return Ok((resp, self.lease(key, conn))),
                        Err(e) => e,
                    }
                }
                Sender::H2(mut tx) => {
                    *req.version_mut() = http::Version::HTTP_2;
                    // HTTP/2 sends the authority as it is: leave out user info, as `Host` does.
                    if let Some(bare) = without_user_info(&uri) {
                        *req.uri_mut() = bare;
                    }
                    // A closed shared connection is dropped by the next `take`.
                    match tx.try_send_request(req).await {
                        Ok(resp) => return Ok((resp, Lease { back: None })),
                        Err(e) => e,
                    }
                }
            };
            if !reused {
                return Err(send_error(e.into_error()));
            }
            req = unsent(e, &uri)?;
        }
    }

    /// A ready connection to `key`: an idle or shared one (`true`: reused), or a new one.
    ///
    /// Connects to a host known to speak HTTP/2 are made one at a time: the calls that find no
    /// connection wait for the connect in progress, then share its connection, or fail with its
    /// error. Other hosts get a connect per call that finds no idle connection, side by side.
    async fn checkout(self: &Arc<Self>, key: &Key) -> Result<(Sender, bool), LarkError> {
        // The connect lock once held, and the connect count seen before waiting for it.
        let mut waited: Option<(tokio::sync::OwnedMutexGuard<()>, u64)> = None;
        loop {
            let taken = self.take(key)?;
            match (taken.sender, taken.one_at_a_time) {
                // Idle connections are ready; one that closed meanwhile is dropped and the
                // next one is tried (the loop ends: each turn takes one out of the pool).
                (Some(Sender::H1(mut conn)), _) => {
                    if conn.tx.ready().await.is_ok() {
                        return Ok((Sender::H1(conn), true));
                    }
                }
                (Some(h2), _) => return Ok((h2, true)),
                (None, Some(lock)) if waited.is_none() => {
                    waited = Some((lock.lock_owned().await, taken.connects));
                }
                (None, _) => {
                    if let (Some((_, seen)), Some(error)) = (&waited, &taken.last_connect_error) {
                        if *seen != taken.connects {
                            let e = format!("connecting to the host failed just now: {error}");
                            return Err(transport(TransportErrorKind::Connect, e));
                        }
                    }
                    // The connect task holds the lock until it has recorded its outcome, even
                    // if this call gives up first.
                    let sender = self.connect(key, waited.map(|(guard, _)| guard)).await?;
                    return Ok((sender, false));
                }
            }
        }
    }

    /// The `Host` header of HTTP/1 requests to `key`.
    fn host_header(&self, key: &Key) -> Result<HeaderValue, LarkError> {
        Ok(host_of(&mut self.hosts(), key)?.host_header.clone())
    }

    /// Takes an idle HTTP/1 connection or a clone of the shared HTTP/2 one, if there is one.
    fn take(&self, key: &Key) -> Result<Taken, LarkError> {
        let timeout = self.config.idle_timeout;
        let mut hosts = self.hosts();
        let host = host_of(&mut hosts, key)?;
        let found = match &mut host.h2 {
            Some(h2) => {
                let now = Instant::now();
                if h2.tx.is_closed() || now.saturating_duration_since(h2.used) >= timeout {
                    host.h2 = None;
                    None
                } else {
                    h2.used = now;
                    Some(Sender::H2(h2.tx.clone()))
                }
            }
            None => host.take_idle(timeout).map(Sender::H1),
        };
        let h2 = host.h2_expected || self.config.http2_only;
        Ok(Taken {
            sender: found,
            host_header: host.host_header.clone(),
            one_at_a_time: h2.then(|| host.connecting.clone()),
            connects: host.connects,
            last_connect_error: host.last_connect_error.clone(),
        })
    }

    /// Connects to `key` within the connect timeout. The connect runs as a task of its own, so
    /// a call that gives up (its timeout, or its caller dropping it) does not waste it: the
    /// connection goes to the pool.
    async fn connect(
        self: &Arc<Self>,
        key: &Key,
        lock: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Result<Sender, LarkError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (pool, key) = (self.clone(), key.clone());
        tokio::spawn(async move {
            let limit = pool.config.connect_timeout;
            let opened = match tokio::time::timeout(limit, pool.open(&key)).await {
                Ok(opened) => opened,
                Err(_) => Err(transport(
                    TransportErrorKind::Connect,
                    format!("connecting (TCP, TLS and HTTP handshakes) took longer than {limit:?}"),
                )),
            };
            pool.record_connect(&key, &opened);
            drop(lock);
            if let Err(Ok(Sender::H1(unclaimed))) = tx.send(opened) {
                pool.put_back(key, unclaimed);
            }
        });
        rx.await.unwrap_or_else(|_| {
            Err(transport(TransportErrorKind::Connect, "the connect task ended unfinished"))
        })
    }

    /// Opens a connection to `key`, HTTP/2 when configured or negotiated by ALPN.
    async fn open(&self, key: &Key) -> Result<Sender, LarkError> {
        let connect_error = |e: &dyn std::fmt::Display| transport(TransportErrorKind::Connect, e.to_string());
        let dst = Uri::builder()
            .scheme(key.scheme.clone())
            .authority(key.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| connect_error(&e))?;
        let io = self
            .connector
            .clone()
            .oneshot(dst)
            .await
            .map_err(|e| transport(TransportErrorKind::Connect, e))?;
        let handshake_error = |e: hyper::Error| transport(TransportErrorKind::Connect, e);
        if self.config.http2_only || io.connected().is_negotiated_h2() {
            // Pings while calls are in flight, so a connection that died silently (a dropped
            // NAT entry) fails its calls within the keep-alive timeout, not TCP's minutes.
            let (mut tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(20))
                .handshake(io)
                .await
                .map_err(handshake_error)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(target: "lark::transport", error = %e, "HTTP/2 connection ended with an error");
                }
            });
            tx.ready().await.map_err(handshake_error)?;
            Ok(Sender::H2(tx))
        } else {
            // A failed duplicate only costs the check in `H1::peer_closed`.
            let socket = socket2::SockRef::from(tcp_stream(&io))
                .try_clone()
                .and_then(|dup| dup.set_nonblocking(true).map(|()| dup))
                .ok();
            let (mut tx, conn) = http1::handshake(io).await.map_err(handshake_error)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(target: "lark::transport", error = %e, "HTTP/1 connection ended with an error");
                }
            });
            tx.ready().await.map_err(handshake_error)?;
            Ok(Sender::H1(H1 { tx, socket }))
        }
    }

    /// Notes a finished connect: its error for the calls that waited for it, or what the host
    /// speaks; an HTTP/2 connection becomes the host's shared one.
    fn record_connect(self: &Arc<Self>, key: &Key, opened: &Result<Sender, LarkError>) {
        let now = Instant::now();
        let start_reaper = {
            let mut hosts = self.hosts();
            let Ok(host) = host_of(&mut hosts, key) else { return };
            host.connects += 1;
            host.last_connect_error = opened.as_ref().err().map(|e| Arc::from(e.to_string()));
            match opened {
                Ok(Sender::H2(tx)) => {
                    host.h2_expected = true;
                    if host.h2.as_ref().is_none_or(|h2| h2.tx.is_closed()) {
                        host.h2 = Some(Shared { tx: tx.clone(), used: now });
                    }
                    !self.reaping.swap(true, Ordering::AcqRel)
                }
                Ok(Sender::H1(_)) => {
                    host.h2_expected = false;
                    false
                }
                Err(_) => false,
            }
        };
        if start_reaper {
            self.spawn_reaper(after(now, self.config.idle_timeout));
        }
    }

    /// Gives a connection whose reply has been read back to the pool. One not yet ready (its
    /// request still going out: a reply can come before the request body has been sent whole)
    /// is pooled once it is, by a task of its own, so no call waits on it; it is dropped if it
    /// does not become ready within the idle timeout.
    fn put_back(self: Arc<Self>, key: Key, mut conn: H1) {
        if conn.tx.is_closed() {
            return;
        }
        if conn.tx.is_ready() {
            return self.idle_now(key, conn);
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let limit = self.config.idle_timeout;
        rt.spawn(async move {
            if let Ok(Ok(())) = tokio::time::timeout(limit, conn.tx.ready()).await {
                self.idle_now(key, conn);
            }
        });
    }

    fn idle_now(self: Arc<Self>, key: Key, conn: H1) {
        if self.config.max_idle_per_host == 0 {
            return;
        }
        let now = Instant::now();
        let start_reaper = {
            let mut hosts = self.hosts();
            // The reaper may have dropped the host's entry while this connection was lent out.
            let Ok(host) = host_of(&mut hosts, &key) else { return };
            host.drop_expired(now, self.config.idle_timeout);
            if host.idle.len() >= self.config.max_idle_per_host {
                host.idle.pop_front();
            }
            host.idle.push_back(Idle { conn, since: now });
            !self.reaping.swap(true, Ordering::AcqRel)
        };
        if start_reaper {
            self.spawn_reaper(after(now, self.config.idle_timeout));
        }
    }

    /// Closes idle connections once they pass the idle timeout, waking when the oldest one
    /// does; ends when none are idle, or when the pool is dropped. If the task is dropped
    /// unfinished (its runtime shut down), the next connection pooled starts a new one.
    fn spawn_reaper(self: &Arc<Self>, first_expiry: Instant) {
        let mut running = Reaping { pool: Arc::downgrade(self), armed: true };
        let spawned = tokio::runtime::Handle::try_current().map(|rt| {
            rt.spawn(async move {
                let mut at = first_expiry;
                loop {
                    tokio::time::sleep_until(at).await;
                    let Some(pool) = running.pool.upgrade() else { return };
                    match pool.reap(Instant::now()) {
                        Some(next) => at = next,
                        None => {
                            // `reap` cleared the flag under the pool's lock.
                            running.disarm();
                            return;
                        }
                    }
                }
            })
        });
        if spawned.is_err() {
            self.reaping.store(false, Ordering::Release);
        }
    }

    /// Drops expired idle connections (and shared HTTP/2 ones no call took within the idle
    /// timeout); returns when the oldest one left expires, or `None` (and the reaper stops) when
    /// none are left.
    fn reap(&self, now: Instant) -> Option<Instant> {
        let timeout = self.config.idle_timeout;
        let mut hosts = self.hosts();
        hosts.retain_mut(|(_, host)| {
            host.drop_expired(now, timeout);
            let expired =
                |h2: &Shared| h2.tx.is_closed() || now.saturating_duration_since(h2.used) >= timeout;
            if host.h2.as_ref().is_some_and(expired) {
                host.h2 = None;
            }
            // An entry goes when it holds nothing, no call is connecting or waiting on it, and
            // it has nothing worth remembering (that the host speaks HTTP/2).
            !host.idle.is_empty()
                || host.h2.is_some()
                || host.h2_expected
                || Arc::strong_count(&host.connecting) > 1
        });
        let oldest = hosts
            .iter()
            .flat_map(|(_, h)| {
                h.idle.front().map(|i| i.since).into_iter().chain(h.h2.as_ref().map(|h2| h2.used))
            })
            .min();
        if oldest.is_none() {
            self.reaping.store(false, Ordering::Release);
        }
        // At least a millisecond ahead, so a zero timeout cannot spin.
        oldest.map(|since| after(since, timeout).max(now + Duration::from_millis(1)))
    }

    /// Open idle HTTP/1 connections and open shared HTTP/2 ones, all hosts together.
    pub(crate) fn idle_count(&self) -> usize {
        let open_h2 = |h: &Host| usize::from(h.h2.as_ref().is_some_and(|h2| !h2.tx.is_closed()));
        self.hosts()
            .iter()
            .map(|(_, h)| h.idle.iter().filter(|i| !i.conn.tx.is_closed()).count() + open_h2(h))
            .sum()
    }
}

/// Clears the pool's "reaper running" flag if the reaper task is dropped before it finishes.
struct Reaping {
    pool: Weak<Pool>,
    armed: bool,
}

impl Reaping {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Reaping {
    fn drop(&mut self) {
        if let (true, Some(pool)) = (self.armed, self.pool.upgrade()) {
            pool.reaping.store(false, Ordering::Release);
        }
    }
}

/// The entry of `key`, made on first use.
fn host_of<'a>(hosts: &'a mut Vec<(Key, Host)>, key: &Key) -> Result<&'a mut Host, LarkError> {
    let i = match hosts.iter().position(|(k, _)| k == key) {
        Some(i) => i,
        None => {
            hosts.push((key.clone(), Host::new(key)?));
            hosts.len() - 1
        }
    };
    Ok(&mut hosts[i].1)
}

impl Host {
    fn new(key: &Key) -> Result<Host, LarkError> {
        let host = key.authority.host();
        let default_port = if key.scheme == Scheme::HTTPS { 443 } else { 80 };
        let value = match key.authority.port_u16() {
            Some(port) if port != default_port => HeaderValue::from_str(&format!("{host}:{port}")),
            _ => HeaderValue::from_str(host),
        };
        let host_header = value.map_err(|e| transport(TransportErrorKind::Other, e))?;
        Ok(Host {
            idle: VecDeque::new(),
            h2: None,
            host_header,
            h2_expected: false,
            connecting: Arc::new(tokio::sync::Mutex::new(())),
            connects: 0,
            last_connect_error: None,
        })
    }

    /// The most recently returned idle connection still open and within the idle timeout.
    fn take_idle(&mut self, timeout: Duration) -> Option<H1> {
        if self.idle.is_empty() {
            return None;
        }
        let now = Instant::now();
        self.drop_expired(now, timeout);
        // `drop_expired` left only open connections (one closing meanwhile fails `is_ready` or
        // `ready` where it is used).
        while let Some(idle) = self.idle.pop_back() {
            if now.saturating_duration_since(idle.since) >= CHECK_AFTER_IDLE && idle.conn.peer_closed() {
                tracing::debug!(target: "lark::transport", "idle connection closed by the server; not reused");
                continue;
            }
            return Some(idle.conn);
        }
        None
    }

    /// Drops idle connections past the idle timeout and closed ones (wherever they are in the
    /// queue: each holds a socket until dropped).
    fn drop_expired(&mut self, now: Instant, timeout: Duration) {
        self.idle.retain(|i| now.saturating_duration_since(i.since) < timeout && !i.conn.tx.is_closed());
    }
}

/// The TCP socket under a connection, plain or TLS.
fn tcp_stream(io: &hyper_rustls::MaybeHttpsStream<TokioIo<TcpStream>>) -> &TcpStream {
    match io {
        hyper_rustls::MaybeHttpsStream::Http(tcp) => tcp.inner(),
        hyper_rustls::MaybeHttpsStream::Https(tls) => tls.inner().get_ref().0.inner().inner(),
    }
}

/// Readies a request for an HTTP/1 connection: the `Host` header unless the caller set one, the
/// target in origin form (`uri` is the request's absolute URI).
fn prepare_h1(req: &mut Request<Body>, uri: &Uri, host_header: HeaderValue) {
    if !req.headers().contains_key(http::header::HOST) {
        req.headers_mut().insert(http::header::HOST, host_header);
    }
    *req.uri_mut() = origin_form(uri);
    if req.version() == http::Version::HTTP_2 {
        *req.version_mut() = http::Version::HTTP_11;
    }
}

/// `uri` without the user info of its authority, if it has any.
fn without_user_info(uri: &Uri) -> Option<Uri> {
    let authority = uri.authority()?.as_str();
    let (_, host) = authority.rsplit_once('@')?;
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(host.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The request target HTTP/1 sends: path and query only.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(pq) if pq.as_str() != "/" => {
            let mut parts = http::uri::Parts::default();
            parts.path_and_query = Some(pq.clone());
            Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
        }
        _ => Uri::from_static("/"),
    }
}

/// The request of a failed send on a reused connection, back as it was given (absolute URI), when
/// the connection closed before it went out and it can go out again on another; otherwise the
/// error.
fn unsent(
    mut e: hyper::client::conn::TrySendError<Request<Body>>,
    uri: &Uri,
) -> Result<Request<Body>, LarkError> {
    match e.take_message() {
        Some(mut req) => {
            tracing::debug!(target: "lark::transport", "pooled connection closed before sending; trying another");
            *req.uri_mut() = uri.clone();
            Ok(req)
        }
        None => Err(send_error(e.into_error())),
    }
}

/// A send failure: the connection failed or closed while the request or reply was in flight.
fn send_error(e: hyper::Error) -> LarkError {
    transport(TransportErrorKind::Io, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_leaves_out_default_ports_and_user_info() {
        let key = |s: &str| {
            let uri: Uri = s.parse().unwrap();
            Key { scheme: uri.scheme().unwrap().clone(), authority: uri.authority().unwrap().clone() }
        };
        let header = |s: &str| Host::new(&key(s)).unwrap().host_header;
        assert_eq!(header("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
        assert_eq!(header("http://example.com:80/"), "example.com");
        assert_eq!(header("https://example.com:443/"), "example.com");
        assert_eq!(header("https://example.com:80/"), "example.com:80");
        assert_eq!(header("https://user:pw@open.feishu.cn/"), "open.feishu.cn");
        assert_eq!(header("http://[::1]:9000/"), "[::1]:9000");
    }

    #[test]
    fn user_info_is_left_out_of_http2_authorities() {
        let uri: Uri = "https://user:pw@open.feishu.cn:8443/a?b=1".parse().unwrap();
        assert_eq!(without_user_info(&uri).unwrap(), "https://open.feishu.cn:8443/a?b=1");
        assert!(without_user_info(&"https://open.feishu.cn/a".parse().unwrap()).is_none());
    }

    #[test]
    fn origin_form_keeps_path_and_query() {
        assert_eq!(origin_form(&"http://h:1/a/b?x=1&x=2".parse().unwrap()), "/a/b?x=1&x=2");
        assert_eq!(origin_form(&"http://h:1".parse().unwrap()), "/");
    }
}
