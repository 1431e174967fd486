//! The accept loop, the per-request pipeline (count, record, faults) and the router.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use lark_types::{codes, LOG_ID_HEADER, RATE_LIMIT_RESET_HEADER};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, decode_segment, UploadKind};
use crate::auth;
use crate::fault::FaultKind;
use crate::record::RecordedRequest;
use crate::reply::{self, Reply};
use crate::state::{Auth, State, MAX_RECORDED_BODY};

/// Largest request body the server reads.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The service's error: makes hyper close the connection without replying.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by the fake platform")
    }
}

impl std::error::Error for DropConnection {}

/// Accepts connections until `shutdown` flips (or its sender is dropped), serving each with
/// HTTP/1.1 (keep-alive) or HTTP/2: h2c on plain TCP, by ALPN under `tls`.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    http1_only: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if http1_only {
        builder = builder.http1_only();
    }
    let builder = Arc::new(builder);
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE: back off a little instead of spinning.
                    tracing::debug!(error = %e, "lark-testkit: accept failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let close = state.count_connection();
        let (state, builder, shutdown) = (state.clone(), builder.clone(), shutdown.clone());
        match &tls {
            None => {
                tokio::spawn(serve_connection(stream, state, builder, shutdown, close));
            }
            Some(acceptor) => {
                let accept = acceptor.accept(stream);
                tokio::spawn(async move {
                    match accept.await {
                        Ok(stream) => serve_connection(stream, state, builder, shutdown, close).await,
                        Err(e) => tracing::trace!(error = %e, "lark-testkit: TLS handshake failed"),
                    }
                });
            }
        }
    }
}

/// Serves one connection until it ends, the server shuts down, or `close` asks it to close
/// (gracefully: a request in flight gets its reply first).
async fn serve_connection<IO>(
    io: IO,
    state: Arc<State>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut shutdown: watch::Receiver<bool>,
    mut close: watch::Receiver<u64>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(state.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        _ = close.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::trace!(error = %e, "lark-testkit: connection ended with an error");
    }
}

/// Handles one request: count, read the body, record, apply a fault, route, stamp the log id.
async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Reply, DropConnection> {
    let (parts, body) = req.into_parts();
    state.count_request(parts.uri.path());
    let (body, too_large) = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => (Bytes::new(), true),
        // The client went away mid-body: nobody to answer.
        Err(_) => return Err(DropConnection),
    };
    let auth = state.authenticate(&parts.headers);
    state.record(RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body: if body.len() > MAX_RECORDED_BODY {
            // Copied so that the record does not pin the whole (up to 64 MiB) buffer.
            Bytes::copy_from_slice(&body[..MAX_RECORDED_BODY])
        } else {
            body.clone()
        },
        tenant_key: match &auth {
            Auth::Tenant(t) => Some(t.to_string()),
            _ => None,
        },
    });

    let mut reply = if too_large {
        reply::code(StatusCode::PAYLOAD_TOO_LARGE, reply::FIELD_VALIDATION_FAILED, "request body too large")
    } else {
        match state.take_fault(parts.uri.path()) {
            None => route(&state, &parts, auth, body).await,
            Some(FaultKind::Delay(d)) => {
                tokio::time::sleep(d).await;
                route(&state, &parts, auth, body).await
            }
            Some(FaultKind::DropConnection) => return Err(DropConnection),
            Some(FaultKind::Status(status)) => reply::code(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                i64::from(status),
                "injected",
            ),
            Some(FaultKind::RateLimit(reset)) => {
                let mut r = reply::code(
                    StatusCode::TOO_MANY_REQUESTS,
                    codes::RATE_LIMITED,
                    "request trigger frequency limit",
                );
                r.headers_mut().insert(RATE_LIMIT_RESET_HEADER, HeaderValue::from(reset));
                r
            }
            Some(FaultKind::ApiError(c, msg)) => {
                let status = if reply::is_token_code(c) { StatusCode::BAD_REQUEST } else { StatusCode::OK };
                reply::code(status, c, &msg)
            }
        }
    };
    if let Ok(log_id) = HeaderValue::try_from(state.next_log_id()) {
        reply.headers_mut().insert(LOG_ID_HEADER, log_id);
    }
    Ok(reply)
}

