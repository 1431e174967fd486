//! [`EventDispatcher`]: verifies deliveries, routes them to handlers, and answers as the
//! platform expects. A `tower::Service` for HTTP; [`EventDispatcher::handle_plain`] for
//! already-authenticated plain JSON (the long connection).

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use lark_auth::{app_ticket_key, Clock, MemoryStore, SystemClock, TokenStore, APP_TICKET_TTL};
use lark_services::Client;
use lark_types::{BoxError, ConfigError, LarkError, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::card::{CardAction, CardResponse, CardStyle, UrlPreview, UrlPreviewResponse};
use crate::context::{EventContext, Schema, Text, LEGACY_CARD_ACTION};
use crate::crypto::{secret_eq, verify_card_signature, verify_event_signature, Cipher};
use crate::envelope::{self, Kind, V1Event, Wire};
use crate::error::{EventError, EventErrorKind};
use crate::event::Event;

/// The largest body read by default: 1 MiB. Larger bodies are answered with 413.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// How long a dedup mark is kept by default: 8 hours, longer than the platform's retries
/// (about 15 s, 5 min, 1 h and 6 h after the first delivery).
pub const DEFAULT_DEDUP_TTL: Duration = Duration::from_secs(8 * 3600);
/// Request header with the Unix time (seconds) the platform signed.
pub const TIMESTAMP_HEADER: &str = "x-lark-request-timestamp";
/// Request header with the nonce the platform signed.
pub const NONCE_HEADER: &str = "x-lark-request-nonce";
/// Request header with the signature.
pub const SIGNATURE_HEADER: &str = "x-lark-signature";

/// The event type of new-style card callbacks.
pub const CARD_ACTION_TRIGGER: &str = "card.action.trigger";
/// The event type of link preview callbacks.
pub const URL_PREVIEW_GET: &str = "url.preview.get";
const APP_TICKET: &str = "app_ticket";
/// The prefix of the store keys marking event ids as seen.
const DEDUP_PREFIX: &str = "event_seen:";

const TIMESTAMP: HeaderName = HeaderName::from_static(TIMESTAMP_HEADER);
const NONCE: HeaderName = HeaderName::from_static(NONCE_HEADER);
const SIGNATURE: HeaderName = HeaderName::from_static(SIGNATURE_HEADER);

const SUCCESS: &[u8] = br#"{"msg":"success"}"#;
const EMPTY_OBJECT: &[u8] = b"{}";
const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// What a handler's future resolves to.
type HandlerFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;
/// A registered event handler: decodes the event (typed or raw) and starts the user's future.
type EventHandler =
    Arc<dyn Fn(EventContext, Payload<'_>, Start) -> Result<HandlerFuture<()>, EventError> + Send + Sync>;
type CardHandler = Arc<dyn Fn(EventContext, CardAction) -> HandlerFuture<CardResponse> + Send + Sync>;
type PreviewHandler =
    Arc<dyn Fn(EventContext, UrlPreview) -> HandlerFuture<UrlPreviewResponse> + Send + Sync>;

/// The `event` object of a delivery, plus the 1.0 envelope fields typed 1.0 models may list.
struct Payload<'a> {
    /// The raw JSON of `event` (validated by decoding it).
    event: &'a str,
    legacy: Option<Legacy<'a>>,
}

struct Legacy<'a> {
    uuid: Option<&'a str>,
    token: Option<&'a str>,
    ts: Option<&'a str>,
}

impl Payload<'_> {
    fn decode<T: DeserializeOwned>(&self) -> Result<T, EventError> {
        let decoded = match &self.legacy {
            None => serde_json::from_str(self.event),
            Some(l) => serde_json::from_str::<Map<String, Value>>(self.event).and_then(|mut map| {
                let fields = [
                    ("uuid", l.uuid.map(Value::from)),
                    ("token", l.token.map(Value::from)),
                    ("ts", l.ts.and_then(|t| serde_json::from_str(t).ok())),
                ];
                for (name, value) in fields {
                    if let Some(v) = value {
                        map.entry(name).or_insert(v);
                    }
                }
                T::deserialize(Value::Object(map))
            }),
        };
        decoded.map_err(|e| EventError::malformed("the event does not match its model").with_source(e))
    }
}

/// The result of one delivery that was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A URL check: answer `{"challenge":"<this>"}`.
    Challenge(String),
    /// An event handler ran and succeeded: answer `{"msg":"success"}`.
    Handled,
    /// A callback was answered (card, toast, link preview, or `{}`): this JSON is the body.
    Replied(Bytes),
    /// No handler is registered for the event type: answer `{"msg":"success"}` anyway, so the
    /// platform does not retry pointlessly.
    Unhandled,
    /// The event was already delivered (same event_id / uuid) and is not dispatched again.
    Duplicate,
}

impl Outcome {
    /// The JSON body to answer with (HTTP 200).
    pub fn body(&self) -> Bytes {
        match self {
            Outcome::Challenge(c) => Bytes::from(serde_json::json!({ "challenge": c }).to_string()),
            Outcome::Replied(body) => body.clone(),
            Outcome::Handled | Outcome::Unhandled | Outcome::Duplicate => Bytes::from_static(SUCCESS),
        }
    }
}

