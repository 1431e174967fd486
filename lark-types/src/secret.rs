use std::fmt;
use std::sync::Arc;

/// A secret string (app secret, access token, encrypt key, ticket) whose `Debug` and `Display`
/// never show its content. Cloning is cheap (shared).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretString(Arc<str>);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretString(Arc::from(secret.into()))
    }

    /// The secret itself. Call this only where the value goes on the wire.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString::new(s)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An app's identity: `app_id` (public) and `app_secret` (secret).
#[derive(Clone, PartialEq, Eq)]
pub struct AppCredentials {
    app_id: String,
    app_secret: SecretString,
}

impl AppCredentials {
    /// Credentials from the developer console.
    pub fn new(app_id: impl Into<String>, app_secret: impl Into<SecretString>) -> Self {
        AppCredentials { app_id: app_id.into(), app_secret: app_secret.into() }
    }

    /// The app id, e.g. `cli_a1b2c3d4e5f6a7b8`.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The app secret.
    pub fn app_secret(&self) -> &SecretString {
        &self.app_secret
    }
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("app_secret", &self.app_secret)
            .finish()
    }
}

/// Helpdesk credentials, sent as `X-Lark-Helpdesk-Authorization` on helpdesk APIs.
#[derive(Clone, PartialEq, Eq)]
pub struct HelpdeskCredentials {
    helpdesk_id: String,
    helpdesk_token: SecretString,
}

impl HelpdeskCredentials {
    /// Helpdesk id and token from the helpdesk admin console.
    pub fn new(helpdesk_id: impl Into<String>, helpdesk_token: impl Into<SecretString>) -> Self {
        HelpdeskCredentials { helpdesk_id: helpdesk_id.into(), helpdesk_token: helpdesk_token.into() }
    }

    /// The helpdesk id.
    pub fn helpdesk_id(&self) -> &str {
        &self.helpdesk_id
    }

    /// The helpdesk token.
    pub fn helpdesk_token(&self) -> &SecretString {
        &self.helpdesk_token
    }
}

impl fmt::Debug for HelpdeskCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelpdeskCredentials")
            .field("helpdesk_id", &self.helpdesk_id)
            .field("helpdesk_token", &self.helpdesk_token)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_secrets() {
        let creds = AppCredentials::new("cli_1", "very-secret-value");
        let shown = format!("{creds:?} {} {:?}", creds.app_secret(), creds.app_secret());
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("cli_1"));
        let hd = HelpdeskCredentials::new("hd_1", "hd-secret-token");
        assert!(!format!("{hd:?}").contains("hd-secret-token"));
    }
}
