//! Pure data types shared by every lark-rs crate: no IO lives here.
//!
//! - [`Domain`] and [`AppType`] say which platform and which kind of app.
//! - [`AppCredentials`] and [`SecretString`] hold secrets whose `Debug` shows nothing.
//! - [`AccessTokenType`], [`AccessTokenTypes`] and [`AuthOptions`] say which tokens a call
//!   accepts and what the caller supplied; [`AuthOptions`] travels as an `http::Request` extension.
//! - [`ApiReply`] is the `{code, msg, data}` envelope; [`LarkError`] and [`ApiError`] are the
//!   errors, by phase; [`codes`] classifies the platform's error codes.

mod auth;
pub mod codes;
mod domain;
mod envelope;
mod error;
mod secret;
pub mod serde_helpers;

pub use auth::{AccessTokenType, AccessTokenTypes, AuthOptions};
pub use domain::{AppType, Domain};
pub use envelope::{ApiReply, ErrorBody, ErrorDetail, FieldViolation, Help, PermissionViolation};
pub use error::{
    ApiError, BoxError, ConfigError, DecodeError, LarkError, TimeoutError, TimeoutKind, TokenError,
    TokenErrorKind, TransportError, TransportErrorKind,
};
pub use secret::{AppCredentials, HelpdeskCredentials, SecretString};

/// Name of the response header carrying the platform's log id for a call.
pub const LOG_ID_HEADER: &str = "x-tt-logid";
/// Fallback request id header, used when [`LOG_ID_HEADER`] is absent.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Response header giving the seconds until a rate limit resets.
pub const RATE_LIMIT_RESET_HEADER: &str = "x-ogw-ratelimit-reset";
/// Request header for helpdesk APIs: `base64(helpdesk_id:helpdesk_token)`.
pub const HELPDESK_AUTH_HEADER: &str = "x-lark-helpdesk-authorization";

/// Reads the platform's log id from response headers (`X-Tt-Logid`, falling back to `X-Request-Id`).
pub fn log_id_from_headers(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(LOG_ID_HEADER)
        .or_else(|| headers.get(REQUEST_ID_HEADER))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
