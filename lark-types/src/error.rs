use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::envelope::ErrorBody;

/// A boxed error, as carried through tower stacks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Every error the SDK returns, by the phase it happened in.
///
/// `Display` is short; the cause is available through [`std::error::Error::source`], and
/// metadata (code, log id, HTTP status) through accessors. No variant ever shows a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LarkError {
    /// The SDK or a request was configured wrongly; the message names the fix.
    #[error(transparent)]
    Config(ConfigError),
    /// The request could not be sent or its reply could not be read (connect, TLS, IO).
    #[error(transparent)]
    Transport(TransportError),
    /// A timeout fired: the whole call, or one attempt.
    #[error(transparent)]
    Timeout(TimeoutError),
    /// The reply was not what the API promised (not JSON, wrong shape).
    #[error(transparent)]
    Decode(DecodeError),
    /// An access token could not be obtained (fetch failed, app_ticket missing, store failed).
    #[error(transparent)]
    Token(TokenError),
    /// The platform answered with `code != 0`.
    #[error(transparent)]
    Api(Box<ApiError>),
}

impl LarkError {
    /// The platform's error code, when the platform answered with one (also for token fetches).
    pub fn code(&self) -> Option<i64> {
        match self {
            LarkError::Api(e) => Some(e.code),
            LarkError::Token(e) => e.api_error().map(|a| a.code),
            _ => None,
        }
    }

    /// The log id of the call, when known (quote it to support).
    pub fn log_id(&self) -> Option<&str> {
        match self {
            LarkError::Api(e) => e.log_id.as_deref(),
            LarkError::Decode(e) => e.log_id.as_deref(),
            LarkError::Transport(e) => e.log_id.as_deref(),
            LarkError::Token(e) => e.api_error().and_then(|a| a.log_id.as_deref()),
            _ => None,
        }
    }