/// The HTTP answer to a delivery: 200 with the outcome's body, or the error's status and body.
pub fn http_response(result: &Result<Outcome, EventError>) -> Response<Bytes> {
    let (status, body) = match result {
        Ok(outcome) => (StatusCode::OK, outcome.body()),
        Err(e) => (e.status(), e.body()),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    resp
}

/// Which signature, if any, a request carried and proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verified {
    /// No signature header, or one of a scheme this dispatcher cannot check (not configured).
    Nothing,
    /// A valid SHA-256 event signature (Encrypt Key).
    Event,
    /// A valid SHA-1 old-style card signature (verification token).
    Card,
}

/// What the HTTP layer established before the envelope is read.
struct Checked<'a> {
    verified: Verified,
    timestamp: Option<&'a str>,
}

struct Registered {
    event_type: Arc<str>,
    handler: EventHandler,
}

struct Inner {
    cipher: Option<Cipher>,
    encrypt_key: Option<SecretString>,
    verification_token: Option<SecretString>,
    body_limit: usize,
    replay_window: Option<Duration>,
    clock: Arc<dyn Clock>,
    dedup: Option<(Arc<dyn TokenStore>, Duration)>,
    ticket_store: Option<Arc<dyn TokenStore>>,
    client: Option<Client>,
    handlers: HashMap<Box<str>, Registered>,
    card: Option<CardHandler>,
    preview: Option<PreviewHandler>,
    names: Names,
}

/// Shared event type names for contexts, allocated once.
struct Names {
    card_trigger: Arc<str>,
    preview: Arc<str>,
    legacy_card: Arc<str>,
}

/// Receives the platform's events and callbacks and dispatches them to handlers.
///
/// Build one with [`EventDispatcher::builder`]; it is cheap to clone (clones share the handlers).
/// It is a `tower::Service<http::Request<B>>` for any body type, with `Error = Infallible`, so
/// any tower-based server mounts it; `lark-adapters` mounts it in axum, actix-web and warp.
///
/// For each request: body size limit (413) → signature over the raw bytes when an Encrypt Key
/// is set (401) → decrypt (400) → URL check answered → verification token on every delivery when
/// set (401) → replay window when set (401) → app_ticket stored → dedup when set → the handler
/// (5xx when it fails, so the platform retries) → 200 with `{"msg":"success"}` or the callback's
/// answer. Unknown event types get 200.
///
/// ```no_run
/// # async fn demo(client: lark_services::Client) -> Result<(), lark_types::LarkError> {
/// use lark_events::{CardResponse, EventDispatcher, ToastKind};
///
/// let dispatcher = EventDispatcher::builder()
///     .encrypt_key("encrypt-key-from-the-console")
///     .verification_token("verification-token-from-the-console")
///     .client(client)
///     .dedup()
///     .on_raw("im.chat.disbanded_v1", |ctx, event| async move {
///         println!("{:?}: chat {} disbanded", ctx.event_id(), event["chat_id"]);
///         Ok(())
///     })
///     .on_card_action(|_ctx, action| async move {
///         Ok(CardResponse::toast(ToastKind::Success, format!("got {}", action.action.value)))
///     })
///     .build()?;
/// # let _ = dispatcher; Ok(()) }
/// ```
#[derive(Clone)]
pub struct EventDispatcher {
    inner: Arc<Inner>,
}

impl fmt::Debug for EventDispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut types: Vec<&str> = i.handlers.keys().map(|k| &**k).collect();
        types.sort_unstable();
        f.debug_struct("EventDispatcher")
            .field("encrypt_key", &i.encrypt_key)
            .field("verification_token", &i.verification_token)
            .field("body_limit", &i.body_limit)
            .field("replay_window", &i.replay_window)
            .field("dedup_ttl", &i.dedup.as_ref().map(|(_, ttl)| ttl))
            .field("event_types", &types)
            .field("card_handler", &i.card.is_some())
            .field("url_preview_handler", &i.preview.is_some())
            .finish_non_exhaustive()
    }
}

impl EventDispatcher {
    /// Starts building a dispatcher.
    pub fn builder() -> EventDispatcherBuilder {
        EventDispatcherBuilder {
            encrypt_key: None,
            verification_token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            replay_window: None,
            clock: None,
            dedup_ttl: None,
            store: None,
            client: None,
            handlers: HashMap::new(),
            card: None,
            preview: None,
            errors: Vec::new(),
        }
    }

    /// The largest body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// The client given to handlers.
    pub fn client(&self) -> Option<&Client> {
        self.inner.client.as_ref()
    }

