//! The long connection (WebSocket) event client: events and callbacks with no public URL, for
//! self-built apps. Feature `ws`.
//!
//! [`WsClient`] bootstraps with `POST /callback/ws/endpoint`, dials the URL it gets (rustls
//! with the ring provider for `wss://`), speaks protobuf [`Frame`]s, pings, reassembles
//! fragments, runs the same [`EventDispatcher`](crate::EventDispatcher) handlers as webhooks
//! concurrently, acks every message, reconnects, and stops gracefully through its
//! [`WsHandle`]. The [`frame`] module is the wire format, public for test servers such as
//! lark-testkit's.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lark_events::ws::{WsClient, WsState};
//! use lark_events::{CardResponse, EventDispatcher, ToastKind};
//!
//! let (app_id, app_secret) = ("cli_a1b2c3d4e5f6a7b8", "app-secret");
//! let client = lark_services::Client::builder(app_id, app_secret).build()?;
//! let dispatcher = EventDispatcher::builder()
//!     .client(client)
//!     .on_raw("im.message.receive_v1", |_ctx, event| async move {
//!         println!("{}", event["message"]["content"]);
//!         Ok(())
//!     })
//!     .on_card_action(|_ctx, _action| async move { Ok(CardResponse::toast(ToastKind::Success, "done")) })
//!     .build()?;
//! let handle = WsClient::builder(app_id, app_secret, dispatcher).build()?.start();
//! if handle.connected().await {
//!     assert_eq!(handle.state(), WsState::Connected);
//! }
//! tokio::signal::ctrl_c().await?;
//! handle.shutdown().await?;
//! # Ok(()) }
//! ```

mod client;
mod connect;
mod error;
mod fragments;
pub mod frame;
mod url;

pub use client::{
    WsClient, WsClientBuilder, WsHandle, WsState, DEFAULT_ACK_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_FRAGMENT_MEMORY, DEFAULT_FRAGMENT_TIME_LIMIT, DEFAULT_MAX_CONCURRENT_HANDLERS,
    DEFAULT_PING_INTERVAL, DEFAULT_RECONNECT_INTERVAL, DEFAULT_RECONNECT_NONCE, DEFAULT_STOP_TIMEOUT,
};
pub use connect::{
    AUTH_EXCEED_CONN_LIMIT, BOOTSTRAP_PATH, CODE_INTERNAL_ERROR, CODE_SYSTEM_BUSY, HANDSHAKE_AUTH_ERR_CODE,
    HANDSHAKE_MSG, HANDSHAKE_STATUS, STATUS_AUTH_FAILED, STATUS_FORBIDDEN,
};
pub use error::{WsError, WsErrorKind};
pub use frame::{Ack, ClientConfig, Frame, FrameError, Header};
