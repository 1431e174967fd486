//! [`Client`]: owns the tower stack and the token manager; sends raw and typed requests.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::header::{HeaderName, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method};
use lark_auth::{Clock, LarkAuthLayer, LarkAuthService, MemoryStore, TokenManager, TokenStore};
use lark_transport::{
    decode_reply, ApiRequest, BaseUrl, Body, CallPolicy, CallPolicyLayer, Download, HttpClient, HttpService,
    Multipart, RetryPolicy, DEFAULT_JSON_LIMIT,
};
use lark_types::{
    AccessTokenTypes, AppType, BoxError, ConfigError, Domain, HelpdeskCredentials, LarkError, SecretString,
    HELPDESK_AUTH_HEADER,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder};

const SDK_USER_AGENT: &str = concat!("lark-rs/", env!("CARGO_PKG_VERSION"));

/// Settings of a [`Client`]; see [`Client::builder`].
pub struct ClientBuilder {
    app_id: String,
    app_secret: SecretString,
    domain: Domain,
    app_type: AppType,
    store: Option<Arc<dyn TokenStore>>,
    timeout: Duration,
    attempt_timeout: Duration,
    retry: RetryPolicy,
    default_headers: HeaderMap,
    helpdesk: Option<HelpdeskCredentials>,
    http: Option<HttpService>,
    http_client: Option<HttpClient>,
    refresh_margin: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    json_limit: usize,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("app_id", &self.app_id)
            .field("app_secret", &self.app_secret)
            .field("domain", &self.domain)
            .field("app_type", &self.app_type)
            .field("timeout", &self.timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("helpdesk", &self.helpdesk)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Feishu (default), Lark, or a custom base URL.
    pub fn domain(mut self, domain: Domain) -> Self {
        self.domain = domain;
        self
    }

    /// A custom base URL, e.g. a proxy or `lark-testkit` (same as `domain(Domain::custom(url))`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.domain = Domain::custom(url);
        self
    }

    /// Self-built (default) or marketplace.
    pub fn app_type(mut self, app_type: AppType) -> Self {
        self.app_type = app_type;
        self
    }

    /// Shorthand for `app_type(AppType::Marketplace)`.
    pub fn marketplace(self) -> Self {
        self.app_type(AppType::Marketplace)
    }

