//! [`LarkAuthLayer`]: injects `Authorization: Bearer <token>` per attempt, on any tower HTTP
//! client, and recovers once from a token the platform says is invalid.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use lark_transport::{
    buffer_json_reply, needs_buffering, try_clone_request, Body, ReplayBody, ReplyCode, TokenRejected,
    DEFAULT_JSON_LIMIT,
};
use lark_types::{
    codes, AccessTokenType, AccessTokenTypes, AppType, AuthOptions, BoxError, ConfigError, LarkError,
    SecretString, TokenError, TokenErrorKind,
};
use tower::ServiceExt;

use crate::{AccessToken, TokenManager};

/// Which token a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChoice {
    /// Send no token.
    None,
    /// Send a token the caller gave (explicit or user token); never refreshed by the SDK.
    Given(SecretString),
    /// A token the [`TokenManager`] provides and refreshes.
    Managed {
        /// Tenant or app.
        kind: AccessTokenType,
        /// The tenant, for marketplace tenant tokens.
        tenant_key: Option<String>,
    },
}

/// Picks the token for a request from what the API accepts and what the caller gave:
/// an explicit token wins, then a user token, then a tenant token (marketplace apps need a
/// `tenant_key`; without one an app token is used where the API accepts it), then an app token.
pub fn choose_token(opts: &AuthOptions, app_type: AppType) -> Result<TokenChoice, TokenError> {
    if let Some(t) = &opts.access_token {
        return Ok(TokenChoice::Given(t.clone()));
    }
    if let Some(t) = &opts.user_access_token {
        return Ok(TokenChoice::Given(t.clone()));
    }
    let accepted = opts.accepted;
    if accepted.is_empty() {
        return Ok(TokenChoice::None);
    }
    let marketplace_without_tenant = app_type == AppType::Marketplace && opts.tenant_key.is_none();
    if accepted.contains(AccessTokenType::Tenant)
        && !(marketplace_without_tenant && accepted.contains(AccessTokenType::App))
    {
        if marketplace_without_tenant {
            return Err(TokenError::new(TokenErrorKind::TenantKeyRequired));
        }
        return Ok(TokenChoice::Managed {
            kind: AccessTokenType::Tenant,
            tenant_key: opts.tenant_key.clone(),
        });
    }
    if accepted.contains(AccessTokenType::App) {
        return Ok(TokenChoice::Managed { kind: AccessTokenType::App, tenant_key: None });
    }
    if accepted == AccessTokenTypes::USER {
        return Err(TokenError::new(TokenErrorKind::UserTokenRequired));
    }
    Err(TokenError::new(TokenErrorKind::NoAcceptableToken))
}

