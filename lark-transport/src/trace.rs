//! [`TraceLayer`]: one `tracing` span per call with method, path, status, platform code and log
//! id. Headers are never recorded (the `Authorization` header and other secrets stay out of logs),
//! nor are query strings or bodies.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use lark_types::{log_id_from_headers, BoxError};
use pin_project_lite::pin_project;
use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};

use crate::reply::ReplyCode;

/// Adds a [`Trace`] span around each call.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace { inner }
    }
}

/// Wraps each call in a `lark.request` span.
#[derive(Clone, Debug)]
pub struct Trace<S> {
    inner: S,
}

impl<S> Trace<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> tower::Service<Request<B>> for Trace<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError> + std::fmt::Display,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let span = request_span(&req);
        let inner = self.inner.call(req).instrument(span.clone());
        ResponseFuture { inner, span }
    }
}

pin_project! {
    /// Future of [`Trace`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        span: Span,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        record_outcome(this.span, &out);
        Poll::Ready(out)
    }
}

/// The `lark.request` span of one call (method and path; status, code and log id recorded by
/// [`record_outcome`]). Shared by [`Trace`] and [`CallPolicy`](crate::CallPolicy).
pub(crate) fn request_span<B>(req: &Request<B>) -> Span {
    tracing::debug_span!(
        "lark.request",
        http.method = %req.method(),
        url.path = req.uri().path(),
        http.status_code = tracing::field::Empty,
        lark.code = tracing::field::Empty,
        lark.log_id = tracing::field::Empty,
    )
}

/// Records a call's outcome on its [`request_span`] and logs it there.
pub(crate) fn record_outcome<RB, E: std::fmt::Display>(span: &Span, out: &Result<Response<RB>, E>) {
    // Nobody listening: skip the header lookups and the log id copy.
    if span.is_disabled() && !tracing::event_enabled!(tracing::Level::DEBUG) {
        return;
    }
    let _guard = span.enter();
    match out {
        Ok(resp) => {
            span.record("http.status_code", resp.status().as_u16());
            if let Some(code) = resp.extensions().get::<ReplyCode>() {
                span.record("lark.code", code.0);
            }
            if let Some(id) = log_id_from_headers(resp.headers()) {
                span.record("lark.log_id", id.as_str());
            }
            tracing::debug!("reply received");
        }
        Err(e) => tracing::debug!(error = %e, "call failed"),
    }
}
