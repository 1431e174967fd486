//! [`TokenManager`]: obtains, caches and refreshes app and tenant access tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderValue, Method};
use lark_transport::{decode_bytes, ApiRequest, HttpService};
use lark_types::{
    codes, AccessTokenType, ApiError, AppCredentials, AppType, AuthOptions, LarkError, SecretString,
    TokenError, TokenErrorKind,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::clock::{Clock, SystemClock};
use crate::store::{LockAttempt, MemoryStore, TokenStore};

const SELF_BUILT_APP_TOKEN: &str = "/open-apis/auth/v3/app_access_token/internal";
const SELF_BUILT_TENANT_TOKEN: &str = "/open-apis/auth/v3/tenant_access_token/internal";
const MARKETPLACE_APP_TOKEN: &str = "/open-apis/auth/v3/app_access_token";
const MARKETPLACE_TENANT_TOKEN: &str = "/open-apis/auth/v3/tenant_access_token";
const APP_TICKET_RESEND: &str = "/open-apis/auth/v3/app_ticket/resend";

/// How long an app_ticket is kept: the platform pushes a new one about every hour; official SDKs
/// keep one for 12 hours.
pub const APP_TICKET_TTL: Duration = Duration::from_secs(12 * 3600);

/// The store key of an app's app_ticket. The event side writes it there when the app_ticket
/// event arrives, so every instance sharing the store can mint marketplace tokens.
pub fn app_ticket_key(app_id: &str) -> String {
    format!("app_ticket:{app_id}")
}

/// Settings of a [`TokenManager`].
pub struct TokenManagerBuilder {
    credentials: AppCredentials,
    app_type: AppType,
    base_url: String,
    store: Option<Arc<dyn TokenStore>>,
    http: Option<HttpService>,
    refresh_margin: Duration,
    refresh_jitter: Duration,
    lock_ttl: Duration,
    resend_interval: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManagerBuilder")
            .field("credentials", &self.credentials)
            .field("app_type", &self.app_type)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl TokenManagerBuilder {
    /// Self-built or marketplace (default self-built).
    pub fn app_type(mut self, app_type: AppType) -> Self {
        self.app_type = app_type;
        self
    }

    /// Base URL of the platform (default `https://open.feishu.cn`).
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Where tokens and the app_ticket live (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The HTTP service used to call the token endpoints. It must not add authorization; it
    /// should carry timeouts and retries. Required.
    pub fn http(mut self, http: HttpService) -> Self {
        self.http = Some(http);
        self
    }

    /// Refresh this long before a token expires (default 3 min), plus up to
    /// [`refresh_jitter`](Self::refresh_jitter) so instances do not refresh together.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Random extra margin, per fetched token (default 30 s).
    pub fn refresh_jitter(mut self, jitter: Duration) -> Self {
        self.refresh_jitter = jitter;
        self
    }

    /// How long one instance may hold the cross-instance refresh lock (default 10 s).
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Minimum time between two app_ticket resend requests (default 30 s).
    pub fn resend_interval(mut self, interval: Duration) -> Self {
        self.resend_interval = interval;
        self
    }

    /// The clock for expiry (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the manager.
    pub fn build(self) -> Result<TokenManager, LarkError> {
        let http = self.http.ok_or_else(|| {
            lark_types::ConfigError::new("TokenManager needs an HTTP service: call .http(...)")
        })?;
        if self.credentials.app_id().is_empty() || self.credentials.app_secret().is_empty() {
            return Err(lark_types::ConfigError::new("app_id and app_secret must not be empty").into());
        }
        let fingerprint = {
            let mut h = Sha256::new();
            h.update(self.credentials.app_id().as_bytes());
            h.update([0u8]);
            h.update(self.credentials.app_secret().expose_secret().as_bytes());
            hex::encode(&h.finalize()[..8])
        };
        Ok(TokenManager {
            inner: Arc::new(Inner {
                credentials: self.credentials,
                app_type: self.app_type,
                base_url: self.base_url,
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                http,
                refresh_margin: self.refresh_margin,
                refresh_jitter: self.refresh_jitter,
                lock_ttl: self.lock_ttl,
                resend_interval: self.resend_interval,
                clock: self.clock,
                fingerprint,
                flights: Mutex::new(HashMap::new()),
                last_resend: Mutex::new(None),
                hot: std::sync::RwLock::new(Hot::default()),
            }),
        })
    }
}

struct Inner {
    credentials: AppCredentials,
    app_type: AppType,
    base_url: String,
    store: Arc<dyn TokenStore>,
    http: HttpService,
    refresh_margin: Duration,
    refresh_jitter: Duration,
    lock_ttl: Duration,
    resend_interval: Duration,
    clock: Arc<dyn Clock>,
    fingerprint: String,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    last_resend: Mutex<Option<tokio::time::Instant>>,
    hot: std::sync::RwLock<Hot>,
}

/// Most tenants an instance keeps in its in-process token cache before starting over.
const HOT_TENANTS_MAX: usize = 50_000;

/// In-process copies of tokens in use, with their ready `Authorization` values, so a call with a
/// cached token touches neither the store nor the allocator much. Entries are valid until their
/// refresh time; the store stays the source of truth.
#[derive(Default)]
struct Hot {
    app: Option<AccessToken>,
    tenant: Option<AccessToken>,
    tenants: HashMap<String, AccessToken>,
}

impl Hot {
    fn slot(&mut self, kind: AccessTokenType, tenant: Option<&str>) -> Option<&mut Option<AccessToken>> {
        match (kind, tenant) {
            (AccessTokenType::App, _) => Some(&mut self.app),
            (AccessTokenType::Tenant, None) => Some(&mut self.tenant),
            _ => None,
        }
    }

    fn get(&self, kind: AccessTokenType, tenant: Option<&str>) -> Option<&AccessToken> {
        match (kind, tenant) {
            (AccessTokenType::App, _) => self.app.as_ref(),
            (AccessTokenType::Tenant, None) => self.tenant.as_ref(),
            (AccessTokenType::Tenant, Some(t)) => self.tenants.get(t),
            _ => None,
        }
    }

    fn put(&mut self, kind: AccessTokenType, tenant: Option<&str>, token: AccessToken) {
        if let Some(slot) = self.slot(kind, tenant) {
            *slot = Some(token);
        } else if let Some(t) = tenant {
            if self.tenants.len() >= HOT_TENANTS_MAX {
                self.tenants.clear();
            }
            self.tenants.insert(t.to_owned(), token);
        }
    }

    fn remove_if(&mut self, kind: AccessTokenType, tenant: Option<&str>, token: &SecretString) {
        if let Some(slot) = self.slot(kind, tenant) {
            if slot.as_ref().is_some_and(|t| &t.token == token) {
                *slot = None;
            }
        } else if let Some(t) = tenant {
            if self.tenants.get(t).is_some_and(|e| &e.token == token) {
                self.tenants.remove(t);
            }
        }
    }
}

/// An access token with its ready `Authorization: Bearer …` header value (marked sensitive).
#[derive(Clone)]
pub struct AccessToken {
    token: SecretString,
    header: HeaderValue,
    refresh_at_ms: u64,
}

impl AccessToken {
    fn new(token: SecretString, refresh_at_ms: u64) -> Result<Self, LarkError> {
        let mut header =
            HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
                TokenError::new(TokenErrorKind::Unreachable)
                    .with_source("the token contains characters not allowed in a header")
            })?;
        header.set_sensitive(true);
        Ok(AccessToken { token, header, refresh_at_ms })
    }

    /// The token.
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// `Bearer <token>`, ready for the `Authorization` header.
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").field("token", &self.token).finish_non_exhaustive()
    }
}

