//! [`CallPolicyLayer`]: the trace span, both timeouts and the retries of one call, in one layer.
//!
//! It behaves as `TraceLayer → TimeoutLayer::total → RetryLayer(RetryPolicy) →
//! TimeoutLayer::attempt` stacked in that order, but runs a call as one future with one timer
//! (whose deadline is the nearer of the total and the attempt deadline) instead of five nested
//! futures, two timers and a service clone per layer. `lark-services`' `Client` uses it; the
//! separate layers stay available for stacks of your own.
//!
//! One difference from the stacked layers: the `lark.request` span is opened when the call is
//! made (as `TraceLayer` does), but the total and attempt clocks start when the call's future is
//! first polled (`TimeoutLayer` starts its clock in `call`), so a future created early and
//! awaited later still gets its full time.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use lark_types::{BoxError, LarkError, TimeoutKind};
use tokio::time::Instant;
use tracing::Instrument;

use crate::body::{try_clone_request, ReplayBody};
use crate::retry::RetryPolicy;
use crate::timeout::{timeout_error, within};
use crate::trace::{record_outcome, request_span};

/// Adds a [`CallPolicy`]: a `lark.request` span, a total timeout, retries by a [`RetryPolicy`]
/// and a per-attempt timeout.
#[derive(Clone, Debug)]
pub struct CallPolicyLayer {
    retry: RetryPolicy,
    total: Duration,
    attempt: Duration,
}

impl CallPolicyLayer {
    /// Retries by `retry`; a call fails with [`TimeoutKind::Total`] after `total` (backoff
    /// included) and an attempt with [`TimeoutKind::Attempt`] after `attempt`.
    pub fn new(retry: RetryPolicy, total: Duration, attempt: Duration) -> Self {
        CallPolicyLayer { retry, total, attempt }
    }
}

impl<S> tower::Layer<S> for CallPolicyLayer {
    type Service = CallPolicy<S>;
    fn layer(&self, inner: S) -> CallPolicy<S> {
        CallPolicy { inner, retry: self.retry.clone(), total: self.total, attempt: self.attempt }
    }
}

/// The service of [`CallPolicyLayer`].
#[derive(Clone, Debug)]
pub struct CallPolicy<S> {
    inner: S,
    retry: RetryPolicy,
    total: Duration,
    attempt: Duration,
}

impl<S> CallPolicy<S> {
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

impl<S, B, RB> tower::Service<Request<B>> for CallPolicy<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: ReplayBody + Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, BoxError>> + Send>>;

    /// Always ready: each attempt waits for the inner service's readiness itself, within the
    /// call's timeouts (a readiness error is classified like a failed attempt).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.send(req)
    }
}

