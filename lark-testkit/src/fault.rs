//! Injected faults: what they do and which requests they hit.

use std::collections::VecDeque;
use std::time::Duration;

/// Path prefix of the token endpoints, which default-scoped faults never touch.
pub(crate) const AUTH_PREFIX: &str = "/open-apis/auth/";

/// A fault for the fake platform to inject into the replies of matching requests.
///
/// Build one with a constructor ([`Fault::status`], [`Fault::rate_limit`], [`Fault::delay`],
/// [`Fault::drop_connection`], [`Fault::api_error`]), optionally scope it with
/// [`Fault::on_path_prefix`] and repeat it with [`Fault::times`], then queue it with
/// [`FakePlatform::inject`](crate::FakePlatform::inject).
///
/// Faults queue in order. Each request takes the **first** queued fault whose scope matches its
/// path, and uses up one of that fault's repetitions. Without a prefix a fault matches any path
/// except the token endpoints under `/open-apis/auth/`; a fault only applies to token endpoints
/// when its prefix explicitly starts with `/open-apis/auth`.
///
/// ```
/// use std::time::Duration;
/// use lark_testkit::Fault;
///
/// let f = Fault::status(503).on_path_prefix("/open-apis/im").times(2);
/// let g = Fault::delay(Duration::from_secs(5));
/// # let _ = (f, g);
/// ```
#[derive(Clone, Debug)]
pub struct Fault {
    pub(crate) kind: FaultKind,
    prefix: Option<String>,
    times: usize,
}

/// What an injected fault does.
#[derive(Clone, Debug)]
pub(crate) enum FaultKind {
    /// Reply with this HTTP status and `{"code": status, "msg": "injected"}`.
    Status(u16),
    /// HTTP 429 with the rate-limit reset header and code 99991400.
    RateLimit(u64),
    /// Sleep (tokio time), then handle the request normally.
    Delay(Duration),
    /// Close the connection without a response.
    DropConnection,
    /// Reply with this code and message (HTTP 200, or 400 for token codes).
    ApiError(i64, String),
}

impl Fault {
    fn new(kind: FaultKind) -> Fault {
        Fault { kind, prefix: None, times: 1 }
    }

    /// Replies with HTTP `status` and the JSON envelope `{"code": <status>, "msg": "injected"}`.
    ///
    /// # Panics
    ///
    /// Panics if `status` is not a valid HTTP status code (100..=999).
    pub fn status(status: u16) -> Fault {
        assert!(
            http::StatusCode::from_u16(status).is_ok(),
            "Fault::status: {status} is not a valid HTTP status code"
        );
        Fault::new(FaultKind::Status(status))
    }

    /// Replies HTTP 429 with header `x-ogw-ratelimit-reset: <reset_secs>` and the body
    /// `{"code": 99991400, "msg": "request trigger frequency limit"}`.
    pub fn rate_limit(reset_secs: u64) -> Fault {
        Fault::new(FaultKind::RateLimit(reset_secs))
    }

    /// Waits `d` with `tokio::time::sleep` (so tests with paused time see it instantly), then
    /// handles the request normally.
    pub fn delay(d: Duration) -> Fault {
        Fault::new(FaultKind::Delay(d))
    }

    /// Closes the connection without sending any response (over HTTP/2, resets the stream).
    pub fn drop_connection() -> Fault {
        Fault::new(FaultKind::DropConnection)
    }

    /// Replies `{"code": code, "msg": msg}`: HTTP 400 when `code` is one of the token codes
    /// (99991661, 99991663, 99991664, 99991668, 99991671), HTTP 200 otherwise.
    pub fn api_error(code: i64, msg: &str) -> Fault {
        Fault::new(FaultKind::ApiError(code, msg.to_owned()))
    }

    /// Limits the fault to requests whose raw path starts with `p` (for example
    /// `"/open-apis/im"`). Token endpoints are only hit when `p` starts with `/open-apis/auth`.
    pub fn on_path_prefix(mut self, p: &str) -> Fault {
        self.prefix = Some(p.to_owned());
        self
    }

    /// Applies the fault to `n` matching requests instead of one. `times(0)` makes a fault that
    /// [`inject`](crate::FakePlatform::inject) ignores.
    pub fn times(mut self, n: usize) -> Fault {
        self.times = n;
        self
    }

    fn matches(&self, path: &str) -> bool {
        let is_auth = path.starts_with(AUTH_PREFIX);
        match &self.prefix {
            None => !is_auth,
            Some(p) => path.starts_with(p.as_str()) && (!is_auth || p.starts_with("/open-apis/auth")),
        }
    }
}

/// The ordered queue of pending faults.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    queue: VecDeque<Fault>,
}

impl FaultQueue {
    /// Queues a fault (ignored when it has no repetitions left).
    pub(crate) fn push(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.queue.push_back(fault);
        }
    }

    /// Takes one use of the first fault matching `path`.
    pub(crate) fn take(&mut self, path: &str) -> Option<FaultKind> {
        let idx = self.queue.iter().position(|f| f.matches(path))?;
        let fault = &mut self.queue[idx];
        fault.times -= 1;
        if fault.times == 0 {
            self.queue.remove(idx).map(|f| f.kind)
        } else {
            Some(fault.kind.clone())
        }
    }

    /// Number of queued faults (not counting repetitions).
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Forgets every queued fault.
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoping_and_order() {
        let mut q = FaultQueue::default();
        q.push(Fault::status(500).on_path_prefix("/open-apis/im").times(2));
        q.push(Fault::rate_limit(3));
        q.push(Fault::status(502).times(0));
        assert_eq!(q.len(), 2);

        // Auth endpoints are untouched by default-scoped and non-auth-scoped faults.
        assert!(q.take("/open-apis/auth/v3/tenant_access_token/internal").is_none());
        assert!(matches!(q.take("/open-apis/contact/v3/users"), Some(FaultKind::RateLimit(3))));
        assert!(matches!(q.take("/open-apis/im/v1/messages"), Some(FaultKind::Status(500))));
        assert!(matches!(q.take("/open-apis/im/v1/messages"), Some(FaultKind::Status(500))));
        assert!(q.take("/open-apis/im/v1/messages").is_none());
        assert_eq!(q.len(), 0);

        q.push(Fault::drop_connection().on_path_prefix("/open-apis/auth/v3"));
        assert!(q.take("/open-apis/im/v1/messages").is_none());
        assert!(matches!(q.take("/open-apis/auth/v3/app_access_token"), Some(FaultKind::DropConnection)));
        q.push(Fault::drop_connection().on_path_prefix("/"));
        assert!(q.take("/open-apis/auth/v3/app_access_token").is_none());
        q.clear();
        assert_eq!(q.len(), 0);
    }
}