fn bearer(token: &SecretString) -> Result<HeaderValue, LarkError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        .map_err(|_| ConfigError::new("the access token contains characters not allowed in a header"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// Adds [`LarkAuthService`] to a tower stack.
///
/// ```no_run
/// # async fn demo(manager: lark_auth::TokenManager) {
/// use tower::ServiceBuilder;
/// let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
///     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let svc = ServiceBuilder::new().layer(lark_auth::LarkAuthLayer::new(manager)).service(client);
/// # let _ = svc;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct LarkAuthLayer {
    manager: TokenManager,
    json_limit: usize,
    resend_itself: bool,
}

impl LarkAuthLayer {
    /// A layer taking tokens from `manager`.
    pub fn new(manager: TokenManager) -> Self {
        LarkAuthLayer { manager, json_limit: DEFAULT_JSON_LIMIT, resend_itself: true }
    }

    /// Whether this layer re-sends a request whose managed token was rejected (default `true`).
    /// Set `false` when a `tower::retry` layer with [`lark_transport::RetryPolicy`] sits outside
    /// it: the layer then only drops the token and marks the reply [`TokenRejected`], the retry
    /// layer re-sends once, and requests need not be copied here in advance.
    pub fn resend_on_rejected_token(mut self, yes: bool) -> Self {
        self.resend_itself = yes;
        self
    }

    /// Largest JSON reply buffered to look for token-invalid codes (default 32 MiB).
    pub fn json_limit(mut self, bytes: usize) -> Self {
        self.json_limit = bytes;
        self
    }
}

impl<S> tower::Layer<S> for LarkAuthLayer {
    type Service = LarkAuthService<S>;
    fn layer(&self, inner: S) -> LarkAuthService<S> {
        LarkAuthService {
            inner,
            manager: self.manager.clone(),
            json_limit: self.json_limit,
            resend_itself: self.resend_itself,
        }
    }
}

/// Injects the access token each attempt needs, reading [`AuthOptions`] from the request's
/// extensions (absent: a tenant token). A request that already has an `Authorization` header is
/// left alone. When the platform answers 99991663, 99991664 or 99991671 for a managed token, the
/// cached token is dropped, a new one fetched and the request sent once more (if its body can be
/// replayed); a second failure is returned as it is, so it never loops.
///
/// Works on any tower HTTP service; JSON replies come back buffered, others still streaming.
///
/// When the token is at hand (cached in this process, given by the caller, or none needed), the
/// inner service's `call` runs inside this service's `call`, as most tower layers do; when a
/// token has to be fetched first, it runs once the returned future has the token. So with an
/// inner service that starts work in `call` (such as `tower::buffer`), dropping the future
/// unpolled does not always stop the request.
#[derive(Clone, Debug)]
pub struct LarkAuthService<S> {
    inner: S,
    manager: TokenManager,
    json_limit: usize,
    resend_itself: bool,
}

impl<S> LarkAuthService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Reply = Result<Response<Body>, LarkError>;

impl<S, ReqB, ResB> tower::Service<Request<ReqB>> for LarkAuthService<S>
where
    S: tower::Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    ReqB: ReplayBody + Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = AuthFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> AuthFuture<S, ReqB> {
        // Use the service that was polled ready; keep a fresh clone for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (manager, limit, resend) = (self.manager.clone(), self.json_limit, self.resend_itself);
        // Everything up to the inner call runs here, synchronously, when the token is at hand: the
        // returned future then holds the inner future and what a rejected token needs, not the
        // request.
        let (kind, tenant_key) = match prepare(&mut req, manager.app_type()) {
            Err(e) => return AuthFuture::failed(e),
            Ok(None) => return AuthFuture::calling(inner.call(req), limit, None),
            Ok(Some(managed)) => managed,
        };
        let cached = manager.cached_access_token(kind, tenant_key.as_deref());
        let authorized = Authorized { inner, manager, kind, tenant_key, resend, limit };
        match cached {
            Some(token) => authorized.call(token, req),
            // Rare (first call, or a refresh due): the fetch and the call in one boxed future.
            None => AuthFuture::boxed(Box::pin(async move {
                let a = authorized;
                let token = a.manager.access_token(kind, a.tenant_key.as_deref()).await?;
                a.call(token, req).await.map_err(LarkError::from_boxed)
            })),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`LarkAuthService`] call: the inner service's future held inline (no
    /// allocation on the common path), the reply's JSON buffered if the inner service left it
    /// streaming, and the recovery from a refused token when one is due.
    #[must_use = "futures do nothing unless polled"]
    pub struct AuthFuture<S, ReqB>
    where
        S: tower::Service<Request<ReqB>>,
    {
        #[pin]
        state: AuthState<S, ReqB>,
    }
}

pin_project_lite::pin_project! {
    #[project = AuthStateProj]
    enum AuthState<S, ReqB>
    where
        S: tower::Service<Request<ReqB>>,
    {
        // The request could not be prepared.
        Failed { error: Option<LarkError> },
        // The inner call is under way; `recovery` is set for a managed token.
        Calling { #[pin] call: S::Future, limit: usize, recovery: Option<Recovery<S, ReqB>> },
        // The inner service replied with JSON it did not buffer (a service other than ours).
        Buffering { reply: BoxFuture<Reply>, recovery: Option<Recovery<S, ReqB>> },
        // A token fetch or a recovery, off the common path.
        Boxed { run: BoxFuture<Reply> },
    }
}

impl<S, ReqB> std::fmt::Debug for AuthFuture<S, ReqB>
where
    S: tower::Service<Request<ReqB>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            AuthState::Failed { .. } => "failed",
            AuthState::Calling { .. } => "calling",
            AuthState::Buffering { .. } => "buffering",
            AuthState::Boxed { .. } => "boxed",
        };
        f.debug_struct("AuthFuture").field("state", &state).finish()
    }
}

