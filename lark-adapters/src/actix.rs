//! actix-web: [`configure`] serves the dispatcher on `POST /webhook/event` and
//! `POST /webhook/card`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;
use lark_events::{
    http_response, EventDispatcher, EventError, EventErrorKind, NONCE_HEADER, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};

use crate::{CARD_PATH, EVENT_PATH};

/// Registers `POST /webhook/event` and `POST /webhook/card` serving `dispatcher`; pass it to
/// `App::configure`. The dispatcher is captured, not stored as app data, so an app can mount
/// several (e.g. in different scopes).
///
/// ```no_run
/// # async fn demo(dispatcher: lark_events::EventDispatcher) -> std::io::Result<()> {
/// use actix_web::{App, HttpServer};
///
/// HttpServer::new(move || App::new().configure(lark_adapters::actix::configure(dispatcher.clone())))
///     .bind(("127.0.0.1", 8089))?
///     .run()
///     .await
/// # }
/// ```
pub fn configure(dispatcher: EventDispatcher) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        for path in [EVENT_PATH, CARD_PATH] {
            let dispatcher = dispatcher.clone();
            cfg.route(
                path,
                web::post().to(move |req: HttpRequest, payload: web::Payload| {
                    let dispatcher = dispatcher.clone();
                    async move { handle(dispatcher, req, payload).await }
                }),
            );
        }
    }
}

async fn handle(dispatcher: EventDispatcher, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    // actix-web speaks http 0.2: copy the three signature headers into an http 1 map.
    let mut headers = http::HeaderMap::new();
    for name in [TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER] {
        if let Some(value) = req.headers().get(name) {
            if let Ok(value) = http::HeaderValue::from_bytes(value.as_bytes()) {
                headers.insert(name, value);
            }
        }
    }
    let result = match read_limited(&req, payload, dispatcher.body_limit()).await {
        Ok(body) => dispatcher.handle_webhook(&headers, body).await,
        Err(e) => Err(e),
    };
    let answer = http_response(&result);
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = answer.headers().get(http::header::CONTENT_TYPE).map(|v| v.as_bytes().to_vec());
    let mut builder = HttpResponse::build(status);
    if let Some(ct) = content_type {
        builder.insert_header((actix_web::http::header::CONTENT_TYPE, ct));
    }
    builder.body(answer.into_body())
}

/// Reads the body, refusing it as soon as it is known to exceed `limit`.
async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<bytes::Bytes, EventError> {
    let too_large = || EventError::new(EventErrorKind::BodyTooLarge);
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            EventError::new(EventErrorKind::Malformed)
                .with_detail("the body could not be read")
                .with_source(e)
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
