use std::fmt;

/// Which deployment of the open platform an app talks to.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Domain {
    /// Feishu, in China: `https://open.feishu.cn`.
    #[default]
    Feishu,
    /// Lark, global: `https://open.larksuite.com`.
    Lark,
    /// Any other base URL: a proxy, a private deployment, or a test server such as lark-testkit.
    Custom(String),
}

impl Domain {
    /// Base URL without a trailing slash, e.g. `https://open.feishu.cn`.
    pub fn base_url(&self) -> &str {
        match self {
            Domain::Feishu => "https://open.feishu.cn",
            Domain::Lark => "https://open.larksuite.com",
            Domain::Custom(url) => url.trim_end_matches('/'),
        }
    }

    /// A custom base URL (trailing slashes are ignored).
    pub fn custom(url: impl Into<String>) -> Self {
        Domain::Custom(url.into())
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({})", self.base_url())
    }
}

/// The kind of app, which decides how tokens are obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AppType {
    /// A self-built (internal) app of one tenant: tokens come from app_id and app_secret.
    #[default]
    SelfBuilt,
    /// A marketplace (ISV) app installed by many tenants: the app token needs the app_ticket the
    /// platform pushes, and each tenant token is minted for a `tenant_key`.
    Marketplace,
}
