//! Settings shared by the webhook examples, read from the environment as in DESIGN.md.

use std::net::SocketAddr;

/// Where the examples serve by default.
const DEFAULT_LISTEN: &str = "127.0.0.1:8089";

/// The examples' settings.
pub(crate) struct Config {
    /// `LARK_APP_ID` and `LARK_APP_SECRET`; `None` runs against lark-testkit.
    pub(crate) app: Option<(String, String)>,
    /// `LARK_BASE_URL`: overrides the domain.
    pub(crate) base_url: Option<String>,
    /// `LARK_ENCRYPT_KEY`.
    pub(crate) encrypt_key: Option<String>,
    /// `LARK_VERIFICATION_TOKEN`.
    pub(crate) verification_token: Option<String>,
    /// `LARK_LISTEN`: the address to serve on.
    pub(crate) listen: SocketAddr,
}

/// An environment variable, `None` when unset or empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// Reads the settings; the error names the variable to fix.
    pub(crate) fn from_env() -> Result<Config, String> {
        let app = match (var("LARK_APP_ID"), var("LARK_APP_SECRET")) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => return Err("set both LARK_APP_ID and LARK_APP_SECRET, or neither".into()),
        };
        let listen = var("LARK_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen
            .parse()
            .map_err(|_| format!("LARK_LISTEN `{listen}` is not an address like {DEFAULT_LISTEN}"))?;
        Ok(Config {
            app,
            base_url: var("LARK_BASE_URL"),
            encrypt_key: var("LARK_ENCRYPT_KEY"),
            verification_token: var("LARK_VERIFICATION_TOKEN"),
            listen,
        })
    }

    /// A dispatcher builder with the Encrypt Key and verification token, when set.
    pub(crate) fn dispatcher(&self) -> lark_events::EventDispatcherBuilder {
        let mut builder = lark_events::EventDispatcher::builder();
        if let Some(key) = &self.encrypt_key {
            builder = builder.encrypt_key(key.as_str());
        }
        if let Some(token) = &self.verification_token {
            builder = builder.verification_token(token.as_str());
        }
        builder
    }

    /// The client of the fake platform, or of the real one with `LARK_APP_ID`.
    pub(crate) fn client(
        &self,
        platform: Option<&lark_testkit::FakePlatform>,
    ) -> Result<lark_services::Client, Box<dyn std::error::Error>> {
        if let Some(p) = platform {
            return Ok(lark_services::Client::builder(p.app_id(), p.app_secret())
                .base_url(p.base_url())
                .build()?);
        }
        let (id, secret) = self.app.as_ref().ok_or("LARK_APP_ID and LARK_APP_SECRET are not set")?;
        let mut builder = lark_services::Client::builder(id.as_str(), secret.as_str());
        if let Some(url) = &self.base_url {
            builder = builder.base_url(url.as_str());
        }
        Ok(builder.build()?)
    }

    /// The signer lark-testkit pushes with: the same Encrypt Key and token as the bot.
    pub(crate) fn signer(&self) -> lark_testkit::events::EventSigner {
        let mut signer = lark_testkit::events::EventSigner::new();
        if let Some(key) = &self.encrypt_key {
            signer = signer.encrypt_key(key.as_str());
        }
        if let Some(token) = &self.verification_token {
            signer = signer.verification_token(token.as_str());
        }
        signer
    }

    /// Fills in an Encrypt Key and token for the loop against lark-testkit, when unset, so
    /// that it runs the full crypto path.
    pub(crate) fn with_test_secrets(mut self) -> Config {
        self.encrypt_key.get_or_insert_with(|| "testkit-encrypt-key".to_owned());
        self.verification_token.get_or_insert_with(|| "testkit-verification-token".to_owned());
        self
    }
}

/// Prints an error and its causes.
pub(crate) fn report(what: &str, e: &(dyn std::error::Error + 'static)) {
    eprintln!("{what}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
}