    /// Reads a webhook request (enforcing the body limit), handles it and returns the HTTP
    /// answer. This is what the `tower::Service` implementation does.
    pub async fn handle_request<B>(&self, req: Request<B>) -> Response<Bytes>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let result = match self.read_body(&parts.headers, body).await {
            Ok(bytes) => self.handle_webhook(&parts.headers, bytes).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            if !matches!(e.kind(), EventErrorKind::Handler | EventErrorKind::Store) {
                tracing::debug!(error = %e, "event delivery refused");
            }
        }
        http_response(&result)
    }

    /// Reads the whole body, refusing it as soon as it is known to exceed the limit. A body
    /// that arrives in one piece (the usual case) is taken as is, without copying.
    async fn read_body<B>(&self, headers: &HeaderMap, body: B) -> Result<Bytes, EventError>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let limit = self.inner.body_limit;
        let too_large = || EventError::new(EventErrorKind::BodyTooLarge);
        let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) || body.size_hint().lower() > limit as u64 {
            return Err(too_large());
        }
        let mut body = std::pin::pin!(body);
        let mut first: Option<Bytes> = None;
        let mut more: Option<BytesMut> = None;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| EventError::malformed("the body could not be read").with_source(e))?;
            let Ok(mut data) = frame.into_data() else { continue };
            let chunk = data.copy_to_bytes(data.remaining());
            let so_far = first.as_ref().map_or(0, Bytes::len) + more.as_ref().map_or(0, BytesMut::len);
            if so_far + chunk.len() > limit {
                return Err(too_large());
            }
            match (&first, &mut more) {
                (None, _) => first = Some(chunk),
                (Some(_), Some(buf)) => buf.extend_from_slice(&chunk),
                (Some(head), None) => {
                    let mut buf = BytesMut::with_capacity(head.len() + chunk.len());
                    buf.extend_from_slice(head);
                    buf.extend_from_slice(&chunk);
                    more = Some(buf);
                }
            }
        }
        Ok(match more {
            Some(buf) => buf.freeze(),
            None => first.unwrap_or_default(),
        })
    }

    /// Handles a webhook delivery whose body was already read: checks the signature over the
    /// raw bytes, decrypts, checks token and timestamp, dispatches.
    pub async fn handle_webhook(&self, headers: &HeaderMap, body: Bytes) -> Result<Outcome, EventError> {
        let job = self.prepare_webhook(headers, body)?;
        self.finish(job).await
    }

    /// Everything [`handle_webhook`](Self::handle_webhook) does before it waits (on the store or
    /// the handler): verify, decrypt, parse, check, route, decode the event, create the
    /// handler's future (calling the user's closure now unless a dedup mark or an app_ticket
    /// has to come first; see [`Start`]). Synchronous, so the future a delivery is awaited in
    /// stays small.
    fn prepare_webhook(&self, headers: &HeaderMap, body: Bytes) -> Result<Job, EventError> {
        if body.len() > self.inner.body_limit {
            return Err(EventError::new(EventErrorKind::BodyTooLarge));
        }
        let text = |name: &HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or_default());
        let timestamp = text(&TIMESTAMP);
        let verified = self.verify_signature(timestamp, text(&NONCE), text(&SIGNATURE), &body)?;
        let checked = Checked { verified, timestamp };
        // The usual delivery, `{"encrypt":"<base64>"}` exactly, is decrypted without parsing the
        // outer JSON; anything else (or any failure) takes the general path below.
        if let (Some(cipher), Some(encrypted)) = (&self.inner.cipher, envelope::bare_encrypt(&body)) {
            if let Ok(plain) = cipher.decrypt_bytes(encrypted) {
                let wire = envelope::parse(&plain)?;
                return self.process(&wire, &plain, Some(&checked));
            }
        }
        let outer = envelope::parse(&body)?;
        match &outer.encrypt {
            Some(encrypted) => {
                let cipher = self.inner.cipher.as_ref().ok_or_else(|| {
                    EventError::malformed("the body is encrypted but no Encrypt Key is configured")
                })?;
                let plain = cipher
                    .decrypt(encrypted)
                    .map_err(|e| EventError::malformed("the body could not be decrypted").with_source(e))?;
                let wire = envelope::parse(&plain)?;
                self.process(&wire, &plain, Some(&checked))
            }
            None => self.process(&outer, &body, Some(&checked)),
        }
    }

    /// Handles a plain (unencrypted, unsigned) JSON delivery from a source that is already
    /// authenticated, such as the long connection: no signature, token or timestamp check.
    /// Dedup, app_ticket capture and dispatch work as for webhooks. Never feed it bytes from an
    /// unauthenticated source; use [`handle_webhook`](Self::handle_webhook) for those.
    pub async fn handle_plain(&self, plain: Bytes) -> Result<Outcome, EventError> {
        if plain.len() > self.inner.body_limit {
            return Err(EventError::new(EventErrorKind::BodyTooLarge));
        }
        let job = {
            let wire = envelope::parse(&plain)?;
            self.process(&wire, &plain, None)?
        };
        self.finish(job).await
    }

    fn verify_signature(
        &self,
        timestamp: Option<&str>,
        nonce: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Verified, EventError> {
        let Some(signature) = signature else { return Ok(Verified::Nothing) };
        let (ts, nonce) = (timestamp.unwrap_or_default(), nonce.unwrap_or_default());
        let bad = || EventError::new(EventErrorKind::BadSignature);
        let i = &self.inner;
        // The length tells the scheme: 64 hex digits for SHA-256, 40 for SHA-1.
        match (signature.trim().len(), &i.encrypt_key, &i.verification_token) {
            (64, Some(key), _) => verify_event_signature(ts, nonce, key.expose_secret(), body, signature)
                .then_some(Verified::Event)
                .ok_or_else(bad),
            (40, _, Some(token)) => verify_card_signature(ts, nonce, token.expose_secret(), body, signature)
                .then_some(Verified::Card)
                .ok_or_else(bad),
            (64 | 40, _, _) | (_, None, None) => Ok(Verified::Nothing),
            _ => Err(bad()),
        }
    }

    fn check_webhook(&self, kind: Kind, wire: &Wire<'_>, checked: &Checked<'_>) -> Result<(), EventError> {
        let i = &self.inner;
        let missing_signature =
            || EventError::new(EventErrorKind::BadSignature).with_detail("a signed delivery was expected");
        match kind {
            Kind::V2 | Kind::V1 if i.encrypt_key.is_some() && checked.verified != Verified::Event => {
                return Err(missing_signature());
            }
            Kind::LegacyCard if i.verification_token.is_some() && checked.verified != Verified::Card => {
                return Err(missing_signature());
            }
            _ => {}
        }
        if let Some(window) = i.replay_window {
            match checked.timestamp {
                None if kind == Kind::UrlCheck => {}
                None => {
                    return Err(EventError::new(EventErrorKind::Stale).with_detail("no request timestamp"));
                }
                Some(ts) => {
                    let ts: i64 = ts.trim().parse().map_err(|_| {
                        EventError::new(EventErrorKind::Stale)
                            .with_detail("the request timestamp is not a number")
                    })?;
                    let now = i64::try_from(i.clock.now_unix_ms() / 1000).unwrap_or(i64::MAX);
                    if now.abs_diff(ts) > window.as_secs() {
                        return Err(EventError::new(EventErrorKind::Stale));
                    }
                }
            }
        }
        if let Some(expected) = &i.verification_token {
            let given = match kind {
                Kind::UrlCheck | Kind::V1 => wire.token.as_deref(),
                Kind::V2 => wire.header.as_ref().and_then(|h| h.token.as_deref()),
                // Its `token` is the card's update token; the SHA-1 signature, keyed with the
                // verification token, is what authenticates an old-style card callback.
                Kind::LegacyCard => return Ok(()),
            };
            if !given.is_some_and(|g| secret_eq(g, expected.expose_secret())) {
                return Err(EventError::new(EventErrorKind::BadToken));
            }
        }
        Ok(())
    }

    fn process(
        &self,
        wire: &Wire<'_>,
        plain: &Bytes,
        webhook: Option<&Checked<'_>>,
    ) -> Result<Job, EventError> {
        let kind = wire.kind()?;
        if let Some(checked) = webhook {
            self.check_webhook(kind, wire, checked)?;
        }
        match kind {
            Kind::UrlCheck => {
                Ok(Job::Done(Outcome::Challenge(wire.challenge.as_deref().unwrap_or_default().to_owned())))
            }
            Kind::V2 => self.dispatch_v2(wire, plain),
            Kind::V1 => self.dispatch_v1(wire, plain),
            Kind::LegacyCard => self.dispatch_legacy_card(plain),
        }
    }

    fn context(&self, schema: Schema, event_type: Arc<str>, plain: &Bytes) -> EventContext {
        EventContext {
            schema,
            event_type,
            event_id: Text::Absent,
            tenant_key: Text::Absent,
            app_id: Text::Absent,
            create_time_ms: None,
            raw: plain.clone(),
            client: self.inner.client.clone(),
        }
    }

    /// The dedup key of a delivery with this id, when dedup is on and the id is not empty.
    fn dedup_key(&self, id: Option<&str>) -> Option<String> {
        match (&self.inner.dedup, id) {
            (Some(_), Some(id)) if !id.is_empty() => Some(format!("{DEDUP_PREFIX}{id}")),
            _ => None,
        }
    }

    /// Decodes the event and creates its handler's future. With a dedup key, the user's closure
    /// is called only when that future is first polled, after the dedup mark is taken.
    fn event_job(
        registered: &Registered,
        ctx: EventContext,
        payload: Payload<'_>,
        dedup: Option<String>,
        callback: bool,
        after_ticket: bool,
    ) -> Result<Job, EventError> {
        let start = if dedup.is_some() || after_ticket { Start::Deferred } else { Start::Now };
        let future = (registered.handler)(ctx, payload, start)?;
        Ok(Job::Event { future, event_type: registered.event_type.clone(), dedup, callback })
    }

    fn dispatch_v2(&self, wire: &Wire<'_>, plain: &Bytes) -> Result<Job, EventError> {
        let (Some(header), Some(event)) = (&wire.header, wire.event) else {
            return Err(EventError::malformed("schema 2.0 envelope without header or event"));
        };
        let i = &self.inner;
        let event_type = &*header.event_type;
        let with_header = |event_type: Arc<str>| {
            let mut ctx = self.context(Schema::V2, event_type, plain);
            ctx.event_id = Text::new(plain, header.event_id.as_deref());
            ctx.tenant_key = Text::new(plain, header.tenant_key.as_deref());
            ctx.app_id = Text::new(plain, header.app_id.as_deref());
            ctx.create_time_ms = header.create_time.and_then(envelope::millis);
            ctx
        };
        let callback = event_type == CARD_ACTION_TRIGGER || event_type == URL_PREVIEW_GET;
        if event_type == CARD_ACTION_TRIGGER {
            if let Some(handler) = &i.card {
                let action = CardAction::from_trigger(event).map_err(|e| {
                    EventError::malformed("card.action.trigger event does not match its model").with_source(e)
                })?;
                let future = handler(with_header(i.names.card_trigger.clone()), action);
                return Ok(Job::Card { future, style: CardStyle::Trigger });
            }
        } else if event_type == URL_PREVIEW_GET {
            if let Some(handler) = &i.preview {
                let preview: UrlPreview = serde_json::from_str(event).map_err(|e| {
                    EventError::malformed("url.preview.get event does not match its model").with_source(e)
                })?;
                let future = handler(with_header(i.names.preview.clone()), preview);
                return Ok(Job::Preview { future });
            }
        }
        let Some(registered) = i.handlers.get(event_type) else {
            return Ok(Job::Done(if callback {
                Outcome::Replied(Bytes::from_static(EMPTY_OBJECT))
            } else {
                Outcome::Unhandled
            }));
        };
        let ctx = with_header(registered.event_type.clone());
        // Callbacks expect an answer each time they are delivered: they are not deduplicated.
        let dedup = if callback { None } else { self.dedup_key(header.event_id.as_deref()) };
        Self::event_job(registered, ctx, Payload { event, legacy: None }, dedup, callback, false)
    }

    fn dispatch_v1(&self, wire: &Wire<'_>, plain: &Bytes) -> Result<Job, EventError> {
        let Some(event) = wire.event else {
            return Err(EventError::malformed("schema 1.0 envelope without event"));
        };
        let head: V1Event<'_> = serde_json::from_str(event)
            .map_err(|e| EventError::malformed("schema 1.0 event without a type").with_source(e))?;
        let ticket = if head.kind == APP_TICKET {
            let (Some(app_id), Some(ticket)) = (head.app_id.as_deref(), head.app_ticket.as_deref()) else {
                return Err(EventError::malformed("app_ticket event without app_id or app_ticket"));
            };
            if app_id.is_empty() || ticket.is_empty() {
                return Err(EventError::malformed("app_ticket event with an empty app_id or app_ticket"));
            }
            Some((app_id.to_owned(), ticket.to_owned()))
        } else {
            None
        };
        let then = match self.inner.handlers.get(&*head.kind) {
            None if ticket.is_some() => Ok(Job::Done(Outcome::Handled)),
            None => Ok(Job::Done(Outcome::Unhandled)),
            Some(registered) => {
                let mut ctx = self.context(Schema::V1, registered.event_type.clone(), plain);
                ctx.event_id = Text::new(plain, wire.uuid.as_deref());
                ctx.tenant_key = Text::new(plain, head.tenant_key.as_deref().or(wire.tenant_key.as_deref()));
                ctx.app_id = Text::new(plain, head.app_id.as_deref());
                ctx.create_time_ms = wire.ts.and_then(envelope::seconds_to_millis);
                let legacy = Legacy { uuid: wire.uuid.as_deref(), token: wire.token.as_deref(), ts: wire.ts };
                let dedup = self.dedup_key(wire.uuid.as_deref());
                Self::event_job(
                    registered,
                    ctx,
                    Payload { event, legacy: Some(legacy) },
                    dedup,
                    false,
                    ticket.is_some(),
                )
            }
        };
        match ticket {
            // The ticket is stored first; a handler of the event (if any) runs after.
            Some((app_id, ticket)) => Ok(Job::Ticket { app_id, ticket, then: Box::new(then) }),
            None => then,
        }
    }

    fn dispatch_legacy_card(&self, plain: &Bytes) -> Result<Job, EventError> {
        let Some(handler) = &self.inner.card else {
            return Ok(Job::Done(Outcome::Replied(Bytes::from_static(EMPTY_OBJECT))));
        };
        let action = CardAction::from_legacy(plain).map_err(|e| {
            EventError::malformed("old-style card callback does not match its model").with_source(e)
        })?;
        let mut ctx = self.context(Schema::LegacyCard, self.inner.names.legacy_card.clone(), plain);
        ctx.tenant_key = Text::new(plain, action.operator.tenant_key.as_deref());
        Ok(Job::Card { future: handler(ctx, action), style: CardStyle::Legacy })
    }

    /// The waiting part of a delivery: stores the app_ticket, takes the dedup mark, runs the
    /// handler; releases the mark when the handler fails so the platform's retry is dispatched.
    async fn finish(&self, job: Job) -> Result<Outcome, EventError> {
        match job {
            Job::Done(outcome) => Ok(outcome),
            Job::Card { future, style } => {
                let event_type = match style {
                    CardStyle::Legacy => LEGACY_CARD_ACTION,
                    _ => CARD_ACTION_TRIGGER,
                };
                Ok(Outcome::Replied(guarded(future, event_type).await?.to_body(style)))
            }
            Job::Preview { future } => {
                Ok(Outcome::Replied(guarded(future, URL_PREVIEW_GET).await?.to_body()))
            }
            Job::Event { future, event_type, dedup, callback } => {
                let outcome = self.run(future, &event_type, dedup).await?;
                Ok(match outcome {
                    Outcome::Handled if callback => Outcome::Replied(Bytes::from_static(EMPTY_OBJECT)),
                    other => other,
                })
            }
            Job::Ticket { app_id, ticket, then } => {
                self.store_app_ticket(&app_id, &ticket).await?;
                // Boxed: a future cannot hold itself (taken only by app_ticket events).
                Box::pin(self.finish((*then)?)).await
            }
        }
    }

    async fn store_app_ticket(&self, app_id: &str, ticket: &str) -> Result<(), EventError> {
        let Some(store) = &self.inner.ticket_store else {
            tracing::warn!(
                app_id,
                "app_ticket received but the dispatcher has no client or token store to keep it"
            );
            return Ok(());
        };
        store.set(&app_ticket_key(app_id), ticket, APP_TICKET_TTL).await.map_err(|e| {
            tracing::warn!(app_id, error = %e, "could not store the app_ticket; answering 503 so the platform retries");
            EventError::new(EventErrorKind::Store).with_source(e)
        })?;
        tracing::debug!(app_id, "stored the app_ticket");
        Ok(())
    }

    /// Takes the dedup mark (when there is a key) and runs the handler's future.
    async fn run(
        &self,
        future: HandlerFuture<()>,
        event_type: &str,
        dedup: Option<String>,
    ) -> Result<Outcome, EventError> {
        let mark = match (&self.inner.dedup, dedup) {
            (Some((store, ttl)), Some(key)) => {
                let first = store.insert_if_absent(&key, "1", *ttl).await.map_err(|e| {
                    tracing::warn!(error = %e, "dedup store failed; answering 503 so the platform retries");
                    EventError::new(EventErrorKind::Store).with_source(e)
                })?;
                if !first {
                    let event_id = key.strip_prefix(DEDUP_PREFIX).unwrap_or_default();
                    tracing::debug!(event_id, "duplicate delivery not dispatched");
                    return Ok(Outcome::Duplicate);
                }
                Some(DedupMark { store: Some(store.clone()), key })
            }
            _ => None,
        };
        match guarded(future, event_type).await {
            Ok(()) => {
                if let Some(mut mark) = mark {
                    mark.keep();
                }
                Ok(Outcome::Handled)
            }
            Err(e) => {
                if let Some(mut mark) = mark {
                    mark.release().await;
                }
                Err(e)
            }
        }
    }
}