    /// Where tokens and the app_ticket are kept (default: an in-process [`MemoryStore`]).
    /// Share one Redis store between instances of a marketplace app.
    pub fn token_store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Same as [`token_store`](Self::token_store) for a store that is already shared.
    pub fn token_store_arc(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Total time for a call, retries and waits included (default 90 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Time for one attempt (default 30 s).
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]; [`RetryPolicy::none`] disables retries).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// A header sent on every request (unless the request sets it).
    pub fn default_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.default_headers.insert(name, value);
        self
    }

    /// Helpdesk credentials, sent as `X-Lark-Helpdesk-Authorization` on `/open-apis/helpdesk/` calls.
    pub fn helpdesk(
        mut self,
        helpdesk_id: impl Into<String>,
        helpdesk_token: impl Into<SecretString>,
    ) -> Self {
        self.helpdesk = Some(HelpdeskCredentials::new(helpdesk_id, helpdesk_token));
        self
    }

    /// Replaces the bottom HTTP service (default: the pooled hyper + rustls [`HttpClient`]).
    pub fn http_service(mut self, http: HttpService) -> Self {
        self.http = Some(http);
        self
    }

    /// Uses this [`HttpClient`] at the bottom of the stack instead of a default one: for
    /// HTTP/2 only, an extra root certificate, other pool settings, or one pool shared by
    /// several clients. Its own JSON limit applies to the replies it reads. Setting both this
    /// and [`http_service`](Self::http_service) is a `ConfigError`.
    pub fn http_client(mut self, http: HttpClient) -> Self {
        self.http_client = Some(http);
        self
    }

    /// Refresh tokens this long before they expire (default 3 min).
    pub fn token_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = Some(margin);
        self
    }

    /// The clock used for token expiry (tests move a [`lark_auth::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Largest JSON reply held in memory (default 32 MiB).
    pub fn json_limit(mut self, bytes: usize) -> Self {
        self.json_limit = bytes;
        self
    }

    /// Builds the client: checks the settings and assembles the stack. Makes no network call.
    pub fn build(self) -> Result<Client, LarkError> {
        if self.app_id.trim().is_empty() {
            return Err(
                ConfigError::new("app_id is empty: pass the app's id (cli_...) to Client::builder").into()
            );
        }
        if self.app_secret.is_empty() {
            return Err(
                ConfigError::new("app_secret is empty: pass the app's secret to Client::builder").into()
            );
        }
        let base_url = self.domain.base_url().to_owned();
        let base =
            BaseUrl::parse(&base_url).ok().filter(|b| matches!(b.scheme(), "http" | "https")).ok_or_else(
                || ConfigError::new(format!("base URL `{base_url}` must be http(s)://host[:port]")),
            )?;
        if self.timeout.is_zero() || self.attempt_timeout.is_zero() {
            return Err(ConfigError::new("timeouts must be greater than zero").into());
        }
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let settings = StackSettings {
            retry: self.retry,
            timeout: self.timeout,
            attempt_timeout: self.attempt_timeout,
            json_limit: self.json_limit,
        };
        let token_manager = TokenManager::builder(self.app_id, self.app_secret);
        let parts = (token_manager, self.app_type, base_url.as_str(), store, self.refresh_margin, self.clock);
        let (tokens, stack) = match (self.http, self.http_client) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new("set either http_service or http_client, not both").into());
            }
            (Some(custom), None) => {
                build_stack(custom, &settings, parts).map(|(t, s)| (t, Stacks::Custom(s)))?
            }
            (None, given) => {
                let http = match given {
                    Some(http) => http,
                    None => HttpClient::builder().json_limit(self.json_limit).build()?,
                };
                build_stack(http, &settings, parts).map(|(t, s)| (t, Stacks::Builtin(s)))?
            }
        };
        let helpdesk = match &self.helpdesk {
            Some(h) => {
                let raw = format!("{}:{}", h.helpdesk_id(), h.helpdesk_token().expose_secret());
                let mut v = HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(raw))
                    .map_err(|_| ConfigError::new("helpdesk credentials are not valid header text"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let mut default_headers = self.default_headers;
        default_headers.entry(USER_AGENT).or_insert(HeaderValue::from_static(SDK_USER_AGENT));
        Ok(Client {
            inner: Arc::new(Inner {
                base_url,
                base,
                tokens,
                stack,
                default_headers,
                helpdesk,
                json_limit: self.json_limit,
            }),
        })
    }
}

/// The settings every layer of the stack needs.
struct StackSettings {
    retry: RetryPolicy,
    timeout: Duration,
    attempt_timeout: Duration,
    json_limit: usize,
}

/// What the token manager is built from.
type TokenParts<'a> = (
    lark_auth::TokenManagerBuilder,
    AppType,
    &'a str,
    Arc<dyn TokenStore>,
    Option<Duration>,
    Option<Arc<dyn Clock>>,
);

/// The call stack over the bottom HTTP service `H`: call policy (trace, timeouts, retry) → auth
/// → `H`. Kept as a concrete type (no boxed service to clone per call).
type Stack<H> = CallPolicy<LarkAuthService<H>>;

/// The stack of a client: over the built-in hyper client, or over a custom HTTP service.
enum Stacks {
    Builtin(Stack<HttpClient>),
    Custom(Stack<HttpService>),
}

/// A call on its way through the stack.
type StackFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send>>;

impl Stacks {
    fn call(&self, req: http::Request<Body>) -> StackFuture {
        match self {
            Stacks::Builtin(s) => s.send(req),
            Stacks::Custom(s) => s.send(req),
        }
    }
}

/// Builds the token manager and the call stack over the bottom HTTP service `http`.
fn build_stack<H>(
    http: H,
    s: &StackSettings,
    parts: TokenParts<'_>,
) -> Result<(TokenManager, Stack<H>), LarkError>
where
    H: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = lark_types::BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
    H::Future: Send + 'static,
{
    let (tokens, app_type, base_url, store, refresh_margin, clock) = parts;
    let policy = CallPolicyLayer::new(s.retry.clone(), s.timeout, s.attempt_timeout);
    // Token endpoints: timeouts and retries, no auth.
    let token_http = BoxCloneSyncService::new(policy.layer(http.clone()));
    let mut tokens = tokens.app_type(app_type).base_url(base_url).store(store).http(token_http);
    if let Some(m) = refresh_margin {
        tokens = tokens.refresh_margin(m);
    }
    if let Some(c) = clock {
        tokens = tokens.clock(c);
    }
    let tokens = tokens.build()?;
    let stack = ServiceBuilder::new()
        .layer(policy)
        .layer(LarkAuthLayer::new(tokens.clone()).json_limit(s.json_limit).resend_on_rejected_token(false))
        .service(http);
    Ok((tokens, stack))
}