    /// The API error, when the platform answered with `code != 0`.
    pub fn as_api(&self) -> Option<&ApiError> {
        match self {
            LarkError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the request certainly did not reach the platform (a connect error, a missing
    /// token, bad configuration). When `false` the request may or may not have been processed.
    pub fn is_not_sent(&self) -> bool {
        match self {
            LarkError::Config(_) | LarkError::Token(_) => true,
            LarkError::Transport(e) => e.kind == TransportErrorKind::Connect,
            _ => false,
        }
    }

    /// Converts a boxed error from a tower stack back into a `LarkError`, keeping the
    /// original when it is one and wrapping anything else as a transport error.
    pub fn from_boxed(err: BoxError) -> LarkError {
        match err.downcast::<LarkError>() {
            Ok(e) => *e,
            Err(err) => match err.downcast::<TimeoutError>() {
                Ok(t) => LarkError::Timeout(*t),
                Err(err) => LarkError::Transport(TransportError::new(TransportErrorKind::Other, err)),
            },
        }
    }
}

impl From<ConfigError> for LarkError {
    fn from(e: ConfigError) -> Self {
        LarkError::Config(e)
    }
}
impl From<TransportError> for LarkError {
    fn from(e: TransportError) -> Self {
        LarkError::Transport(e)
    }
}
impl From<TimeoutError> for LarkError {
    fn from(e: TimeoutError) -> Self {
        LarkError::Timeout(e)
    }
}
impl From<DecodeError> for LarkError {
    fn from(e: DecodeError) -> Self {
        LarkError::Decode(e)
    }
}
impl From<TokenError> for LarkError {
    fn from(e: TokenError) -> Self {
        LarkError::Token(e)
    }
}
impl From<ApiError> for LarkError {
    fn from(e: ApiError) -> Self {
        LarkError::Api(Box::new(e))
    }
}

/// Wrong configuration or request input. The message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: Cow<'static, str>,
}

impl ConfigError {
    /// A configuration error with a message naming the fix.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        ConfigError { message: message.into() }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// What kind of transport failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be made: the request was not sent.
    Connect,
    /// The connection failed while sending or receiving.
    Io,
    /// The reply body could not be read to the end.
    Body,
    /// A reply body was larger than the limit the SDK buffers.
    TooLarge,
    /// Anything else from the HTTP stack.
    Other,
}

/// The request could not be sent, or its reply could not be read.
#[derive(Debug)]
pub struct TransportError {
    kind: TransportErrorKind,
    log_id: Option<String>,
    source: BoxError,
}

impl TransportError {
    /// Wraps a cause.
    pub fn new(kind: TransportErrorKind, source: impl Into<BoxError>) -> Self {
        TransportError { kind, log_id: None, source: source.into() }
    }

    /// Wraps a cause that is already boxed.
    pub fn from_boxed(kind: TransportErrorKind, source: BoxError) -> Self {
        TransportError { kind, log_id: None, source }
    }

    /// Attaches the call's log id.
    #[must_use]
    pub fn with_log_id(mut self, log_id: Option<String>) -> Self {
        self.log_id = log_id;
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The call's log id, when a reply was started.
    pub fn log_id(&self) -> Option<&str> {
        self.log_id.as_deref()
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TransportErrorKind::Connect => "could not connect",
            TransportErrorKind::Io => "connection failed",
            TransportErrorKind::Body => "could not read the reply body",
            TransportErrorKind::TooLarge => "reply body too large",
            TransportErrorKind::Other => "HTTP transport error",
        };
        write!(f, "transport error: {what}")
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Which timeout fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The total time for a call, retries and backoff included.
    Total,
    /// The time for one attempt.
    Attempt,
}

/// A timeout fired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out: {kind:?} timeout of {after:?} elapsed")]
pub struct TimeoutError {
    kind: TimeoutKind,
    after: Duration,
}

impl TimeoutError {
    /// A timeout of `kind` after `after`.
    pub fn new(kind: TimeoutKind, after: Duration) -> Self {
        TimeoutError { kind, after }
    }

    /// Which timeout fired.
    pub fn kind(&self) -> TimeoutKind {
        self.kind
    }

    /// The configured duration.
    pub fn after(&self) -> Duration {
        self.after
    }
}

/// The reply could not be decoded.
#[derive(Debug)]
pub struct DecodeError {
    http_status: u16,
    log_id: Option<String>,
    message: Cow<'static, str>,
    source: Option<BoxError>,
}

impl DecodeError {
    /// A decode error for a reply with `http_status`.
    pub fn new(http_status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        DecodeError { http_status, log_id: None, message: message.into(), source: None }
    }

    /// Attaches the cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Attaches the log id.
    #[must_use]
    pub fn with_log_id(mut self, log_id: Option<String>) -> Self {
        self.log_id = log_id;
        self
    }

    /// HTTP status of the reply.
    pub fn http_status(&self) -> u16 {
        self.http_status
    }

    /// The log id of the call.
    pub fn log_id(&self) -> Option<&str> {
        self.log_id.as_deref()
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not decode the reply (HTTP {}): {}", self.http_status, self.message)
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why a token could not be obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenErrorKind {
    /// The token endpoint answered with `code != 0` (see [`TokenError::api_error`]).
    Fetch,
    /// The token endpoint could not be reached or answered garbage (see `source`).
    Unreachable,
    /// A marketplace app has no app_ticket yet; a resend was requested. Retry shortly.
    AppTicketMissing,
    /// The app_ticket was rejected (code 10012); it was dropped and a resend requested.
    AppTicketInvalid,
    /// A marketplace app must name a `tenant_key` to get a tenant token.
    TenantKeyRequired,
    /// The API only accepts a user access token and none was given.
    UserTokenRequired,
    /// The API accepts no token type the SDK can provide.
    NoAcceptableToken,
    /// The token store failed (e.g. Redis unreachable).
    Store,
}

/// An access token could not be obtained.
#[derive(Debug)]
pub struct TokenError {
    kind: TokenErrorKind,
    api: Option<Box<ApiError>>,
    source: Option<BoxError>,
}

impl TokenError {
    /// A token error of `kind`.
    pub fn new(kind: TokenErrorKind) -> Self {
        TokenError { kind, api: None, source: None }
    }

    /// A failed fetch: the token endpoint answered `code != 0`.
    pub fn fetch(api: ApiError) -> Self {
        TokenError { kind: TokenErrorKind::Fetch, api: Some(Box::new(api)), source: None }
    }

    /// Attaches the cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Attaches the platform's answer.
    #[must_use]
    pub fn with_api(mut self, api: ApiError) -> Self {
        self.api = Some(Box::new(api));
        self
    }

    /// Why it failed.
    pub fn kind(&self) -> TokenErrorKind {
        self.kind
    }

    /// The platform's answer, when the token endpoint answered `code != 0`.
    pub fn api_error(&self) -> Option<&ApiError> {
        self.api.as_deref()
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TokenErrorKind::Fetch => match &self.api {
                Some(api) => write!(f, "token request refused: code {}: {}", api.code, api.msg),
                None => f.write_str("token request refused"),
            },
            TokenErrorKind::Unreachable => f.write_str("token endpoint could not be reached"),
            TokenErrorKind::AppTicketMissing => f.write_str(
                "no app_ticket received yet for this marketplace app; a resend was requested, retry shortly",
            ),
            TokenErrorKind::AppTicketInvalid => {
                f.write_str("the app_ticket was rejected (code 10012); a resend was requested, retry shortly")
            }
            TokenErrorKind::TenantKeyRequired => {
                f.write_str("a marketplace app needs a tenant_key to act for a tenant")
            }
            TokenErrorKind::UserTokenRequired => {
                f.write_str("this API only accepts a user_access_token; pass one on the request")
            }
            TokenErrorKind::NoAcceptableToken => {
                f.write_str("this API accepts no token type the SDK can provide")
            }
            TokenErrorKind::Store => f.write_str("token store failed"),
        }
    }
}

impl std::error::Error for TokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        if let Some(s) = &self.source {
            return Some(s.as_ref());
        }
        self.api.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The platform answered `code != 0`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ApiError {
    /// The platform's error code.
    pub code: i64,
    /// The platform's message.
    pub msg: String,
    /// Log id (from the `error` object or the `X-Tt-Logid` header).
    pub log_id: Option<String>,
    /// A link explaining the error.
    pub troubleshooter: Option<String>,
    /// HTTP status of the reply.
    pub http_status: u16,
    /// Seconds until a rate limit resets, from `x-ogw-ratelimit-reset`.
    pub rate_limit_reset: Option<Duration>,
    /// The whole `error` object: details, permission and field violations, help links.
    pub error: Option<ErrorBody>,
}

impl ApiError {
    /// An API error with the essentials.
    pub fn new(code: i64, msg: impl Into<String>, http_status: u16) -> Self {
        ApiError {
            code,
            msg: msg.into(),
            log_id: None,
            troubleshooter: None,
            http_status,
            rate_limit_reset: None,
            error: None,
        }
    }

    /// Builds the error from a failed envelope, the reply's headers and status.
    pub fn from_reply(
        code: i64,
        msg: String,
        error: Option<ErrorBody>,
        http_status: u16,
        headers: &http::HeaderMap,
    ) -> Self {
        let log_id =
            error.as_ref().and_then(|e| e.log_id.clone()).or_else(|| crate::log_id_from_headers(headers));
        let troubleshooter = error.as_ref().and_then(|e| e.troubleshooter.clone());
        let rate_limit_reset = headers
            .get(crate::RATE_LIMIT_RESET_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        ApiError { code, msg, log_id, troubleshooter, http_status, rate_limit_reset, error }
    }

    /// The error code's class.
    pub fn class(&self) -> crate::codes::ErrorClass {
        crate::codes::classify(self.code)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "API error {}: {}", self.code, self.msg)?;
        if let Some(id) = &self.log_id {
            write!(f, " (log_id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_round_trip_keeps_the_variant() {
        let e: BoxError = Box::new(LarkError::from(ApiError::new(1, "x", 400)));
        assert_eq!(LarkError::from_boxed(e).code(), Some(1));
        let t: BoxError = Box::new(TimeoutError::new(TimeoutKind::Attempt, Duration::from_secs(1)));
        assert!(matches!(LarkError::from_boxed(t), LarkError::Timeout(_)));
    }

    #[test]
    fn api_error_reads_headers() {
        let mut h = http::HeaderMap::new();
        h.insert("x-tt-logid", "LOG1".parse().unwrap());
        h.insert("x-ogw-ratelimit-reset", "3".parse().unwrap());
        let e = ApiError::from_reply(99991400, "limited".into(), None, 429, &h);
        assert_eq!(e.log_id.as_deref(), Some("LOG1"));
        assert_eq!(e.rate_limit_reset, Some(Duration::from_secs(3)));
        assert!(e.to_string().contains("99991400"));
    }
}