impl<S> CallPolicy<S> {
    /// Sends `req` through the policy. Takes `&self`: the policy is always ready (see
    /// `poll_ready`), and each call runs on its own clone of the inner service. The span is
    /// opened now (its parent is the span current here); nothing is sent and no clock runs until
    /// the future is polled.
    pub fn send<B, RB>(
        &self,
        req: Request<B>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<RB>, BoxError>> + Send>>
    where
        S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
        B: ReplayBody + Send + 'static,
        RB: Send + 'static,
    {
        let span = request_span(&req);
        let limits = Limits { total: self.total, attempt: self.attempt };
        let run = run(self.inner.clone(), self.retry.clone(), limits, req, span.clone());
        Box::pin(run.instrument(span))
    }
}

#[derive(Clone, Copy)]
struct Limits {
    total: Duration,
    attempt: Duration,
}

impl Limits {
    /// The length of the timeout of `kind`.
    fn of(self, kind: TimeoutKind) -> Duration {
        match kind {
            TimeoutKind::Total => self.total,
            _ => self.attempt,
        }
    }
}

/// `from + after`, or a far-future instant when that overflows (a "practically never" timeout).
fn deadline(from: Instant, after: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    from.checked_add(after).unwrap_or_else(|| from + FAR)
}

/// Which deadline the one timer stands for (on a tie the attempt's, as the nested layers did).
fn nearer(total_at: Instant, attempt_at: Instant) -> (Instant, TimeoutKind) {
    if attempt_at <= total_at {
        (attempt_at, TimeoutKind::Attempt)
    } else {
        (total_at, TimeoutKind::Total)
    }
}

/// The call as one future. A plain `fn` returning an `async move` block: the arguments live in the
/// future once (an `async fn` keeps a second copy of each, and a request is 264 bytes).
fn run<S, B, RB>(
    mut inner: S,
    mut policy: RetryPolicy,
    limits: Limits,
    mut req: Request<B>,
    span: tracing::Span,
) -> impl Future<Output = Result<Response<RB>, BoxError>>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: ReplayBody,
{
    use std::future::poll_fn;

    async move {
        // The clocks start when the call is first polled.
        let start = Instant::now();
        let total_at = deadline(start, limits.total);
        let (first_at, mut kind) = nearer(total_at, deadline(start, limits.attempt));
        let timer = tokio::time::sleep_until(first_at);
        tokio::pin!(timer);
        loop {
            let again = try_clone_request(&req);
            // Readiness, then the call, both racing the one timer. The request moves straight into
            // the inner service's `call`, so the attempt keeps no copy of it.
            let after = limits.of(kind);
            let ready =
                poll_fn(|cx| within(cx, timer.as_mut(), kind, after, |cx| inner.poll_ready(cx))).await;
            let result = match ready {
                Err(e) => Err(e),
                Ok(()) => {
                    let mut call = std::pin::pin!(inner.call(req));
                    poll_fn(|cx| within(cx, timer.as_mut(), kind, after, |cx| call.as_mut().poll(cx))).await
                }
            };
            // As the nested layers: a request that cannot be sent again never reaches the policy (no
            // budget spent, no "retrying" logged), and nothing is retried past the total deadline.
            let total_expired = matches!(&result, Err(e) if is_total_timeout(e));
            let wait = match &again {
                Some(next) if !total_expired => policy.decide(next.method(), &result),
                _ => None,
            };
            let (Some(wait), Some(next)) = (wait, again) else {
                record_outcome(&span, &result);
                return result;
            };
            drop(result);
            req = next;
            // Back off, within the total deadline.
            let resume_at = deadline(Instant::now(), wait);
            if resume_at >= total_at {
                timer.as_mut().reset(total_at);
                timer.as_mut().await;
                let e = Err(timeout_error(TimeoutKind::Total, limits.total));
                record_outcome(&span, &e);
                return e;
            }
            if !wait.is_zero() {
                timer.as_mut().reset(resume_at);
                timer.as_mut().await;
            }
            let (at, k) = nearer(total_at, deadline(Instant::now(), limits.attempt));
            timer.as_mut().reset(at);
            kind = k;
        }
    }
}

fn is_total_timeout(e: &BoxError) -> bool {
    matches!(e.downcast_ref::<LarkError>(), Some(LarkError::Timeout(t)) if t.kind() == TimeoutKind::Total)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use futures_util::future::BoxFuture;
    use futures_util::FutureExt;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::Body;

    /// A service answering call `i` (from 0) with `script(i)`, counting calls.
    fn scripted(
        calls: Arc<AtomicUsize>,
        script: fn(usize) -> BoxFuture<'static, Result<Response<Body>, BoxError>>,
    ) -> impl tower::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = BoxError,
        Future = BoxFuture<'static, Result<Response<Body>, BoxError>>,
    > + Clone {
        tower::service_fn(move |_req: Request<Body>| script(calls.fetch_add(1, Ordering::SeqCst)))
    }

    fn status(code: u16) -> BoxFuture<'static, Result<Response<Body>, BoxError>> {
        async move { Ok(Response::builder().status(code).body(Body::empty()).expect("valid response")) }
            .boxed()
    }

