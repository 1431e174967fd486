//! [`HttpClient`]: pooled hyper connections over rustls (HTTPS with webpki roots; plain HTTP for
//! loopback), as a tower `Service<http::Request<Body>>`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use lark_types::{BoxError, LarkError, TransportError, TransportErrorKind};

use http_body::Body as _;

use crate::body::Collected;
use crate::pool::{Lease, Pool, PoolConfig, SendFuture};
use crate::proxy::{Proxy, ProxyConnector};
use crate::reply::{body_error, is_json, tagged, DEFAULT_JSON_LIMIT};
use crate::Body;

/// Settings of an [`HttpClient`].
#[derive(Clone)]
pub struct HttpClientBuilder {
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    json_limit: usize,
    tcp_nodelay: bool,
    http2_only: bool,
    root_certificates: Vec<Vec<u8>>,
    /// `None`: read from the environment when built.
    proxy: Option<Proxy>,
}

impl std::fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClientBuilder")
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("json_limit", &self.json_limit)
            .field("tcp_nodelay", &self.tcp_nodelay)
            .field("http2_only", &self.http2_only)
            .field("root_certificates", &self.root_certificates.len())
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        HttpClientBuilder {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 64,
            json_limit: DEFAULT_JSON_LIMIT,
            tcp_nodelay: true,
            http2_only: false,
            root_certificates: Vec::new(),
            proxy: None,
        }
    }
}

impl HttpClientBuilder {
    /// Time allowed to open a connection: TCP, TLS and the HTTP/2 handshake (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long an idle pooled connection is kept (default 90 s).
    pub fn pool_idle_timeout(mut self, d: Duration) -> Self {
        self.pool_idle_timeout = d;
        self
    }

    /// Idle HTTP/1 connections kept per host (default 64; 0: connections are not reused).
    pub fn pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }

    /// Largest JSON reply held in memory (default 32 MiB).
    pub fn json_limit(mut self, bytes: usize) -> Self {
        self.json_limit = bytes;
        self
    }

    /// Speak only HTTP/2 (default: off). Over `https` the connection offers only `h2` by ALPN;
    /// over plain `http` it starts HTTP/2 at once (prior knowledge, as for an h2c server or a
    /// sidecar proxy). Off, `https` connections use HTTP/2 when the server picks it by ALPN and
    /// HTTP/1.1 otherwise, and plain `http` ones HTTP/1.1.
    pub fn http2_only(mut self, yes: bool) -> Self {
        self.http2_only = yes;
        self
    }

    /// Trusts this certificate authority too (DER-encoded), beside the built-in Mozilla roots:
    /// for a private platform deployment or a TLS-inspecting proxy. A certificate that cannot be
    /// parsed makes [`build`](Self::build) fail with a `ConfigError`.
    pub fn add_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(der.into());
        self
    }

    /// The HTTP proxy connections go through (default: [`Proxy::from_env`], read when the client
    /// is built; [`Proxy::none`] for none).
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Builds the client. Fails only if the TLS setup fails (or a root certificate is invalid),
    /// or if the proxy environment variables hold something that is not a usable proxy URL.
    pub fn build(self) -> Result<HttpClient, LarkError> {
        let proxy = match self.proxy {
            Some(proxy) => proxy,
            None => Proxy::from_env()?,
        };
        if proxy.is_some() {
            tracing::debug!(target: "lark::transport", proxy = ?proxy, "connections go through an HTTP proxy");
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_nodelay(self.tcp_nodelay);
        let tls = tls_client_config(&self.root_certificates)?;
        let tcp = ProxyConnector::new(http, proxy);
        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        let https = if self.http2_only {
            https.enable_http2().wrap_connector(tcp)
        } else {
            https.enable_http1().enable_http2().wrap_connector(tcp)
        };
        let config = PoolConfig {
            idle_timeout: self.pool_idle_timeout,
            max_idle_per_host: self.pool_max_idle_per_host,
            http2_only: self.http2_only,
            connect_timeout: self.connect_timeout,
        };
        Ok(HttpClient { pool: Pool::new(https, config), json_limit: self.json_limit })
    }
}

/// The SDK's rustls client settings: the ring provider, the webpki (Mozilla) roots plus `extra`
/// (DER certificates), no client certificate, no ALPN protocols (the caller sets them). Used by
/// [`HttpClient`] and by the long-connection client of `lark-events`.
pub fn tls_client_config(extra: &[Vec<u8>]) -> Result<rustls::ClientConfig, LarkError> {
    let config_error = |what: String| LarkError::Config(lark_types::ConfigError::new(what));
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for (i, der) in extra.iter().enumerate() {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.clone()))
            .map_err(|e| config_error(format!("root certificate {i} is not usable: {e}")))?;
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(config)
}