/// What is left of a delivery once it is verified, routed and decoded: the parts that wait.
enum Job {
    /// Nothing to wait for.
    Done(Outcome),
    /// An event handler's future, with its dedup key (when deduplicated).
    Event { future: HandlerFuture<()>, event_type: Arc<str>, dedup: Option<String>, callback: bool },
    /// A card action handler's future.
    Card { future: HandlerFuture<CardResponse>, style: CardStyle },
    /// A link preview handler's future.
    Preview { future: HandlerFuture<UrlPreviewResponse> },
    /// An app_ticket to store, then what comes after it (the ticket is stored even when the
    /// event then fails to decode).
    Ticket { app_id: String, ticket: String, then: Box<Result<Job, EventError>> },
}

/// When a typed handler's closure is called.
#[derive(Clone, Copy)]
enum Start {
    /// Now, while the delivery is prepared (its future is awaited later, in `finish`).
    Now,
    /// When its future is first polled: after the dedup mark is taken or the app_ticket stored,
    /// so a duplicate delivery, or one whose ticket could not be stored, runs none of the
    /// user's code.
    Deferred,
}

/// A dedup mark taken for a delivery whose handler is running. It is kept when the handler
/// succeeds and released when it fails, so the platform's retry is dispatched. When the
/// delivery is abandoned mid-way (the webhook request was dropped, the long connection's ack
/// timeout cancelled the handler), dropping the guard releases the mark in the background.
struct DedupMark {
    store: Option<Arc<dyn TokenStore>>,
    key: String,
}