impl<S, ReqB> AuthFuture<S, ReqB>
where
    S: tower::Service<Request<ReqB>>,
{
    fn failed(error: LarkError) -> Self {
        AuthFuture { state: AuthState::Failed { error: Some(error) } }
    }

    fn calling(call: S::Future, limit: usize, recovery: Option<Recovery<S, ReqB>>) -> Self {
        AuthFuture { state: AuthState::Calling { call, limit, recovery } }
    }

    fn boxed(run: BoxFuture<Reply>) -> Self {
        AuthFuture { state: AuthState::Boxed { run } }
    }
}

impl<S, ReqB, ResB> Future for AuthFuture<S, ReqB>
where
    S: tower::Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    ReqB: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let (resp, recovery) = match self.as_mut().project().state.project() {
                AuthStateProj::Failed { error } => {
                    return Poll::Ready(Err(match error.take() {
                        Some(e) => Box::new(e),
                        None => polled_after_completion(),
                    }));
                }
                AuthStateProj::Calling { call, limit, recovery } => {
                    let resp = match std::task::ready!(call.poll(cx)) {
                        Ok(resp) => resp.map(Body::wrap),
                        Err(e) => return Poll::Ready(Err(as_lark_error(e.into()))),
                    };
                    let recovery = recovery.take();
                    if needs_buffering(&resp) {
                        // Boxed, to keep the buffering state out of every call's future.
                        let reply = Box::pin(buffer_json_reply(resp, *limit));
                        self.as_mut().project().state.set(AuthState::Buffering { reply, recovery });
                        continue;
                    }
                    (resp, recovery)
                }
                AuthStateProj::Buffering { reply, recovery } => {
                    let resp =
                        std::task::ready!(reply.as_mut().poll(cx)).map_err(|e| Box::new(e) as BoxError)?;
                    (resp, recovery.take())
                }
                AuthStateProj::Boxed { run } => {
                    return run.as_mut().poll(cx).map_err(|e| Box::new(e) as BoxError);
                }
            };
            let refused = resp.extensions().get::<ReplyCode>().is_some_and(|c| codes::is_token_invalid(c.0));
            match recovery {
                Some(recovery) if refused => {
                    let run = Box::pin(recovery.run(resp));
                    self.as_mut().project().state.set(AuthState::Boxed { run });
                }
                _ => return Poll::Ready(Ok(resp)),
            }
        }
    }
}

/// An inner service's error as a boxed [`LarkError`] (others are wrapped as transport errors).
fn as_lark_error(e: BoxError) -> BoxError {
    if e.is::<LarkError>() {
        e
    } else {
        Box::new(LarkError::from_boxed(e))
    }
}

fn polled_after_completion() -> BoxError {
    let e = std::io::Error::other("AuthFuture polled after it completed");
    Box::new(LarkError::Transport(lark_types::TransportError::new(lark_types::TransportErrorKind::Io, e)))
}

/// The inner service's reply, with its JSON buffered so its code can be read (used off the
/// common path, where the future is boxed anyway).
async fn replied<F, ResB, E>(call: F, limit: usize) -> Reply
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let resp = call.await.map_err(|e| LarkError::from_boxed(e.into()))?.map(Body::wrap);
    buffer_json_reply(resp, limit).await
}

/// Which managed token a request needs, after putting any other `Authorization` in place.
fn prepare<B>(
    req: &mut Request<B>,
    app_type: AppType,
) -> Result<Option<(AccessTokenType, Option<String>)>, LarkError> {
    if req.headers().contains_key(AUTHORIZATION) {
        return Ok(None);
    }
    let choice = match req.extensions().get::<AuthOptions>() {
        Some(opts) => choose_token(opts, app_type)?,
        None => choose_token(&AuthOptions::accepting(AccessTokenTypes::TENANT), app_type)?,
    };
    match choice {
        TokenChoice::None => Ok(None),
        TokenChoice::Given(token) => {
            req.headers_mut().insert(AUTHORIZATION, bearer(&token)?);
            Ok(None)
        }
        TokenChoice::Managed { kind, tenant_key } => Ok(Some((kind, tenant_key))),
    }
}

/// A call made with a managed token: what is needed to recover when the platform refuses it.
struct Authorized<S> {
    inner: S,
    manager: TokenManager,
    kind: AccessTokenType,
    tenant_key: Option<String>,
    resend: bool,
    limit: usize,
}