/// The HTTP client at the bottom of the stack. Cheap to clone (clones share the pool).
///
/// Connections are hyper's own HTTP/1 and HTTP/2 connections in a pool of lark-rs's (reused
/// last-in first-out, HTTP/2 by ALPN over TLS and shared per host, idle ones closed after the
/// idle timeout; see [`HttpClientBuilder`]). A request a reused connection closed before it went
/// out is sent again on another connection, whatever its method: it was not sent.
///
/// JSON replies are buffered (up to the JSON limit) and tagged with their
/// [`ReplyCode`](crate::ReplyCode); other replies (downloads) stream, and their connection goes
/// back to the pool when the body has been read to its end.
#[derive(Clone)]
pub struct HttpClient {
    pool: Arc<Pool>,
    json_limit: usize,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("json_limit", &self.json_limit).finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with default settings.
    pub fn new() -> Result<Self, LarkError> {
        HttpClientBuilder::default().build()
    }

    /// Settings for a client.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::default()
    }

    /// Connections in the pool waiting for a request: open idle HTTP/1 connections and open
    /// shared HTTP/2 ones, all hosts together. (Connections lent to calls in flight are not
    /// counted; a connection the server closed is not counted once its close has been seen.)
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }
}

impl tower::Service<Request<Body>> for HttpClient {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = HttpClientFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> HttpClientFuture {
        let reply = self.pool.send(req);
        HttpClientFuture { state: State::Sending { reply, limit: self.json_limit } }
    }
}

/// The future of an [`HttpClient`] call: the reply once its head has arrived, a JSON reply read
/// whole (up to the JSON limit) and tagged with its [`ReplyCode`](crate::ReplyCode), any other
/// reply still streaming.
///
/// A named type, so the layers above hold it inline: through the `lark-services` stack the SDK
/// allocates one future per call for the layers, and one inside for taking a connection and
/// sending the request.
#[must_use = "futures do nothing unless polled"]
pub struct HttpClientFuture {
    state: State,
}

// The reading state is the large one; boxing it would cost an allocation per call, and the
// future lives inside the caller's (already boxed) future anyway.
#[allow(clippy::large_enum_variant)]
enum State {
    /// Waiting for the reply's head.
    Sending { reply: SendFuture, limit: usize },
    /// Reading a JSON reply's body.
    Reading { parts: http::response::Parts, body: hyper::body::Incoming, collected: Collected, lease: Lease },
    /// The output was returned.
    Done,
}

impl std::fmt::Debug for HttpClientFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Sending { .. } => "sending",
            State::Reading { .. } => "reading",
            State::Done => "done",
        };
        f.debug_struct("HttpClientFuture").field("state", &state).finish()
    }
}

impl Future for HttpClientFuture {
    type Output = Result<Response<Body>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every part is `Unpin`, so the state is reached without projection.
        let state = &mut self.state;
        loop {
            match state {
                State::Sending { reply, limit } => {
                    let (resp, lease) = match std::task::ready!(reply.as_mut().poll(cx)) {
                        Ok(sent) => sent,
                        Err(e) => {
                            *state = State::Done;
                            return Poll::Ready(Err(Box::new(e)));
                        }
                    };
                    if !is_json(&resp) {
                        *state = State::Done;
                        return Poll::Ready(Ok(resp.map(|body| Body::leased(body, lease))));
                    }
                    let (parts, body) = resp.into_parts();
                    let collected = Collected::new(*limit);
                    *state = State::Reading { parts, body, collected, lease };
                }
                State::Reading { parts, body, collected, .. } => {
                    let e: BoxError = match std::task::ready!(Pin::new(body).poll_frame(cx)) {
                        None => break,
                        Some(Ok(frame)) => match frame.into_data().map(|data| collected.push(data)) {
                            Ok(Err(too_large)) => Box::new(too_large),
                            Ok(Ok(())) | Err(_) => continue,
                        },
                        Some(Err(e)) => Box::new(e),
                    };
                    let error = body_error(e, &parts.headers);
                    *state = State::Done;
                    return Poll::Ready(Err(Box::new(error)));
                }
                State::Done => return Poll::Ready(Err(polled_after_completion())),
            }
        }
        // The body has ended.
        match std::mem::replace(state, State::Done) {
            State::Reading { parts, collected, lease, .. } => {
                lease.release();
                Poll::Ready(Ok(tagged(parts, collected.finish())))
            }
            _ => Poll::Ready(Err(polled_after_completion())),
        }
    }
}

fn polled_after_completion() -> BoxError {
    let e = std::io::Error::other("HttpClientFuture polled after it completed");
    Box::new(LarkError::Transport(TransportError::new(TransportErrorKind::Io, e)))
}