impl DedupMark {
    fn keep(&mut self) {
        self.store = None;
    }

    async fn release(&mut self) {
        if let Some(store) = self.store.take() {
            if let Err(err) = store.delete(&self.key).await {
                tracing::warn!(error = %err, "could not release the dedup mark of a failed event");
            }
        }
    }
}

impl Drop for DedupMark {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else { return };
        let key = std::mem::take(&mut self.key);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(err) = store.delete(&key).await {
                        tracing::warn!(error = %err, "could not release the dedup mark of an abandoned event");
                    }
                });
            }
            Err(_) => tracing::warn!(
                "the dedup mark of an abandoned event is kept until its TTL: no runtime to release it"
            ),
        }
    }
}

/// Awaits a handler, turning its error or panic into a [`EventErrorKind::Handler`] error.
async fn guarded<T>(future: HandlerFuture<T>, event_type: &str) -> Result<T, EventError> {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::warn!(event_type, error = %e, "event handler failed; answering 500 so the platform retries");
            Err(EventError::new(EventErrorKind::Handler).with_source(e))
        }
        Err(_) => {
            tracing::error!(event_type, "event handler panicked; answering 500 so the platform retries");
            Err(EventError::new(EventErrorKind::Handler).with_detail("the handler panicked"))
        }
    }
}