struct Inner {
    base_url: String,
    /// `base_url` parsed once, so each request parses only its own path and query.
    base: BaseUrl,
    tokens: TokenManager,
    stack: Stacks,
    default_headers: HeaderMap,
    helpdesk: Option<HeaderValue>,
    json_limit: usize,
}

/// The Feishu / Lark client. Cheap to clone; clones share the connection pool and tokens.
///
/// ```no_run
/// # async fn demo() -> Result<(), lark_types::LarkError> {
/// use lark_services::Client;
///
/// let client = Client::builder("cli_a1b2c3d4e5f6a7b8", "app-secret").build()?;
/// let user: serde_json::Value = client
///     .get("/open-apis/contact/v3/users/:user_id")
///     .path_param("user_id", "ou_1")
///     .query("user_id_type", "open_id")
///     .send()
///     .await?;
/// println!("{user}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts building a client for an app.
    pub fn builder(app_id: impl Into<String>, app_secret: impl Into<SecretString>) -> ClientBuilder {
        ClientBuilder {
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            domain: Domain::Feishu,
            app_type: AppType::SelfBuilt,
            store: None,
            timeout: Duration::from_secs(90),
            attempt_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            default_headers: HeaderMap::new(),
            helpdesk: None,
            http: None,
            http_client: None,
            refresh_margin: None,
            clock: None,
            json_limit: DEFAULT_JSON_LIMIT,
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The token manager: tokens, the app_ticket, the store.
    pub fn tokens(&self) -> &TokenManager {
        &self.inner.tokens
    }

    /// Stores the app_ticket of a marketplace app (the event side does this automatically).
    pub async fn set_app_ticket(&self, app_ticket: &str) -> Result<(), LarkError> {
        self.inner.tokens.set_app_ticket(app_ticket).await
    }

    /// A raw request to any API: `path` is an `/open-apis/...` template with `:name` segments.
    pub fn request(&self, method: Method, path: impl Into<Cow<'static, str>>) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            req: ApiRequest::new(method, path),
            options: RequestOptions::default(),
        }
    }

    /// A raw `GET`.
    pub fn get(&self, path: impl Into<Cow<'static, str>>) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A raw `POST`.
    pub fn post(&self, path: impl Into<Cow<'static, str>>) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// A raw `PUT`.
    pub fn put(&self, path: impl Into<Cow<'static, str>>) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    /// A raw `PATCH`.
    pub fn patch(&self, path: impl Into<Cow<'static, str>>) -> RequestBuilder {
        self.request(Method::PATCH, path)
    }

    /// A raw `DELETE`.
    pub fn delete(&self, path: impl Into<Cow<'static, str>>) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// Sends a prepared request through the stack and returns the reply as it came (JSON replies
    /// buffered, downloads streaming). Typed APIs build on this.
    ///
    /// The request is built, and its `lark.request` span opened, when this is called; nothing
    /// is sent and no timeout runs until the future is polled. The future does not borrow the
    /// client (it is `'static`), and a request that cannot be built fails when awaited.
    pub fn execute(
        &self,
        req: ApiRequest,
        options: RequestOptions,
    ) -> impl Future<Output = Result<http::Response<Body>, LarkError>> + Send + use<> {
        let started = self.start(req, options);
        async move { started?.await.map_err(LarkError::from_boxed) }
    }

    /// Sends a prepared request and decodes `data` as `T` (`Err(LarkError::Api)` when `code != 0`).
    /// Built when called, sent when polled, as [`execute`](Self::execute).
    pub fn execute_json<T: DeserializeOwned>(
        &self,
        req: ApiRequest,
        options: RequestOptions,
    ) -> impl Future<Output = Result<T, LarkError>> + Send + use<T> {
        let sent = self.execute(req, options);
        let limit = self.inner.json_limit;
        async move { decode_reply(sent.await?, limit).await }
    }

    /// Sends a prepared request whose reply is a file.
    /// Built when called, sent when polled, as [`execute`](Self::execute).
    pub fn execute_download(
        &self,
        req: ApiRequest,
        options: RequestOptions,
    ) -> impl Future<Output = Result<Download, LarkError>> + Send + use<> {
        let sent = self.execute(req, options);
        let limit = self.inner.json_limit;
        async move { Download::from_response(sent.await?, limit).await }
    }

    /// Builds the `http::Request` and hands it to the stack, which sends it once polled. Only
    /// the small boxed stack future crosses an await, not the request or its builder.
    fn start(&self, req: ApiRequest, options: RequestOptions) -> Result<StackFuture, LarkError> {
        let path_is_helpdesk = req.path_template().trim_start_matches('/').starts_with("open-apis/helpdesk/");
        let req = options.apply(req);
        let mut http_req = req.build_at(&self.inner.base)?;
        let headers = http_req.headers_mut();
        for (name, value) in &self.inner.default_headers {
            if let http::header::Entry::Vacant(slot) = headers.entry(name) {
                slot.insert(value.clone());
            }
        }
        if path_is_helpdesk {
            if let Some(v) = &self.inner.helpdesk {
                headers.entry(HELPDESK_AUTH_HEADER).or_insert_with(|| v.clone());
            }
        }
        Ok(self.inner.stack.call(http_req))
    }
}

/// Per-call settings: who the call acts for and extra headers.
#[derive(Clone, Debug, Default)]
pub struct RequestOptions {
    /// Act for this tenant (marketplace apps).
    pub tenant_key: Option<String>,
    /// Send this user access token.
    pub user_access_token: Option<SecretString>,
    /// Send this token as is.
    pub access_token: Option<SecretString>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// A request id, sent as `X-Request-Id`.
    pub request_id: Option<String>,
}

impl RequestOptions {
    /// Applies the options to a request.
    pub fn apply(self, mut req: ApiRequest) -> ApiRequest {
        {
            let auth = req.auth_mut();
            if self.tenant_key.is_some() {
                auth.tenant_key = self.tenant_key;
            }
            if self.user_access_token.is_some() {
                auth.user_access_token = self.user_access_token;
            }
            if self.access_token.is_some() {
                auth.access_token = self.access_token;
            }
        }
        for (name, value) in self.headers {
            req = req.header(name, value);
        }
        if let Some(id) = self.request_id {
            req = req.header("x-request-id", id);
        }
        req
    }
}

/// A raw request being built; finish with [`send`](Self::send), [`send_json`](Self::send_json),
/// [`download`](Self::download) or [`send_raw`](Self::send_raw).
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: Client,
    req: ApiRequest,
    options: RequestOptions,
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder").field("req", &self.req).finish_non_exhaustive()
    }
}

impl RequestBuilder {
    /// Fills the `:name` segment of the path (percent-encoded).
    pub fn path_param(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.req = self.req.path_param(name, value);
        self
    }

    /// Adds a query parameter (keys may repeat).
    pub fn query(mut self, key: impl Into<Cow<'static, str>>, value: impl ToString) -> Self {
        self.req = self.req.query(key, value);
        self
    }

    /// Sets a JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.req = self.req.json(body);
        self
    }

    /// Sets a multipart body (uploads).
    pub fn multipart(mut self, form: Multipart) -> Self {
        self.req = self.req.multipart(form);
        self
    }

    /// The token types the API accepts (default: tenant). Use `AccessTokenTypes::NONE` for none.
    pub fn token_types(mut self, accepted: AccessTokenTypes) -> Self {
        self.req.auth_mut().accepted = accepted;
        self
    }

    per_call_option_setters!();

    /// Sends and decodes `data` as `T`. As all the `send` methods: the request is built when
    /// this is called and sent when the future is polled (see [`Client::execute`]).
    pub fn send<T: DeserializeOwned>(self) -> impl Future<Output = Result<T, LarkError>> + Send + use<T> {
        self.client.execute_json(self.req, self.options)
    }

    /// Sends and returns `data` as JSON.
    pub fn send_json(self) -> impl Future<Output = Result<serde_json::Value, LarkError>> + Send + use<> {
        self.send()
    }

    /// Sends and returns the file of the reply as a stream.
    pub fn download(self) -> impl Future<Output = Result<Download, LarkError>> + Send + use<> {
        self.client.execute_download(self.req, self.options)
    }

    /// Sends and returns the reply as it came, without looking at `code`.
    pub fn send_raw(self) -> impl Future<Output = Result<http::Response<Body>, LarkError>> + Send + use<> {
        self.client.execute(self.req, self.options)
    }
}
