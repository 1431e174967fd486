use crate::SecretString;

/// One kind of access token the platform issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AccessTokenType {
    /// `tenant_access_token`: acts as the app inside one tenant.
    Tenant,
    /// `user_access_token`: acts as a signed-in user (obtained through OAuth by the caller).
    User,
    /// `app_access_token`: acts as the app itself.
    App,
}

impl AccessTokenType {
    /// The platform's name for the token kind (`tenant`, `user`, `app`).
    pub fn as_str(self) -> &'static str {
        match self {
            AccessTokenType::Tenant => "tenant",
            AccessTokenType::User => "user",
            AccessTokenType::App => "app",
        }
    }

    fn bit(self) -> u8 {
        match self {
            AccessTokenType::Tenant => 1,
            AccessTokenType::User => 2,
            AccessTokenType::App => 4,
        }
    }
}

/// A set of [`AccessTokenType`]s: the tokens an API accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct AccessTokenTypes(u8);

impl AccessTokenTypes {
    /// No token: the call is sent without `Authorization` (e.g. the token endpoints themselves).
    pub const NONE: AccessTokenTypes = AccessTokenTypes(0);
    /// Tenant token only.
    pub const TENANT: AccessTokenTypes = AccessTokenTypes(1);
    /// User token only.
    pub const USER: AccessTokenTypes = AccessTokenTypes(2);
    /// App token only.
    pub const APP: AccessTokenTypes = AccessTokenTypes(4);
    /// Tenant or user token: the default for APIs whose token types are not known.
    pub const TENANT_OR_USER: AccessTokenTypes = AccessTokenTypes(3);

    /// Builds a set from token types.
    pub fn from_types(types: &[AccessTokenType]) -> Self {
        AccessTokenTypes(types.iter().fold(0, |acc, t| acc | t.bit()))
    }

    /// Adds a token type.
    #[must_use]
    pub fn with(self, t: AccessTokenType) -> Self {
        AccessTokenTypes(self.0 | t.bit())
    }

    /// Whether the set contains `t`.
    pub fn contains(self, t: AccessTokenType) -> bool {
        self.0 & t.bit() != 0
    }

    /// Whether the set is empty (no token is needed).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The token types in the set, in the order tenant, user, app.
    pub fn iter(self) -> impl Iterator<Item = AccessTokenType> {
        [AccessTokenType::Tenant, AccessTokenType::User, AccessTokenType::App]
            .into_iter()
            .filter(move |t| self.contains(*t))
    }
}

/// What a request needs and what its caller supplied for authorization.
///
/// Travels as an `http::Request` extension from the request builder to the auth layer, which
/// picks the token per attempt:
/// 1. an explicit [`access_token`](Self::access_token) is sent as given;
/// 2. a [`user_access_token`](Self::user_access_token) is sent when the API accepts user tokens;
/// 3. otherwise a tenant token (for `tenant_key` on marketplace apps) when accepted;
/// 4. otherwise an app token when accepted.
///
/// A request with no `AuthOptions` extension is treated as accepting a tenant token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthOptions {
    /// Token types the API accepts. Empty means: send no token.
    pub accepted: AccessTokenTypes,
    /// Tenant to act for (marketplace apps must name one for tenant tokens).
    pub tenant_key: Option<String>,
    /// A user access token obtained by the caller (OAuth).
    pub user_access_token: Option<SecretString>,
    /// A token to send as is, bypassing the token manager.
    pub access_token: Option<SecretString>,
}

impl AuthOptions {
    /// Options for an API that accepts the given token types.
    pub fn accepting(accepted: AccessTokenTypes) -> Self {
        AuthOptions { accepted, ..AuthOptions::default() }
    }

    /// Options for a call that carries no token.
    pub fn none() -> Self {
        AuthOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_type_sets() {
        let s = AccessTokenTypes::from_types(&[AccessTokenType::User, AccessTokenType::App]);
        assert!(s.contains(AccessTokenType::User));
        assert!(s.contains(AccessTokenType::App));
        assert!(!s.contains(AccessTokenType::Tenant));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![AccessTokenType::User, AccessTokenType::App]);
        assert!(AccessTokenTypes::NONE.is_empty());
        assert_eq!(AccessTokenTypes::TENANT.with(AccessTokenType::User), AccessTokenTypes::TENANT_OR_USER);
    }
}