/// The future of a user's handler for one event; see [`Start`].
fn start_handler<T, F, Fut>(handler: &Arc<F>, ctx: EventContext, event: T, start: Start) -> HandlerFuture<()>
where
    T: Send + 'static,
    F: Fn(EventContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    match start {
        // A panic in the closure itself is carried into the future, where `guarded` turns it
        // into a 500 as it does for a panic while the future runs.
        Start::Now => match std::panic::catch_unwind(AssertUnwindSafe(|| handler(ctx, event))) {
            Ok(future) => Box::pin(future),
            Err(panic) => Box::pin(async move { std::panic::resume_unwind(panic) }),
        },
        Start::Deferred => {
            let handler = handler.clone();
            Box::pin(async move { handler(ctx, event).await })
        }
    }
}

impl<B> tower::Service<Request<B>> for EventDispatcher
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        let this = self.clone();
        ResponseFuture { inner: Box::pin(async move { Ok(this.handle_request(req).await.map(Full::new)) }) }
    }
}

/// The answer of the `tower::Service` implementation.
type ServiceResult = Result<Response<Full<Bytes>>, Infallible>;

/// The future of [`EventDispatcher`]'s `tower::Service` implementation.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = ServiceResult> + Send>>,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl Future for ResponseFuture {
    type Output = ServiceResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// Settings and handlers of an [`EventDispatcher`]; see [`EventDispatcher::builder`].
