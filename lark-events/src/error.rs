//! [`EventError`]: why a delivery was refused or failed, and the HTTP status it maps to.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::StatusCode;
use lark_types::BoxError;

/// What went wrong with a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventErrorKind {
    /// The body is larger than the configured limit: HTTP 413.
    BodyTooLarge,
    /// The body is not a delivery the platform sends (not JSON, wrong shape, undecryptable,
    /// an event body that does not match its typed model): HTTP 400.
    Malformed,
    /// The signature is missing where one is required, or does not match: HTTP 401.
    BadSignature,
    /// The verification token does not match: HTTP 401.
    BadToken,
    /// The request timestamp is missing or outside the replay window: HTTP 401.
    Stale,
    /// A handler returned an error: HTTP 500, so the platform delivers the event again.
    Handler,
    /// The token store failed (dedup mark or app_ticket): HTTP 503, so the platform retries.
    Store,
}

impl EventErrorKind {
    /// The HTTP status this kind is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            EventErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            EventErrorKind::Malformed => StatusCode::BAD_REQUEST,
            EventErrorKind::BadSignature | EventErrorKind::BadToken | EventErrorKind::Stale => {
                StatusCode::UNAUTHORIZED
            }
            EventErrorKind::Handler => StatusCode::INTERNAL_SERVER_ERROR,
            EventErrorKind::Store => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short description, also the `msg` of the HTTP reply. Shows no input and no secret.
    pub fn as_str(self) -> &'static str {
        match self {
            EventErrorKind::BodyTooLarge => "body too large",
            EventErrorKind::Malformed => "malformed delivery",
            EventErrorKind::BadSignature => "bad signature",
            EventErrorKind::BadToken => "bad verification token",
            EventErrorKind::Stale => "request timestamp outside the replay window",
            EventErrorKind::Handler => "handler failed",
            EventErrorKind::Store => "token store failed",
        }
    }
}

/// A delivery was refused (bad input) or failed (handler, store).
///
/// `Display` is short and never shows a secret or the body; the cause, if any, is in
/// [`source`](std::error::Error::source) (a handler's own error, a crypto or JSON error).
#[derive(Debug)]
pub struct EventError {
    kind: EventErrorKind,
    detail: Option<Cow<'static, str>>,
    source: Option<BoxError>,
}

impl EventError {
    /// An error of `kind`.
    pub fn new(kind: EventErrorKind) -> Self {
        EventError { kind, detail: None, source: None }
    }

    pub(crate) fn malformed(detail: impl Into<Cow<'static, str>>) -> Self {
        EventError::new(EventErrorKind::Malformed).with_detail(detail)
    }

    /// Adds a short explanation shown after the kind (must not contain secrets or input).
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Attaches the cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> EventErrorKind {
        self.kind
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The JSON body to answer with: `{"msg":"<kind>"}` (no detail, no cause).
    pub fn body(&self) -> Bytes {
        Bytes::from(format!("{{\"msg\":\"{}\"}}", self.kind.as_str()))
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EventError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let cases = [
            (EventErrorKind::BodyTooLarge, 413),
            (EventErrorKind::Malformed, 400),
            (EventErrorKind::BadSignature, 401),
            (EventErrorKind::BadToken, 401),
            (EventErrorKind::Stale, 401),
            (EventErrorKind::Handler, 500),
            (EventErrorKind::Store, 503),
        ];
        for (kind, status) in cases {
            let e = EventError::new(kind).with_detail("why");
            assert_eq!(e.status().as_u16(), status);
            let body: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
            assert_eq!(body["msg"], kind.as_str());
            assert_eq!(e.to_string(), format!("{}: why", kind.as_str()));
        }
    }
}