    fn hang() -> BoxFuture<'static, Result<Response<Body>, BoxError>> {
        futures_util::future::pending().boxed()
    }

    fn timeout_kind(e: &BoxError) -> Option<TimeoutKind> {
        match e.downcast_ref::<LarkError>() {
            Some(LarkError::Timeout(t)) => Some(t.kind()),
            _ => None,
        }
    }

    /// The request most tests send: a GET without a body (so it can be sent again).
    fn get() -> Request<Body> {
        Request::get("http://x/a").body(Body::empty()).expect("valid request")
    }

    fn layer(retries: u32, total_s: u64, attempt_s: u64) -> CallPolicyLayer {
        let retry = RetryPolicy::default()
            .budget(None)
            .max_retries(retries)
            .backoff(Duration::from_secs(1), Duration::from_secs(1));
        CallPolicyLayer::new(retry, Duration::from_secs(total_s), Duration::from_secs(attempt_s))
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_get_times_out_per_attempt_and_is_retried() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc =
            layer(3, 60, 5).layer(scripted(calls.clone(), |i| if i == 0 { hang() } else { status(200) }));
        let resp = svc.oneshot(get()).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_deadline_ends_retries_and_backoff() {
        let calls = Arc::new(AtomicUsize::new(0));
        // Every attempt hangs 5 s then backs off ~1 s: the 12 s total ends the third attempt.
        let svc = layer(10, 12, 5).layer(scripted(calls.clone(), |_| hang()));
        let started = Instant::now();
        let err = svc.oneshot(get()).await.unwrap_err();
        assert_eq!(timeout_kind(&err), Some(TimeoutKind::Total));
        assert_eq!(started.elapsed(), Duration::from_secs(12));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn each_attempt_gets_its_own_deadline() {
        let calls = Arc::new(AtomicUsize::new(0));
        // Attempts take 4 s each against a 5 s attempt limit: a 503, then a 200 after 8 s in all.
        let slow = |i: usize| -> BoxFuture<'static, Result<Response<Body>, BoxError>> {
            async move {
                tokio::time::sleep(Duration::from_secs(4)).await;
                status(if i == 0 { 503 } else { 200 }).await
            }
            .boxed()
        };
        let retry = RetryPolicy::default().budget(None).backoff(Duration::ZERO, Duration::ZERO);
        let svc = CallPolicyLayer::new(retry, Duration::from_secs(60), Duration::from_secs(5))
            .layer(scripted(calls.clone(), slow));
        let started = Instant::now();
        let resp = svc.oneshot(get()).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(started.elapsed(), Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_reset_past_the_total_deadline_ends_at_the_deadline() {
        let calls = Arc::new(AtomicUsize::new(0));
        let limited = |_| -> BoxFuture<'static, Result<Response<Body>, BoxError>> {
            async {
                Ok(Response::builder()
                    .status(429)
                    .header(lark_types::RATE_LIMIT_RESET_HEADER, "10")
                    .body(Body::empty())
                    .expect("valid response"))
            }
            .boxed()
        };
        let svc = layer(3, 5, 5).layer(scripted(calls.clone(), limited));
        let started = Instant::now();
        let err = svc.oneshot(get()).await.unwrap_err();
        assert_eq!(timeout_kind(&err), Some(TimeoutKind::Total));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_token_is_sent_again_once_even_without_retries() {
        let calls = Arc::new(AtomicUsize::new(0));
        let rejected = |_| -> BoxFuture<'static, Result<Response<Body>, BoxError>> {
            async {
                let mut r = Response::new(Body::empty());
                r.extensions_mut().insert(crate::TokenRejected);
                Ok(r)
            }
            .boxed()
        };
        let svc = CallPolicyLayer::new(RetryPolicy::none(), Duration::from_secs(60), Duration::from_secs(5))
            .layer(scripted(calls.clone(), rejected));
        let resp = svc.oneshot(get()).await.unwrap();
        assert!(resp.extensions().get::<crate::TokenRejected>().is_some());
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the first send and one re-send");
    }

    #[tokio::test(start_paused = true)]
    async fn endless_timeouts_do_not_overflow_and_the_service_is_always_ready() {
        use tower::Service;
        let calls = Arc::new(AtomicUsize::new(0));
        let mut svc = CallPolicyLayer::new(RetryPolicy::none(), Duration::MAX, Duration::MAX)
            .layer(scripted(calls.clone(), |_| status(200)));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let resp = svc.call(get()).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// A service whose readiness is scripted: `Ready(Err(connect))` for the first `failures`
    /// polls (or never ready when `failures` is `usize::MAX`), then ready; answers 200.
    #[derive(Clone)]
    struct Flaky {
        failures: usize,
        polls: Arc<AtomicUsize>,
        calls: Arc<AtomicUsize>,
    }

    impl tower::Service<Request<Body>> for Flaky {
        type Response = Response<Body>;
        type Error = BoxError;
        type Future = BoxFuture<'static, Result<Response<Body>, BoxError>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            let n = self.polls.fetch_add(1, Ordering::SeqCst);
            if self.failures == usize::MAX {
                return Poll::Pending;
            }
            if n < self.failures {
                let e = lark_types::TransportError::new(lark_types::TransportErrorKind::Connect, "refused");
                return Poll::Ready(Err(Box::new(LarkError::Transport(e))));
            }
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: Request<Body>) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            status(200)
        }
    }

    fn flaky(failures: usize) -> (Flaky, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (polls, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        (Flaky { failures, polls: polls.clone(), calls: calls.clone() }, polls, calls)
    }

    #[tokio::test(start_paused = true)]
    async fn a_readiness_failure_is_retried_like_a_failed_attempt() {
        let (svc, polls, calls) = flaky(2);
        let started = Instant::now();
        let resp = layer(3, 60, 5).layer(svc).oneshot(get());
        assert_eq!(resp.await.unwrap().status(), 200);
        assert_eq!((polls.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)), (3, 1));
        // Two jittered backoffs of at most 1 s each.
        assert!(started.elapsed() <= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_that_never_comes_ends_at_the_deadlines() {
        let (svc, _, calls) = flaky(usize::MAX);
        let started = Instant::now();
        let err = layer(10, 12, 5).layer(svc).oneshot(get()).await.unwrap_err();
        assert_eq!(timeout_kind(&err), Some(TimeoutKind::Total));
        assert_eq!(started.elapsed(), Duration::from_secs(12));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_clocks_start_when_the_call_is_first_polled() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = layer(0, 12, 5).layer(scripted(calls.clone(), |_| hang()));
        let call = svc.send(get());
        // Created long before it is awaited: nothing has been sent, no time has been used.
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let polled = Instant::now();
        let err = call.await.unwrap_err();
        assert_eq!(timeout_kind(&err), Some(TimeoutKind::Attempt));
        assert_eq!(polled.elapsed(), Duration::from_secs(5));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_that_timed_out_is_not_retried() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = layer(3, 60, 5).layer(scripted(calls.clone(), |_| hang()));
        let err = svc.oneshot(Request::post("http://x/a").body(Body::from("{}")).unwrap()).await.unwrap_err();
        assert_eq!(timeout_kind(&err), Some(TimeoutKind::Attempt));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_are_retried_up_to_the_limit_unless_the_body_is_a_stream() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = layer(2, 60, 5).layer(scripted(calls.clone(), |_| status(503)));
        let resp =
            svc.clone().oneshot(Request::post("http://x/a").body(Body::from("{}")).unwrap()).await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "first attempt and two retries");

        calls.store(0, Ordering::SeqCst);
        let stream =
            Body::from_stream(futures_util::stream::iter(vec![Ok::<_, BoxError>(bytes::Bytes::from("x"))]));
        let resp = svc.oneshot(Request::post("http://x/a").body(stream).unwrap()).await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a stream cannot be sent twice");
    }
}