pub struct EventDispatcherBuilder {
    encrypt_key: Option<SecretString>,
    verification_token: Option<SecretString>,
    body_limit: usize,
    replay_window: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    dedup_ttl: Option<Duration>,
    store: Option<Arc<dyn TokenStore>>,
    client: Option<Client>,
    handlers: HashMap<Box<str>, EventHandler>,
    card: Option<CardHandler>,
    preview: Option<PreviewHandler>,
    errors: Vec<String>,
}

impl fmt::Debug for EventDispatcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventDispatcherBuilder")
            .field("encrypt_key", &self.encrypt_key)
            .field("verification_token", &self.verification_token)
            .field("body_limit", &self.body_limit)
            .field("replay_window", &self.replay_window)
            .field("dedup_ttl", &self.dedup_ttl)
            .finish_non_exhaustive()
    }
}

impl EventDispatcherBuilder {
    /// The Encrypt Key from the developer console: encrypted bodies are decrypted, and every
    /// event must carry a valid `X-Lark-Signature` (SHA-256 over the raw body).
    pub fn encrypt_key(mut self, key: impl Into<SecretString>) -> Self {
        self.encrypt_key = Some(key.into());
        self
    }

    /// The Verification Token from the developer console: checked on every event and URL check,
    /// and the key of old-style card signatures (SHA-1).
    pub fn verification_token(mut self, token: impl Into<SecretString>) -> Self {
        self.verification_token = Some(token.into());
        self
    }

    /// The largest body accepted (default [`DEFAULT_BODY_LIMIT`], 1 MiB); larger bodies get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Refuses (401) deliveries whose `X-Lark-Request-Timestamp` is further than `window` from
    /// now, or missing (URL checks without one are let through). Off by default.
    pub fn replay_window(mut self, window: Duration) -> Self {
        self.replay_window = Some(window);
        self
    }

    /// The clock of the replay window (default the system clock; tests use a
    /// [`ManualClock`](lark_auth::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Dispatches each event (by `event_id`, or `uuid` for 1.0) once, keeping marks for
    /// [`DEFAULT_DEDUP_TTL`]. Marks live in the token store, so instances sharing a Redis store
    /// deduplicate together. Callbacks are never deduplicated (each delivery needs its answer).
    pub fn dedup(self) -> Self {
        self.dedup_ttl(DEFAULT_DEDUP_TTL)
    }

    /// Like [`dedup`](Self::dedup), keeping marks for `ttl`.
    pub fn dedup_ttl(mut self, ttl: Duration) -> Self {
        self.dedup_ttl = Some(ttl);
        self
    }

