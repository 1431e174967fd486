//! [`HttpClient`]: the pooled hyper-util client over rustls (HTTPS with webpki roots; plain HTTP
//! for loopback), as a tower `Service<http::Request<Body>>`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use lark_types::{BoxError, LarkError, TransportError, TransportErrorKind};

use crate::reply::{buffer_json_reply, DEFAULT_JSON_LIMIT};
use crate::Body;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Settings of an [`HttpClient`].
#[derive(Clone, Debug)]
pub struct HttpClientBuilder {
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    json_limit: usize,
    tcp_nodelay: bool,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        HttpClientBuilder {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 64,
            json_limit: DEFAULT_JSON_LIMIT,
            tcp_nodelay: true,
        }
    }
}

impl HttpClientBuilder {
    /// Time allowed to open a TCP connection (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long an idle pooled connection is kept (default 90 s).
    pub fn pool_idle_timeout(mut self, d: Duration) -> Self {
        self.pool_idle_timeout = d;
        self
    }

    /// Idle connections kept per host (default 64).
    pub fn pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }

    /// Largest JSON reply held in memory (default 32 MiB).
    pub fn json_limit(mut self, bytes: usize) -> Self {
        self.json_limit = bytes;
        self
    }

    /// Builds the client. Fails only if the TLS setup fails.
    pub fn build(self) -> Result<HttpClient, LarkError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_nodelay(self.tcp_nodelay);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| LarkError::Config(lark_types::ConfigError::new(format!("TLS setup failed: {e}"))))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(https);
        Ok(HttpClient { client: Arc::new(client), json_limit: self.json_limit })
    }
}

/// The HTTP client at the bottom of the stack. Cheap to clone (clones share the pool).
///
/// JSON replies are buffered (up to the JSON limit) and tagged with their
/// [`ReplyCode`](crate::ReplyCode); other replies (downloads) stream.
#[derive(Clone)]
pub struct HttpClient {
    // Behind one `Arc`: the tower stack clones its services on every call, and the hyper client's
    // own clone touches half a dozen shared reference counts (pool, connector, TLS config, ...).
    client: Arc<HyperClient<Connector, Body>>,
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
}

fn transport_error(e: hyper_util::client::legacy::Error) -> LarkError {
    let kind = if e.is_connect() { TransportErrorKind::Connect } else { TransportErrorKind::Io };
    LarkError::Transport(TransportError::new(kind, e))
}

impl tower::Service<Request<Body>> for HttpClient {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let fut = self.client.request(req);
        let limit = self.json_limit;
        Box::pin(async move {
            let resp = match fut.await {
                Ok(resp) => resp.map(Body::incoming),
                Err(e) => return Err(Box::new(transport_error(e)) as BoxError),
            };
            buffer_json_reply(resp, limit).await.map_err(|e| Box::new(e) as BoxError)
        })
    }
}