/// Obtains, caches and refreshes the app's access tokens.
///
/// - Self-built apps: app and tenant tokens from app_id and app_secret.
/// - Marketplace apps: the app token from the app_ticket in the store (a resend is requested when
///   it is missing or rejected), tenant tokens per `tenant_key` from the app token.
/// - Cache keys hold the app_id, a fingerprint of the secret, the token kind and the tenant_key,
///   so apps, secrets and tenants never share a token.
/// - Tokens are refreshed before they expire (margin plus jitter); a failed refresh keeps using a
///   token that has not expired yet.
/// - Single-flight per key: concurrent misses in one process cause one fetch; across instances
///   sharing a store, a store lock makes one instance fetch while the others wait for its result.
///
/// Cheap to clone; clones share state.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("app_id", &self.inner.credentials.app_id())
            .field("app_type", &self.inner.app_type)
            .field("base_url", &self.inner.base_url)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// A cached token as stored: `refresh_at_ms:expires_at_ms:token`.
struct Cached {
    refresh_at_ms: u64,
    expires_at_ms: u64,
    token: String,
}

impl Cached {
    fn parse(raw: &str) -> Option<Cached> {
        let mut it = raw.splitn(3, ':');
        let refresh_at_ms = it.next()?.parse().ok()?;
        let expires_at_ms = it.next()?.parse().ok()?;
        let token = it.next()?.to_owned();
        Some(Cached { refresh_at_ms, expires_at_ms, token })
    }

