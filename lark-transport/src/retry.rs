//! [`RetryPolicy`]: which failures are retried, and how long to wait.
//!
//! Retried: connect errors (the request was not sent); HTTP 5xx; HTTP 429 and the rate-limit
//! codes (99991400, 11232, 230020), waiting `x-ogw-ratelimit-reset` seconds when the platform
//! gives it; attempt timeouts and broken connections for idempotent methods only. Never retried:
//! business errors, requests whose body cannot be replayed, anything once the retry budget is
//! spent. Waits are exponential with full jitter.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use lark_types::{codes, BoxError, LarkError, TimeoutKind, TransportErrorKind, RATE_LIMIT_RESET_HEADER};
use tower::retry::budget::{Budget, TpsBudget};

use crate::body::{try_clone_request, ReplayBody};
use crate::reply::ReplyCode;

/// Response extension set by the auth layer when the platform rejected a token it manages and it
/// dropped that token without re-sending itself (because a retry layer sits outside it). The
/// retry layer then re-sends the request once, at once, so the next attempt gets a fresh token.
/// This retry does not count against `max_retries` or the budget, and happens even with
/// [`RetryPolicy::none`]; a second rejection is returned as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenRejected;

/// Retry settings. Cheap to clone: the budget is shared.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    max_retries: u32,
    base_backoff: Duration,
    max_backoff: Duration,
    max_rate_limit_wait: Duration,
    budget: Option<Arc<TpsBudget>>,
    attempt: u32,
    token_retried: bool,
}

impl Default for RetryPolicy {
    /// 3 retries, backoff from 100 ms to 5 s, rate-limit waits up to 60 s, and a budget that lets
    /// retries add at most 20 % to the request rate (with a floor of 10 retries per second).
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_rate_limit_wait: Duration::from_secs(60),
            budget: Some(Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2))),
            attempt: 0,
            token_retried: false,
        }
    }
}

/// Why a retry happens, as decided by [`RetryPolicy::classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    /// The connection could not be made.
    Connect,
    /// An idempotent request's connection failed or its attempt timed out.
    Transient,
    /// HTTP 5xx.
    ServerError,
    /// A rate limit, with the platform's reset time when given.
    RateLimited(Option<Duration>),
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy { max_retries: 0, ..RetryPolicy::default() }
    }

    /// Maximum retries after the first attempt (default 3).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// First backoff and its cap (defaults 100 ms and 5 s).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_backoff = base;
        self.max_backoff = max.max(base);
        self
    }

    /// Longest rate-limit reset the policy waits for (default 60 s); a longer one fails at once.
    pub fn max_rate_limit_wait(mut self, d: Duration) -> Self {
        self.max_rate_limit_wait = d;
        self
    }

    /// Replaces the retry budget; `None` disables it.
    pub fn budget(mut self, budget: Option<Arc<TpsBudget>>) -> Self {
        self.budget = budget;
        self
    }

    /// Whether an outcome is worth retrying, and why.
    pub fn classify<B>(method: &Method, result: &Result<Response<B>, BoxError>) -> Option<RetryReason> {
        match result {
            Ok(resp) => {
                let code = resp.extensions().get::<ReplyCode>().map(|c| c.0);
                let limited = resp.status() == http::StatusCode::TOO_MANY_REQUESTS
                    || code.is_some_and(codes::is_rate_limited);
                if limited {
                    let reset = resp
                        .headers()
                        .get(RATE_LIMIT_RESET_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    Some(RetryReason::RateLimited(reset))
                } else if resp.status().is_server_error() {
                    Some(RetryReason::ServerError)
                } else {
                    None
                }
            }
            Err(e) => {
                let idempotent = matches!(
                    *method,
                    Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
                );
                match e.downcast_ref::<LarkError>() {
                    Some(LarkError::Transport(t)) if t.kind() == TransportErrorKind::Connect => {
                        Some(RetryReason::Connect)
                    }
                    Some(LarkError::Transport(t)) if idempotent && t.kind() == TransportErrorKind::Io => {
                        Some(RetryReason::Transient)
                    }
                    Some(LarkError::Timeout(t)) if idempotent && t.kind() == TimeoutKind::Attempt => {
                        Some(RetryReason::Transient)
                    }
                    _ => None,
                }
            }
        }
    }

    fn backoff_for(&self, attempt: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << attempt.min(16));
        let cap = exp.min(self.max_backoff);
        // Full jitter: uniform in [cap/2, cap], so waits never collapse to zero.
        let half = cap / 2;
        half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos().min(u64::MAX as u128) as u64))
    }

    /// The wait before the next attempt, or `None` when the outcome must be returned as is.
    fn next_wait(&mut self, reason: RetryReason) -> Option<Duration> {
        if self.attempt >= self.max_retries {
            return None;
        }
        let wait = match reason {
            RetryReason::RateLimited(Some(reset)) => {
                if reset > self.max_rate_limit_wait {
                    return None;
                }
                // The reset is whole seconds: add a little jitter so clients do not return together.
                reset + Duration::from_millis(fastrand::u64(0..=250))
            }
            _ => self.backoff_for(self.attempt),
        };
        if let Some(budget) = &self.budget {
            if !budget.withdraw() {
                return None;
            }
        }
        self.attempt += 1;
        Some(wait)
    }

    /// The wait before re-sending a call that ended in `result`, or `None` when `result` is final.
    /// A rejected managed token (see [`TokenRejected`]) is re-sent once at once; a success counts
    /// towards the retry budget.
    pub(crate) fn decide<RB>(
        &mut self,
        method: &Method,
        result: &Result<Response<RB>, BoxError>,
    ) -> Option<Duration> {
        if let Ok(resp) = result {
            if resp.extensions().get::<TokenRejected>().is_some() {
                if self.token_retried {
                    return None;
                }
                self.token_retried = true;
                tracing::debug!("token rejected; re-sending once with a fresh token");
                return Some(Duration::ZERO);
            }
        }
        match Self::classify(method, result) {
            Some(reason) => {
                let wait = self.next_wait(reason)?;
                tracing::debug!(
                    attempt = self.attempt,
                    ?reason,
                    wait_ms = wait.as_millis() as u64,
                    "retrying"
                );
                Some(wait)
            }
            None => {
                if let Some(budget) = &self.budget {
                    budget.deposit();
                }
                None
            }
        }
    }
}

