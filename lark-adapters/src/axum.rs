//! axum: [`router`] serves the dispatcher on `POST /webhook/event` and `POST /webhook/card`.

use axum::routing::post_service;
use axum::Router;
use lark_events::EventDispatcher;

use crate::{CARD_PATH, EVENT_PATH};

/// A router serving `dispatcher` on `POST /webhook/event` and `POST /webhook/card` (other
/// methods get 405). Merge or nest it into your own router as needed.
///
/// ```no_run
/// # async fn demo(dispatcher: lark_events::EventDispatcher) -> std::io::Result<()> {
/// let app = lark_adapters::axum::router(dispatcher);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8089").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
pub fn router(dispatcher: EventDispatcher) -> Router {
    Router::new()
        .route(EVENT_PATH, post_service(dispatcher.clone()))
        .route(CARD_PATH, post_service(dispatcher))
}