    fn encode(&self) -> String {
        format!("{}:{}:{}", self.refresh_at_ms, self.expires_at_ms, self.token)
    }
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    tenant_access_token: Option<String>,
    #[serde(default)]
    app_access_token: Option<String>,
    #[serde(default)]
    expire: Option<u64>,
}

impl TokenManager {
    /// Starts building a manager for an app.
    pub fn builder(app_id: impl Into<String>, app_secret: impl Into<SecretString>) -> TokenManagerBuilder {
        TokenManagerBuilder {
            credentials: AppCredentials::new(app_id, app_secret),
            app_type: AppType::SelfBuilt,
            base_url: lark_types::Domain::Feishu.base_url().to_owned(),
            store: None,
            http: None,
            refresh_margin: Duration::from_secs(180),
            refresh_jitter: Duration::from_secs(30),
            lock_ttl: Duration::from_secs(10),
            resend_interval: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }

    /// The app id.
    pub fn app_id(&self) -> &str {
        self.inner.credentials.app_id()
    }

    /// The app type.
    pub fn app_type(&self) -> AppType {
        self.inner.app_type
    }

    /// The token store.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    /// The cache key of a token: app_id, secret fingerprint, kind and tenant.
    pub fn cache_key(&self, kind: AccessTokenType, tenant_key: Option<&str>) -> String {
        format!(
            "token:{}:{}:{}:{}",
            self.app_id(),
            self.inner.fingerprint,
            kind.as_str(),
            tenant_key.unwrap_or("-")
        )
    }

    fn tenant_for<'k>(
        &self,
        kind: AccessTokenType,
        tenant_key: Option<&'k str>,
    ) -> Result<Option<&'k str>, TokenError> {
        match (kind, self.inner.app_type) {
            (AccessTokenType::Tenant, AppType::Marketplace) => match tenant_key {
                Some(k) if !k.is_empty() => Ok(Some(k)),
                _ => Err(TokenError::new(TokenErrorKind::TenantKeyRequired)),
            },
            (AccessTokenType::User, _) => Err(TokenError::new(TokenErrorKind::UserTokenRequired)),
            _ => Ok(None),
        }
    }

    /// A tenant access token. Marketplace apps must name the tenant; self-built apps ignore it.
    pub async fn tenant_access_token(&self, tenant_key: Option<&str>) -> Result<SecretString, LarkError> {
        self.token(AccessTokenType::Tenant, tenant_key).await
    }

    /// The app access token.
    pub async fn app_access_token(&self) -> Result<SecretString, LarkError> {
        self.token(AccessTokenType::App, None).await
    }

    /// A managed token of `kind` (tenant or app).
    pub async fn token(
        &self,
        kind: AccessTokenType,
        tenant_key: Option<&str>,
    ) -> Result<SecretString, LarkError> {
        Ok(self.access_token(kind, tenant_key).await?.token)
    }

    /// The token of `kind` this process already holds, if it is not yet due for refresh.
    /// No I/O and no waiting: `None` means [`access_token`](Self::access_token) has work to do
    /// (read the store, fetch, or report an error such as a missing tenant key).
    pub fn cached_access_token(
        &self,
        kind: AccessTokenType,
        tenant_key: Option<&str>,
    ) -> Option<AccessToken> {
        let tenant = self.tenant_for(kind, tenant_key).ok()?;
        self.hot_token(kind, tenant, self.inner.clock.now_unix_ms())
    }

    fn hot_token(&self, kind: AccessTokenType, tenant: Option<&str>, now: u64) -> Option<AccessToken> {
        let hot = self.inner.hot.read().unwrap_or_else(|e| e.into_inner());
        hot.get(kind, tenant).filter(|t| now < t.refresh_at_ms).cloned()
    }

    /// A managed token of `kind` with its ready `Authorization` header value.
    pub async fn access_token(
        &self,
        kind: AccessTokenType,
        tenant_key: Option<&str>,
    ) -> Result<AccessToken, LarkError> {
        let tenant = self.tenant_for(kind, tenant_key)?;
        let now = self.inner.clock.now_unix_ms();
        if let Some(t) = self.hot_token(kind, tenant, now) {
            return Ok(t);
        }
        let key = self.cache_key(kind, tenant);
        let (token, refresh_at_ms) = match self.read(&key).await? {
            Some(c) if now < c.refresh_at_ms => (SecretString::new(c.token), c.refresh_at_ms),
            _ => self.refresh(kind, tenant, &key).await?,
        };
        let token = AccessToken::new(token, refresh_at_ms)?;
        self.inner.hot.write().unwrap_or_else(|e| e.into_inner()).put(kind, tenant, token.clone());
        Ok(token)
    }

    /// Drops a cached token, but only if it is still `token` (so a token another caller just
    /// refreshed is kept). Called when the platform says the token is invalid.
    pub async fn invalidate(
        &self,
        kind: AccessTokenType,
        tenant_key: Option<&str>,
        token: &SecretString,
    ) -> Result<(), LarkError> {
        let tenant = match self.tenant_for(kind, tenant_key) {
            Ok(t) => t,
            Err(_) => return Ok(()),
        };
        self.inner.hot.write().unwrap_or_else(|e| e.into_inner()).remove_if(kind, tenant, token);
        let key = self.cache_key(kind, tenant);
        if let Some(c) = self.read(&key).await? {
            if c.token == token.expose_secret() {
                self.inner.store.delete(&key).await?;
                tracing::debug!(kind = kind.as_str(), "dropped an invalid cached token");
            }
        }
        Ok(())
    }

    /// Stores the app_ticket pushed by the platform (marketplace apps). The event side calls this
    /// when the app_ticket event arrives.
    pub async fn set_app_ticket(&self, app_ticket: &str) -> Result<(), LarkError> {
        self.inner.store.set(&app_ticket_key(self.app_id()), app_ticket, APP_TICKET_TTL).await?;
        Ok(())
    }

    /// The stored app_ticket, if any.
    pub async fn app_ticket(&self) -> Result<Option<SecretString>, LarkError> {
        Ok(self.inner.store.get(&app_ticket_key(self.app_id())).await?.map(SecretString::new))
    }

    /// Asks the platform to push the app_ticket again (rate-limited to one request per resend
    /// interval). Returns whether a request was sent.
    pub async fn request_app_ticket_resend(&self) -> Result<bool, LarkError> {
        {
            let mut last = self.inner.last_resend.lock().unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            if let Some(at) = *last {
                if now.duration_since(at) < self.inner.resend_interval {
                    return Ok(false);
                }
            }
            *last = Some(now);
        }
        let body = serde_json::json!({
            "app_id": self.app_id(),
            "app_secret": self.inner.credentials.app_secret().expose_secret(),
        });
        let reply = self.post(APP_TICKET_RESEND, &body).await?;
        if reply.code != 0 {
            return Err(TokenError::fetch(ApiError::new(reply.code, reply.msg, 200)).into());
        }
        tracing::info!(app_id = self.app_id(), "requested an app_ticket resend");
        Ok(true)
    }

    async fn read(&self, key: &str) -> Result<Option<Cached>, LarkError> {
        Ok(self.inner.store.get(key).await?.as_deref().and_then(Cached::parse))
    }

    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.inner.flights.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_owned()).or_default().clone()
    }

    fn end_flight(&self, key: &str, flight: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.inner.flights.lock().unwrap_or_else(|e| e.into_inner());
        drop(flight);
        if map.get(key).is_some_and(|f| Arc::strong_count(f) == 1) {
            map.remove(key);
        }
    }

    async fn refresh(
        &self,
        kind: AccessTokenType,
        tenant: Option<&str>,
        key: &str,
    ) -> Result<(SecretString, u64), LarkError> {
        let flight = self.flight(key);
        let result = {
            let _guard = flight.lock().await;
            self.refresh_locked(kind, tenant, key).await
        };
        self.end_flight(key, flight);
        result
    }

    /// Runs with the in-process flight lock held.
    async fn refresh_locked(
        &self,
        kind: AccessTokenType,
        tenant: Option<&str>,
        key: &str,
    ) -> Result<(SecretString, u64), LarkError> {
        let stale = self.read(key).await?;
        if let Some(c) = &stale {
            if self.inner.clock.now_unix_ms() < c.refresh_at_ms {
                return Ok((SecretString::new(c.token.clone()), c.refresh_at_ms));
            }
        }
        let lock_key = format!("lock:{key}");
        let deadline = tokio::time::Instant::now() + self.inner.lock_ttl;
        let mut wait = Duration::from_millis(10);
        loop {
            match self.inner.store.try_lock(&lock_key, self.inner.lock_ttl).await? {
                LockAttempt::Acquired(lock) => {
                    let result = self.fetch_holding_lock(kind, tenant, key, stale).await;
                    if let Err(e) = self.inner.store.unlock(&lock_key, &lock).await {
                        tracing::warn!(error = %e, "could not release the token refresh lock; it expires by itself");
                    }
                    return result;
                }
                LockAttempt::Held => {
                    // Another instance is refreshing: wait for its result, bounded by the lock TTL.
                    if tokio::time::Instant::now() >= deadline {
                        tracing::warn!("token refresh lock held too long; fetching without it");
                        return self.fetch_and_store(kind, tenant, key, stale).await;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(200));
                    if let Some(c) = self.read(key).await? {
                        if self.inner.clock.now_unix_ms() < c.refresh_at_ms {
                            return Ok((SecretString::new(c.token), c.refresh_at_ms));
                        }
                    }
                }
            }
        }
    }

    async fn fetch_holding_lock(
        &self,
        kind: AccessTokenType,
        tenant: Option<&str>,
        key: &str,
        stale: Option<Cached>,
    ) -> Result<(SecretString, u64), LarkError> {
        // Another instance may have stored a fresh token between our read and our lock.
        if let Some(c) = self.read(key).await? {
            if self.inner.clock.now_unix_ms() < c.refresh_at_ms {
                return Ok((SecretString::new(c.token), c.refresh_at_ms));
            }
        }
        self.fetch_and_store(kind, tenant, key, stale).await
    }

    async fn fetch_and_store(
        &self,
        kind: AccessTokenType,
        tenant: Option<&str>,
        key: &str,
        stale: Option<Cached>,
    ) -> Result<(SecretString, u64), LarkError> {
        let fetched = match self.fetch(kind, tenant).await {
            Ok(f) => f,
            Err(e) => {
                let now = self.inner.clock.now_unix_ms();
                if let Some(c) = stale.filter(|c| now < c.expires_at_ms) {
                    tracing::warn!(error = %e, "token refresh failed; using the cached token until it expires");
                    // Try again on the next call rather than waiting for the next refresh time.
                    return Ok((SecretString::new(c.token), now));
                }
                return Err(e);
            }
        };
        let (token, expire) = fetched;
        let now = self.inner.clock.now_unix_ms();
        let lifetime_ms = expire.as_millis() as u64;
        let jitter_ms = fastrand::u64(0..=self.inner.refresh_jitter.as_millis() as u64);
        let margin_ms = (self.inner.refresh_margin.as_millis() as u64 + jitter_ms).min(lifetime_ms / 2);
        let cached =
            Cached { refresh_at_ms: now + lifetime_ms - margin_ms, expires_at_ms: now + lifetime_ms, token };
        if lifetime_ms > 0 {
            self.inner.store.set(key, &cached.encode(), expire).await?;
        }
        tracing::debug!(kind = kind.as_str(), expire_s = expire.as_secs(), "fetched an access token");
        Ok((SecretString::new(cached.token), cached.refresh_at_ms))
    }

    async fn fetch(
        &self,
        kind: AccessTokenType,
        tenant: Option<&str>,
    ) -> Result<(String, Duration), LarkError> {
        let creds = &self.inner.credentials;
        match (self.inner.app_type, kind) {
            (AppType::Marketplace, AccessTokenType::Tenant) => {
                let tenant_key = tenant.ok_or_else(|| TokenError::new(TokenErrorKind::TenantKeyRequired))?;
                let app_token = Box::pin(self.app_access_token()).await?;
                let mut reply = self.post_tenant_token(&app_token, tenant_key).await?;
                if codes::is_token_invalid(reply.code) {
                    // The app token was revoked early: drop it and try once with a fresh one.
                    self.invalidate(AccessTokenType::App, None, &app_token).await?;
                    let app_token = Box::pin(self.app_access_token()).await?;
                    reply = self.post_tenant_token(&app_token, tenant_key).await?;
                }
                token_from(reply, AccessTokenType::Tenant)
            }
            (AppType::Marketplace, _) => {
                let Some(ticket) = self.app_ticket().await? else {
                    self.resend_quietly().await;
                    return Err(TokenError::new(TokenErrorKind::AppTicketMissing).into());
                };
                let body = serde_json::json!({
                    "app_id": creds.app_id(),
                    "app_secret": creds.app_secret().expose_secret(),
                    "app_ticket": ticket.expose_secret(),
                });
                let reply = self.post(MARKETPLACE_APP_TOKEN, &body).await?;
                if codes::is_app_ticket_invalid(reply.code) {
                    let api = ApiError::new(reply.code, reply.msg, 200);
                    let key = app_ticket_key(self.app_id());
                    if self.inner.store.get(&key).await?.as_deref() == Some(ticket.expose_secret()) {
                        self.inner.store.delete(&key).await?;
                    }
                    self.resend_quietly().await;
                    return Err(TokenError::new(TokenErrorKind::AppTicketInvalid).with_api(api).into());
                }
                token_from(reply, AccessTokenType::App)
            }
            (_, kind) => {
                let path =
                    if kind == AccessTokenType::App { SELF_BUILT_APP_TOKEN } else { SELF_BUILT_TENANT_TOKEN };
                let body = serde_json::json!({
                    "app_id": creds.app_id(),
                    "app_secret": creds.app_secret().expose_secret(),
                });
                token_from(self.post(path, &body).await?, kind)
            }
        }
    }

    async fn post_tenant_token(
        &self,
        app_token: &SecretString,
        tenant_key: &str,
    ) -> Result<TokenReply, LarkError> {
        let body = serde_json::json!({
            "app_access_token": app_token.expose_secret(),
            "tenant_key": tenant_key,
        });
        self.post(MARKETPLACE_TENANT_TOKEN, &body).await
    }

    async fn resend_quietly(&self) {
        if let Err(e) = self.request_app_ticket_resend().await {
            tracing::warn!(error = %e, "app_ticket resend request failed");
        }
    }

    async fn post(&self, path: &'static str, body: &serde_json::Value) -> Result<TokenReply, LarkError> {
        let req = ApiRequest::new(Method::POST, path)
            .json(body)
            .auth(AuthOptions::none())
            .build(&self.inner.base_url)?;
        let resp = self
            .inner
            .http
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| unreachable_error(LarkError::from_boxed(e)))?;
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect_limited(1 << 20)
            .await
            .map_err(|e| TokenError::new(TokenErrorKind::Unreachable).with_source(e))?;
        match serde_json::from_slice::<TokenReply>(&bytes) {
            Ok(reply) => Ok(reply),
            Err(_) => {
                // Not a token reply: report what the platform said, without echoing the body.
                let err = decode_bytes::<serde_json::Value>(&bytes, parts.status.as_u16(), &parts.headers)
                    .err()
                    .unwrap_or_else(|| {
                        lark_types::DecodeError::new(parts.status.as_u16(), "not a token reply").into()
                    });
                Err(unreachable_error(err))
            }
        }
    }
}

fn unreachable_error(e: LarkError) -> LarkError {
    match e {
        LarkError::Token(t) => LarkError::Token(t),
        LarkError::Api(api) => TokenError::fetch(*api).into(),
        other => TokenError::new(TokenErrorKind::Unreachable).with_source(other).into(),
    }
}

fn token_from(reply: TokenReply, kind: AccessTokenType) -> Result<(String, Duration), LarkError> {
    if reply.code != 0 {
        return Err(TokenError::fetch(ApiError::new(reply.code, reply.msg, 200)).into());
    }
    let token = match kind {
        AccessTokenType::App => reply.app_access_token,
        _ => reply.tenant_access_token,
    };
    match (token, reply.expire) {
        (Some(t), Some(expire)) if !t.is_empty() => Ok((t, Duration::from_secs(expire))),
        _ => Err(TokenError::new(TokenErrorKind::Unreachable)
            .with_source("the token reply has no token or no `expire`")
            .into()),
    }
}