impl<S> Authorized<S> {
    /// Sends `req` with `token` now; the future reads the reply and recovers from a refused
    /// token.
    fn call<ReqB>(mut self, token: AccessToken, mut req: Request<ReqB>) -> AuthFuture<S, ReqB>
    where
        S: tower::Service<Request<ReqB>>,
        ReqB: ReplayBody,
    {
        let again = if self.resend { try_clone_request(&req).map(Box::new) } else { None };
        req.headers_mut().insert(AUTHORIZATION, token.header_value().clone());
        let call = self.inner.call(req);
        let limit = self.limit;
        AuthFuture::calling(call, limit, Some(Recovery { authorized: self, token, again }))
    }
}

/// What a call with a managed token keeps for the case the platform refuses the token.
struct Recovery<S, ReqB> {
    authorized: Authorized<S>,
    token: AccessToken,
    again: Option<Box<Request<ReqB>>>,
}

impl<S, ReqB> Recovery<S, ReqB> {
    /// Drops the refused token and, when allowed and possible, sends the request again with a
    /// fresh one (once); otherwise returns the refusal, marked [`TokenRejected`] for an outer
    /// retry layer.
    async fn run<ResB>(self, mut resp: Response<Body>) -> Reply
    where
        S: tower::Service<Request<ReqB>, Response = Response<ResB>>,
        S::Error: Into<BoxError>,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let Recovery { authorized: mut a, token, again } = self;
        let tenant_key = a.tenant_key.as_deref();
        a.manager.invalidate(a.kind, tenant_key, token.token()).await?;
        if !a.resend {
            resp.extensions_mut().insert(TokenRejected);
            return Ok(resp);
        }
        let Some(mut again) = again else {
            tracing::debug!("token rejected; the body cannot be replayed, so the call is not retried");
            return Ok(resp);
        };
        tracing::debug!(
            kind = a.kind.as_str(),
            "token rejected by the platform; refreshing and retrying once"
        );
        let fresh = a.manager.access_token(a.kind, tenant_key).await?;
        again.headers_mut().insert(AUTHORIZATION, fresh.header_value().clone());
        a.inner.ready().await.map_err(|e| LarkError::from_boxed(e.into()))?;
        replied(a.inner.call(*again), a.limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(accepted: AccessTokenTypes) -> AuthOptions {
        AuthOptions::accepting(accepted)
    }

    #[test]
    fn token_choice_rules() {
        let tenant = TokenChoice::Managed { kind: AccessTokenType::Tenant, tenant_key: None };
        let app = TokenChoice::Managed { kind: AccessTokenType::App, tenant_key: None };
        assert_eq!(
            choose_token(&opts(AccessTokenTypes::TENANT_OR_USER), AppType::SelfBuilt).unwrap(),
            tenant
        );
        assert_eq!(choose_token(&opts(AccessTokenTypes::APP), AppType::SelfBuilt).unwrap(), app);
        assert_eq!(
            choose_token(&opts(AccessTokenTypes::NONE), AppType::SelfBuilt).unwrap(),
            TokenChoice::None
        );
        assert_eq!(
            choose_token(&opts(AccessTokenTypes::USER), AppType::SelfBuilt).unwrap_err().kind(),
            TokenErrorKind::UserTokenRequired
        );
        // Marketplace: a tenant token needs a tenant_key; with none, an app token where accepted.
        assert_eq!(
            choose_token(&opts(AccessTokenTypes::TENANT), AppType::Marketplace).unwrap_err().kind(),
            TokenErrorKind::TenantKeyRequired
        );
        assert_eq!(
            choose_token(&opts(AccessTokenTypes::TENANT.with(AccessTokenType::App)), AppType::Marketplace)
                .unwrap(),
            app
        );
        let mut o = opts(AccessTokenTypes::TENANT);
        o.tenant_key = Some("t1".into());
        assert_eq!(
            choose_token(&o, AppType::Marketplace).unwrap(),
            TokenChoice::Managed { kind: AccessTokenType::Tenant, tenant_key: Some("t1".into()) }
        );
        // The caller's tokens win.
        o.user_access_token = Some("u-1".into());
        assert_eq!(choose_token(&o, AppType::Marketplace).unwrap(), TokenChoice::Given("u-1".into()));
        o.access_token = Some("x-1".into());
        assert_eq!(choose_token(&o, AppType::Marketplace).unwrap(), TokenChoice::Given("x-1".into()));
    }
}
