//! Mount a [`lark_events::EventDispatcher`] in a web framework in one line, serving
//! `POST /webhook/event` (events) and `POST /webhook/card` (card callbacks).
//!
//! | feature | framework | entry point |
//! |---|---|---|
//! | `axum` | axum 0.8 | [`axum::router`](crate::axum::router) → `axum::Router` |
//! | `actix` | actix-web 4 | [`actix::configure`](crate::actix::configure) → `App::configure(..)` |
//! | `warp` | warp 0.4 | [`warp::routes`](crate::warp::routes) → a `Filter` |
//!
//! Both paths go to the same dispatcher, which tells events, new-style and old-style card
//! callbacks apart by their content, so either URL can be given to the developer console.
//! Bodies are read up to the dispatcher's [`body_limit`](lark_events::EventDispatcher::body_limit)
//! (413 beyond); every answer is the dispatcher's (see `lark_events`). Each module's entry point
//! shows how to serve it.

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "warp")]
pub mod warp;

/// The path events are posted to.
pub const EVENT_PATH: &str = "/webhook/event";
/// The path card callbacks are posted to.
pub const CARD_PATH: &str = "/webhook/card";