    /// Where app_tickets and dedup marks go (default: the [`client`](Self::client)'s store; a
    /// new in-process store for dedup when there is neither).
    pub fn token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The client handlers get in their [`EventContext`]; its token store also receives the
    /// app_tickets, so a marketplace client sharing that store can mint tokens.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    fn register(mut self, event_type: &str, handler: EventHandler) -> Self {
        if self.handlers.insert(event_type.into(), handler).is_some() {
            self.errors.push(format!("two handlers are registered for `{event_type}`"));
        }
        self
    }

    /// Registers a typed handler for the event type `E::EVENT_TYPE`.
    ///
    /// ```no_run
    /// # fn demo(b: lark_events::EventDispatcherBuilder) -> lark_events::EventDispatcherBuilder {
    /// #[derive(serde::Deserialize)]
    /// struct ChatDisbanded { chat_id: String }
    /// impl lark_events::Event for ChatDisbanded { const EVENT_TYPE: &'static str = "im.chat.disbanded_v1"; }
    ///
    /// b.on::<ChatDisbanded, _, _>(|ctx, event| async move {
    ///     println!("{} disbanded (tenant {:?})", event.chat_id, ctx.tenant_key());
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub fn on<E, F, Fut>(self, handler: F) -> Self
    where
        E: Event,
        F: Fn(EventContext, E) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: EventHandler = Arc::new(move |ctx, payload, start| {
            let event: E = payload.decode()?;
            Ok(start_handler(&handler, ctx, event, start))
        });
        self.register(E::EVENT_TYPE, erased)
    }

    /// Registers a handler for any event type, given the `event` object as JSON (for types with
    /// no typed model, e.g. custom or newer events).
    pub fn on_raw<F, Fut>(self, event_type: impl AsRef<str>, handler: F) -> Self
    where
        F: Fn(EventContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: EventHandler = Arc::new(move |ctx, payload, start| {
            let event: Value = serde_json::from_str(payload.event)
                .map_err(|e| EventError::malformed("the event is not JSON").with_source(e))?;
            Ok(start_handler(&handler, ctx, event, start))
        });
        self.register(event_type.as_ref(), erased)
    }

    /// Registers the card action handler, for both `card.action.trigger` callbacks and
    /// old-style card callbacks. Its [`CardResponse`] is the answer: a toast, a new card, both,
    /// or nothing.
    pub fn on_card_action<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(EventContext, CardAction) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<CardResponse, BoxError>> + Send + 'static,
    {
        if self.card.is_some() {
            self.errors.push("two card action handlers are registered".to_owned());
        }
        self.card = Some(Arc::new(move |ctx, action| Box::pin(handler(ctx, action))));
        self
    }

    /// Registers the link preview handler (`url.preview.get`).
    pub fn on_url_preview<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(EventContext, UrlPreview) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<UrlPreviewResponse, BoxError>> + Send + 'static,
    {
        if self.preview.is_some() {
            self.errors.push("two link preview handlers are registered".to_owned());
        }
        self.preview = Some(Arc::new(move |ctx, preview| Box::pin(handler(ctx, preview))));
        self
    }

    /// Checks the settings and builds the dispatcher.
    pub fn build(mut self) -> Result<EventDispatcher, LarkError> {
        if self.card.is_some() && self.handlers.contains_key(CARD_ACTION_TRIGGER) {
            self.errors.push(format!("`{CARD_ACTION_TRIGGER}` has both on_card_action and another handler"));
        }
        if self.preview.is_some() && self.handlers.contains_key(URL_PREVIEW_GET) {
            self.errors.push(format!("`{URL_PREVIEW_GET}` has both on_url_preview and another handler"));
        }
        if self.encrypt_key.as_ref().is_some_and(SecretString::is_empty) {
            self.errors.push("the encrypt key is empty: leave it unset when the app has none".to_owned());
        }
        if self.verification_token.as_ref().is_some_and(SecretString::is_empty) {
            self.errors
                .push("the verification token is empty: leave it unset when the app has none".to_owned());
        }
        if self.body_limit == 0 {
            self.errors.push("the body limit must be greater than zero".to_owned());
        }
        if self.dedup_ttl.is_some_and(|t| t.is_zero()) {
            self.errors.push("the dedup TTL must be greater than zero".to_owned());
        }
        if let Some(first) = self.errors.into_iter().next() {
            return Err(ConfigError::new(first).into());
        }
        let store = self.store.or_else(|| self.client.as_ref().map(|c| c.tokens().store().clone()));
        let dedup = self.dedup_ttl.map(|ttl| {
            let store = store.clone().unwrap_or_else(|| Arc::new(MemoryStore::new()) as Arc<dyn TokenStore>);
            (store, ttl)
        });
        let handlers = self
            .handlers
            .into_iter()
            .map(|(name, handler)| {
                let event_type = Arc::from(&*name);
                (name, Registered { event_type, handler })
            })
            .collect();
        Ok(EventDispatcher {
            inner: Arc::new(Inner {
                cipher: self.encrypt_key.as_ref().map(|k| Cipher::new(k.expose_secret())),
                encrypt_key: self.encrypt_key,
                verification_token: self.verification_token,
                body_limit: self.body_limit,
                replay_window: self.replay_window,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                dedup,
                ticket_store: store,
                client: self.client,
                handlers,
                card: self.card,
                preview: self.preview,
                names: Names {
                    card_trigger: Arc::from(CARD_ACTION_TRIGGER),
                    preview: Arc::from(URL_PREVIEW_GET),
                    legacy_card: Arc::from(LEGACY_CARD_ACTION),
                },
            }),
        })
    }
}
