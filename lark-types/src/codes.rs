//! The platform's error codes that the SDK acts on, and their classes.

/// `tenant_access_token` invalid or expired.
pub const TENANT_ACCESS_TOKEN_INVALID: i64 = 99991663;
/// `app_access_token` invalid or expired.
pub const APP_ACCESS_TOKEN_INVALID: i64 = 99991664;
/// Access token invalid (any kind).
pub const ACCESS_TOKEN_INVALID: i64 = 99991671;
/// `user_access_token` invalid or expired: the caller must refresh it.
pub const USER_ACCESS_TOKEN_INVALID: i64 = 99991668;
/// No access token was sent.
pub const ACCESS_TOKEN_MISSING: i64 = 99991661;
/// Request frequency limit reached.
pub const RATE_LIMITED: i64 = 99991400;
/// Message API rate limit (per chat / per user).
pub const MESSAGE_RATE_LIMITED: i64 = 11232;
/// Message API rate limit (bot sending too fast).
pub const MESSAGE_RATE_LIMITED_BOT: i64 = 230020;
/// The app_ticket is invalid: ask the platform to resend it.
pub const APP_TICKET_INVALID: i64 = 10012;

/// What a code means for the SDK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// A token the SDK manages is invalid: drop it, fetch a new one, retry once.
    TokenInvalid,
    /// A rate limit: back off and retry.
    RateLimited,
    /// The app_ticket is invalid: request a resend.
    AppTicketInvalid,
    /// Success (`code == 0`).
    Ok,
    /// Any other business error: never retried.
    Other,
}

/// Classifies a reply code.
pub fn classify(code: i64) -> ErrorClass {
    match code {
        0 => ErrorClass::Ok,
        TENANT_ACCESS_TOKEN_INVALID | APP_ACCESS_TOKEN_INVALID | ACCESS_TOKEN_INVALID => {
            ErrorClass::TokenInvalid
        }
        RATE_LIMITED | MESSAGE_RATE_LIMITED | MESSAGE_RATE_LIMITED_BOT => ErrorClass::RateLimited,
        APP_TICKET_INVALID => ErrorClass::AppTicketInvalid,
        _ => ErrorClass::Other,
    }
}

/// Whether the code says a managed token is invalid (99991663, 99991664, 99991671).
pub fn is_token_invalid(code: i64) -> bool {
    classify(code) == ErrorClass::TokenInvalid
}

/// Whether the code is a rate limit (99991400, 11232, 230020).
pub fn is_rate_limited(code: i64) -> bool {
    classify(code) == ErrorClass::RateLimited
}

/// Whether the code says the app_ticket is invalid (10012).
pub fn is_app_ticket_invalid(code: i64) -> bool {
    classify(code) == ErrorClass::AppTicketInvalid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for c in [99991663, 99991664, 99991671] {
            assert!(is_token_invalid(c));
        }
        assert!(!is_token_invalid(99991668), "user tokens are the caller's to refresh");
        assert!(is_rate_limited(99991400));
        assert!(is_app_ticket_invalid(10012));
        assert_eq!(classify(0), ErrorClass::Ok);
        assert_eq!(classify(1254001), ErrorClass::Other);
    }
}
