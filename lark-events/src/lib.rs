//! Events and card callbacks of the Feishu / Lark Open Platform.
//!
//! - [`crypto`]: decrypt and encrypt bodies, event (SHA-256) and old card (SHA-1) signatures,
//!   compared in constant time. Any input gives a value or a typed error, never a panic.
//! - [`EventDispatcher`]: verifies each delivery (body limit, signature over the raw bytes,
//!   verification token on every delivery, optional replay window), answers URL checks, stores
//!   app_tickets in the token store, deduplicates retried deliveries (optional, across instances
//!   through a shared store), and dispatches to async handlers: typed ([`Event`]), raw JSON,
//!   card actions (answered with a toast, a card or nothing) and link previews.
//! - It is a `tower::Service<http::Request<B>>` with `Error = Infallible`; `lark-adapters` mounts
//!   it in axum, actix-web and warp. [`EventDispatcher::handle_plain`] feeds it plain JSON from
//!   an already-authenticated source (the long connection).
//! - `ws` (feature `ws`): the long-connection (WebSocket) client, which feeds deliveries to the
//!   same dispatcher and acks them: no public URL needed.
//!
//! Replies follow the platform: the challenge for URL checks; 200 `{"msg":"success"}` for
//! handled events and for types with no handler; the callback's JSON for card actions and link
//! previews; 500 when a handler fails (the platform retries); 401 for a bad signature, token or
//! timestamp; 400 for malformed input; 413 for a body over the limit.
//!
//! ```no_run
//! use lark_events::{EventDispatcher, Event};
//!
//! #[derive(serde::Deserialize)]
//! struct MessageReceived {
//!     message: Message,
//! }
//! #[derive(serde::Deserialize)]
//! struct Message {
//!     message_id: String,
//!     content: String,
//! }
//! impl Event for MessageReceived {
//!     const EVENT_TYPE: &'static str = "im.message.receive_v1";
//! }
//!
//! # fn demo() -> Result<(), lark_types::LarkError> {
//! let client = lark_services::Client::builder("cli_a1b2c3d4e5f6a7b8", "app-secret").build()?;
//! let dispatcher = EventDispatcher::builder()
//!     .encrypt_key("encrypt-key")
//!     .verification_token("verification-token")
//!     .client(client)
//!     .on::<MessageReceived, _, _>(|ctx, event| async move {
//!         let client = ctx.client().ok_or("no client")?;
//!         client
//!             .post("/open-apis/im/v1/messages/:message_id/reply")
//!             .path_param("message_id", event.message.message_id)
//!             .json(&serde_json::json!({"msg_type": "text", "content": event.message.content}))
//!             .send_json()
//!             .await?;
//!         Ok(())
//!     })
//!     .build()?;
//! // Mount `dispatcher` with lark-adapters (axum, actix-web, warp) or any tower server.
//! # let _ = dispatcher; Ok(()) }
//! ```

mod card;
mod context;
pub mod crypto;
mod dispatcher;
mod envelope;
mod error;
mod event;
pub mod generated;
#[cfg(feature = "ws")]
pub mod ws;

pub use card::{
    ActionDetail, CallbackContext, Card, CardAction, CardResponse, CardStyle, InlinePreview, Operator,
    PreviewUrl, Toast, ToastKind, UrlPreview, UrlPreviewResponse,
};
pub use context::{EventContext, Schema, LEGACY_CARD_ACTION};
pub use dispatcher::{
    http_response, EventDispatcher, EventDispatcherBuilder, Outcome, ResponseFuture, CARD_ACTION_TRIGGER,
    DEFAULT_BODY_LIMIT, DEFAULT_DEDUP_TTL, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, URL_PREVIEW_GET,
};
pub use error::{EventError, EventErrorKind};
pub use event::Event;
pub use lark_types::BoxError;