/// The routes that need a token.
enum Route<'a> {
    SendMessage,
    ReplyMessage(&'a str),
    GetUser(&'a str),
    ListUsers,
    Upload(UploadKind),
    DownloadImage(&'a str),
    DownloadFile(&'a str),
}

/// The single, non-empty path segment after `prefix`.
fn segment_after<'a>(rest: &'a str, prefix: &str) -> Option<&'a str> {
    rest.strip_prefix(prefix).filter(|s| !s.is_empty() && !s.contains('/'))
}

impl<'a> Route<'a> {
    fn parse(method: &Method, rest: &'a str) -> Option<Route<'a>> {
        let route = match (method, rest) {
            (&Method::POST, "im/v1/messages") => Route::SendMessage,
            (&Method::GET, "contact/v3/users") => Route::ListUsers,
            (&Method::POST, "im/v1/images") => Route::Upload(UploadKind::Image),
            (&Method::POST, "im/v1/files") => Route::Upload(UploadKind::File),
            (&Method::POST, _) => {
                let id = rest.strip_suffix("/reply").and_then(|r| segment_after(r, "im/v1/messages/"))?;
                Route::ReplyMessage(id)
            }
            (&Method::GET, _) => {
                if let Some(id) = segment_after(rest, "contact/v3/users/") {
                    Route::GetUser(id)
                } else if let Some(key) = segment_after(rest, "im/v1/images/") {
                    Route::DownloadImage(key)
                } else {
                    Route::DownloadFile(segment_after(rest, "im/v1/files/")?)
                }
            }
            _ => return None,
        };
        Some(route)
    }
}

async fn route(state: &State, parts: &Parts, auth: Auth, body: Bytes) -> Reply {
    let path = parts.uri.path();
    if path == lark_events::ws::BOOTSTRAP_PATH {
        return crate::ws::bootstrap(state, &parts.method, &body);
    }
    let Some(rest) = path.strip_prefix("/open-apis/") else {
        return reply::not_found();
    };
    if let Some(endpoint) = rest.strip_prefix("auth/v3/") {
        if parts.method != Method::POST {
            return reply::not_found();
        }
        return match endpoint {
            "app_access_token/internal" => auth::app_token_internal(state, &body),
            "tenant_access_token/internal" => auth::tenant_token_internal(state, &body),
            "app_access_token" => auth::app_token(state, &body),
            "tenant_access_token" => auth::tenant_token(state, &body),
            "app_ticket/resend" => auth::resend_ticket(state, &body),
            _ => reply::not_found(),
        };
    }
    if rest == "testkit/echo" || rest.starts_with("testkit/echo/") {
        // A token is optional here, but a bad one is refused like anywhere else.
        if let Auth::Invalid(c) = auth {
            return reply::token_error(c);
        }
        return api::echo(parts, &body, &auth);
    }
    let Some(route) = Route::parse(&parts.method, rest) else {
        return reply::not_found();
    };
    let tenant = match auth {
        Auth::Missing => return reply::token_error(codes::ACCESS_TOKEN_MISSING),
        Auth::Invalid(c) => return reply::token_error(c),
        Auth::Tenant(t) => Some(t),
        Auth::App | Auth::User => None,
    };
    let query = parts.uri.query();
    match route {
        Route::SendMessage => api::send_message(state, query, &body, tenant.as_ref()),
        Route::ReplyMessage(id) => api::reply_message(state, &decode_segment(id), &body, tenant.as_ref()),
        Route::GetUser(id) => api::get_user(state, &decode_segment(id), query),
        Route::ListUsers => api::list_users(state, query),
        Route::Upload(kind) => api::upload(state, parts, body, kind).await,
        Route::DownloadImage(key) => api::download_image(state, &decode_segment(key)),
        Route::DownloadFile(key) => api::download_file(state, &decode_segment(key)),
    }
}
