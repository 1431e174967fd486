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

use http_body::Body as _;
use hyper_util::client::legacy::ResponseFuture;

use crate::body::Collected;
use crate::reply::{body_error, is_json, tagged, DEFAULT_JSON_LIMIT};
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
    type Future = HttpClientFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> HttpClientFuture {
        HttpClientFuture { state: State::Sending { reply: self.client.request(req), limit: self.json_limit } }
    }
}

/// The future of an [`HttpClient`] call: the reply once its head has arrived, a JSON reply read
/// whole (up to the JSON limit) and tagged with its [`ReplyCode`](crate::ReplyCode), any other
/// reply still streaming.
///
/// A named type, not a boxed future, so the layers above hold it inline: through the
/// `lark-services` stack the SDK allocates one future per call, not one per layer (hyper-util
/// boxes its own request future inside).
#[must_use = "futures do nothing unless polled"]
pub struct HttpClientFuture {
    state: State,
}

enum State {
    /// Waiting for the reply's head.
    Sending { reply: ResponseFuture, limit: usize },
    /// Reading a JSON reply's body.
    Reading { parts: http::response::Parts, body: hyper::body::Incoming, collected: Collected },
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
                    let resp = match std::task::ready!(Pin::new(reply).poll(cx)) {
                        Ok(resp) => resp,
                        Err(e) => {
                            *state = State::Done;
                            return Poll::Ready(Err(Box::new(transport_error(e))));
                        }
                    };
                    if !is_json(&resp) {
                        *state = State::Done;
                        return Poll::Ready(Ok(resp.map(Body::incoming)));
                    }
                    let (parts, body) = resp.into_parts();
                    let collected = Collected::new(*limit);
                    *state = State::Reading { parts, body, collected };
                }
                State::Reading { parts, body, collected } => {
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
            State::Reading { parts, collected, .. } => Poll::Ready(Ok(tagged(parts, collected.finish()))),
            _ => Poll::Ready(Err(polled_after_completion())),
        }
    }
}

fn polled_after_completion() -> BoxError {
    let e = std::io::Error::other("HttpClientFuture polled after it completed");
    Box::new(LarkError::Transport(TransportError::new(TransportErrorKind::Io, e)))
}
