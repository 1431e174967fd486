//! [`TimeoutLayer`]: a deadline on the inner service's future that fails with a typed
//! [`TimeoutError`] saying which timeout fired.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use lark_types::{BoxError, LarkError, TimeoutError, TimeoutKind};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

/// Adds a [`Timeout`] of one [`TimeoutKind`].
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    kind: TimeoutKind,
    after: Duration,
}

impl TimeoutLayer {
    /// The total time for a call, retries and backoff included (put it outside the retry layer).
    pub fn total(after: Duration) -> Self {
        TimeoutLayer { kind: TimeoutKind::Total, after }
    }

    /// The time for one attempt (put it inside the retry layer).
    pub fn attempt(after: Duration) -> Self {
        TimeoutLayer { kind: TimeoutKind::Attempt, after }
    }
}

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout { inner, kind: self.kind, after: self.after }
    }
}

/// Fails the call with [`LarkError::Timeout`] when the inner future takes too long.
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    kind: TimeoutKind,
    after: Duration,
}

impl<S> Timeout<S> {
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

impl<S, Req> tower::Service<Req> for Timeout<S>
where
    S: tower::Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
            sleep: tokio::time::sleep(self.after),
            kind: self.kind,
            after: self.after,
        }
    }
}

pin_project! {
    /// Future of [`Timeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        kind: TimeoutKind,
        after: Duration,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        within(cx, this.sleep, *this.kind, *this.after, |cx| inner.as_mut().poll(cx))
    }
}

/// Polls `poll`; once `sleep` fires first, fails with the `kind` timeout of `after`. Shared by
/// [`Timeout`] and [`CallPolicy`](crate::CallPolicy).
pub(crate) fn within<T, E: Into<BoxError>>(
    cx: &mut Context<'_>,
    sleep: Pin<&mut Sleep>,
    kind: TimeoutKind,
    after: Duration,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<Result<T, E>>,
) -> Poll<Result<T, BoxError>> {
    if let Poll::Ready(r) = poll(cx) {
        return Poll::Ready(r.map_err(Into::into));
    }
    sleep.poll(cx).map(|()| Err(timeout_error(kind, after)))
}

/// The error of a call whose `kind` timeout of `after` ran out. Shared by [`Timeout`] and
/// [`CallPolicy`](crate::CallPolicy).
pub(crate) fn timeout_error(kind: TimeoutKind, after: Duration) -> BoxError {
    Box::new(LarkError::Timeout(TimeoutError::new(kind, after)))
}