impl<B, RB> tower::retry::Policy<Request<B>, Response<RB>, BoxError> for RetryPolicy
where
    B: ReplayBody,
{
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<B>,
        result: &mut Result<Response<RB>, BoxError>,
    ) -> Option<Self::Future> {
        self.decide(req.method(), result).map(tokio::time::sleep)
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        try_clone_request(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Body;
    use lark_types::{TimeoutError, TransportError};

    fn resp(status: u16, code: Option<i64>, reset: Option<&str>) -> Result<Response<Body>, BoxError> {
        let mut r = Response::builder().status(status);
        if let Some(reset) = reset {
            r = r.header(RATE_LIMIT_RESET_HEADER, reset);
        }
        let mut r = r.body(Body::empty()).unwrap();
        if let Some(c) = code {
            r.extensions_mut().insert(ReplyCode(c));
        }
        Ok(r)
    }

    #[test]
    fn classification() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(RetryPolicy::classify(&post, &resp(503, None, None)), Some(RetryReason::ServerError));
        assert_eq!(
            RetryPolicy::classify(&post, &resp(429, None, Some("2"))),
            Some(RetryReason::RateLimited(Some(Duration::from_secs(2))))
        );
        assert_eq!(
            RetryPolicy::classify(&post, &resp(200, Some(99991400), None)),
            Some(RetryReason::RateLimited(None))
        );
        assert_eq!(
            RetryPolicy::classify(&post, &resp(400, Some(99992402), None)),
            None,
            "business errors are final"
        );
        assert_eq!(RetryPolicy::classify(&post, &resp(200, Some(0), None)), None);
        let connect: Result<Response<Body>, BoxError> =
            Err(Box::new(LarkError::Transport(TransportError::new(TransportErrorKind::Connect, "refused"))));
        assert_eq!(RetryPolicy::classify(&post, &connect), Some(RetryReason::Connect));
        let io = || -> Result<Response<Body>, BoxError> {
            Err(Box::new(LarkError::Transport(TransportError::new(TransportErrorKind::Io, "reset"))))
        };
        assert_eq!(RetryPolicy::classify(&post, &io()), None, "a POST may have been processed");
        assert_eq!(RetryPolicy::classify(&get, &io()), Some(RetryReason::Transient));
        let attempt: Result<Response<Body>, BoxError> = Err(Box::new(LarkError::Timeout(TimeoutError::new(
            TimeoutKind::Attempt,
            Duration::from_secs(1),
        ))));
        assert_eq!(RetryPolicy::classify(&get, &attempt), Some(RetryReason::Transient));
        let total: Result<Response<Body>, BoxError> =
            Err(Box::new(LarkError::Timeout(TimeoutError::new(TimeoutKind::Total, Duration::from_secs(1)))));
        assert_eq!(RetryPolicy::classify(&get, &total), None);
    }

    #[test]
    fn waits_and_limits() {
        let mut p =
            RetryPolicy::default().budget(None).backoff(Duration::from_millis(100), Duration::from_secs(1));
        for attempt in 0..3 {
            let w = p.next_wait(RetryReason::ServerError).unwrap();
            let cap = Duration::from_millis(100 * (1 << attempt)).min(Duration::from_secs(1));
            assert!(w >= cap / 2 && w <= cap, "attempt {attempt}: {w:?}");
        }
        assert_eq!(p.next_wait(RetryReason::ServerError), None, "max_retries reached");

        let mut p = RetryPolicy::default().budget(None).max_rate_limit_wait(Duration::from_secs(10));
        let w = p.next_wait(RetryReason::RateLimited(Some(Duration::from_secs(3)))).unwrap();
        assert!(w >= Duration::from_secs(3) && w <= Duration::from_millis(3250));
        assert_eq!(p.next_wait(RetryReason::RateLimited(Some(Duration::from_secs(11)))), None);
    }

    #[tokio::test]
    async fn token_rejection_is_retried_once_even_without_retries() {
        use tower::retry::Policy;
        let mut p = RetryPolicy::none();
        let mut req = Request::new(Body::empty());
        let rejected = || -> Result<Response<Body>, BoxError> {
            let mut r = Response::new(Body::empty());
            r.extensions_mut().insert(TokenRejected);
            Ok(r)
        };
        assert!(p.retry(&mut req, &mut rejected()).is_some());
        assert!(p.retry(&mut req, &mut rejected()).is_none(), "only once");
    }

    #[test]
    fn budget_stops_retries() {
        let budget = Arc::new(TpsBudget::new(Duration::from_secs(10), 0, 0.0));
        let mut p = RetryPolicy::default().budget(Some(budget));
        assert_eq!(p.next_wait(RetryReason::ServerError), None);
    }
}
