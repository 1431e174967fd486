//! [`WsError`]: why the long-connection client stopped for good.

use std::fmt;
use std::sync::Arc;

/// Why the long-connection client stopped (errors it retries are only logged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WsErrorKind {
    /// The bootstrap call (`/callback/ws/endpoint`) was refused with a final code: bad
    /// credentials, an app that may not use the long connection, and so on. See
    /// [`WsError::code`].
    Bootstrap,
    /// The platform refused the connection: `Handshake-Status: 403` (the app is banned).
    Forbidden,
    /// The platform refused the connection: too many connections for this app
    /// (`Handshake-Status: 514`, `Handshake-Autherrcode: 1000040350`).
    TooManyConnections,
    /// The platform's `ReconnectCount` attempts in a row failed.
    ReconnectsExhausted,
    /// The client's task ended abnormally (a bug: please report it).
    Internal,
}

impl WsErrorKind {
    /// A short description.
    pub fn as_str(self) -> &'static str {
        match self {
            WsErrorKind::Bootstrap => "the platform refused the long-connection bootstrap",
            WsErrorKind::Forbidden => "the platform refused the long connection (forbidden)",
            WsErrorKind::TooManyConnections => {
                "the platform refused the long connection (too many connections)"
            }
            WsErrorKind::ReconnectsExhausted => "could not reconnect the long connection",
            WsErrorKind::Internal => "the long-connection client ended abnormally",
        }
    }
}

/// A final error of the long-connection client.
///
/// `Display` is short and never shows the app secret or the connection URL's `access_key` and
/// `ticket`; the platform's code and message are in [`code`](Self::code) and
/// [`message`](Self::message), the last retried error (if any) in
/// [`source`](std::error::Error::source). Cheap to clone.
#[derive(Clone, Debug)]
pub struct WsError {
    kind: WsErrorKind,
    code: Option<i64>,
    message: Option<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl WsError {
    pub(crate) fn new(kind: WsErrorKind) -> WsError {
        WsError { kind, code: None, message: None, source: None }
    }

    pub(crate) fn with_code(mut self, code: i64) -> WsError {
        self.code = Some(code);
        self
    }

    pub(crate) fn with_message(mut self, message: impl Into<String>) -> WsError {
        let message = message.into();
        self.message = (!message.is_empty()).then_some(message);
        self
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> WsError {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> WsErrorKind {
        self.kind
    }

    /// The platform's code: the bootstrap reply's `code`, or the `Handshake-Status` of a refused
    /// connection.
    pub fn code(&self) -> Option<i64> {
        self.code
    }

    /// The platform's message (bootstrap `msg` or `Handshake-Msg`).
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, ": code {c}, {m}"),
            (Some(c), None) => write!(f, ": code {c}"),
            (None, Some(m)) => write!(f, ": {m}"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for WsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}
