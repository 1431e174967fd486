//! `ceiling`: how close to the bare client any client doing the SDK's per-call work can get.
//!
//! Four sides take turns in chunks (as in `overhead`), each call boxed once on every side:
//! - `bare`: the `overhead` bare hyper-util client (fixed `Authorization`, whole reply into `Value`);
//! - `minimal`: the same hyper-util client, plus the least a token-handling SDK must do per call:
//!   the URL built from the base and the path, the header from a cache behind a lock, one timeout
//!   timer, and `data` decoded from the envelope;
//! - `fused`: the SDK's per-call work written as one future, without layers: the request built
//!   from an `ApiRequest`, a copy kept for a retry, the token picked from the request's
//!   `AuthOptions` and read from the `TokenManager`, a `lark.request` span, one timer for both
//!   timeouts, the reply read by `HttpClient` and tagged with its code, the token-refused check,
//!   and the envelope decoded;
//! - `sdk`: `Client::get(..).send_json()`, the full stack.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::HeaderValue;
use lark_auth::TokenChoice;
use lark_services::Client;
use lark_transport::{ApiRequest, BaseUrl, HttpClient, ReplyCode};
use lark_types::{codes, AccessTokenTypes, AuthOptions};
use serde_json::json;
use tower::Service;

use crate::{bare_side, drive, Target, Totals, CHUNK, USER_PATH};

type BoxBool = Pin<Box<dyn Future<Output = bool> + Send>>;
type Side = Arc<dyn Fn() -> BoxBool + Send + Sync>;

/// The timeout every side but `bare` arms per call.
const TIMEOUT: Duration = Duration::from_secs(30);

fn boxed<F, Fut>(call: F) -> Side
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    Arc::new(move || Box::pin(call()) as BoxBool)
}

/// `{code, data}` only, as any SDK must read.
#[derive(serde::Deserialize)]
struct Envelope {
    code: i64,
    data: Option<serde_json::Value>,
}

fn minimal(t: &Target, auth: &str, c: usize) -> Result<Side, String> {
    let base = BaseUrl::parse(&t.base_url).map_err(|e| e.to_string())?;
    let mut value = HeaderValue::from_str(auth).map_err(|e| e.to_string())?;
    value.set_sensitive(true);
    let cache = Arc::new(RwLock::new(value));
    let client = crate::bare_client(c);
    Ok(boxed(move || {
        let req = ApiRequest::new(http::Method::GET, USER_PATH).build_at(&base);
        let value = cache.read().ok().map(|v| v.clone());
        let client = client.clone();
        async move {
            let (Ok(req), Some(value)) = (req, value) else { return false };
            let (mut parts, _) = req.into_parts();
            parts.headers.insert(http::header::AUTHORIZATION, value);
            let req = http::Request::from_parts(parts, http_body_util::Full::new(bytes::Bytes::new()));
            let call = async move {
                use http_body_util::BodyExt;
                let resp = client.request(req).await.ok()?;
                let bytes = resp.into_body().collect().await.ok()?.to_bytes();
                let envelope: Envelope = serde_json::from_slice(&bytes).ok()?;
                (envelope.code == 0).then_some(envelope.data)
            };
            matches!(tokio::time::timeout(TIMEOUT, call).await, Ok(Some(_)))
        }
    }))
}

fn fused(t: &Target, sdk: &Client) -> Result<Side, String> {
    let base = BaseUrl::parse(&t.base_url).map_err(|e| e.to_string())?;
    let http = HttpClient::new().map_err(|e| e.to_string())?;
    let tokens = sdk.tokens().clone();
    Ok(boxed(move || {
        let req = ApiRequest::new(http::Method::GET, USER_PATH).build_at(&base);
        let (mut http, tokens) = (http.clone(), tokens.clone());
        async move {
            let Ok(mut req) = req else { return false };
            let span = tracing::debug_span!("lark.request", http.method = %req.method(), url.path = req.uri().path());
            let timer = tokio::time::sleep(TIMEOUT);
            let again = lark_transport::try_clone_request(&req);
            let default = AuthOptions::accepting(AccessTokenTypes::TENANT);
            let opts = req.extensions().get::<AuthOptions>().unwrap_or(&default);
            let Ok(TokenChoice::Managed { kind, tenant_key }) =
                lark_auth::choose_token(opts, tokens.app_type())
            else {
                return false;
            };
            let Some(token) = tokens.cached_access_token(kind, tenant_key.as_deref()) else { return false };
            req.headers_mut().insert(http::header::AUTHORIZATION, token.header_value().clone());
            let reply = tokio::select! {
                biased;
                reply = http.call(req) => reply,
                _ = timer => return false,
            };
            drop(again);
            let Ok(resp) = reply else { return false };
            let _entered = span.enter();
            if resp.extensions().get::<ReplyCode>().is_some_and(|c| codes::is_token_invalid(c.0)) {
                return false;
            }
            let (parts, body) = resp.into_parts();
            let Ok(bytes) = body.into_bytes() else { return false };
            lark_transport::decode_bytes::<serde_json::Value>(&bytes, parts.status.as_u16(), &parts.headers)
                .is_ok()
        }
    }))
}

/// Runs the four sides in rotating chunks; ratios against `bare`.
pub(crate) async fn ceiling(t: &Target, n: usize, c: usize) -> Result<serde_json::Value, String> {
    let auth = format!("Bearer {}", crate::fetch_token(t).await?);
    let sdk = crate::warm_client(t).await?;
    let sdk_side = {
        let sdk = sdk.clone();
        boxed(move || {
            let sdk = sdk.clone();
            async move { sdk.get(USER_PATH).send_json().await.is_ok() }
        })
    };
    let sides: [(&str, Side); 4] = [
        ("bare", {
            let bare = bare_side(t, &auth, c)?;
            boxed(move || bare.call())
        }),
        ("minimal", minimal(t, &auth, c)?),
        ("fused", fused(t, &sdk)?),
        ("sdk", sdk_side),
    ];
    // For profiling one side alone (e.g. under callgrind): LARK_BENCH_ONLY=bare|minimal|fused|sdk.
    if let Ok(name) = std::env::var("LARK_BENCH_ONLY") {
        let (name, side) =
            sides.into_iter().find(|(s, _)| *s == name).ok_or("unknown side in LARK_BENCH_ONLY")?;
        return Ok(crate::only(name, drive(n, c, move || side()).await));
    }
    for (_, side) in &sides {
        let side = side.clone();
        drive(CHUNK.min(n), c, move || side()).await;
    }
    let chunk = n.min(CHUNK);
    let mut totals: Vec<Totals> = sides.iter().map(|_| Totals::default()).collect();
    for round in 0..n.div_ceil(chunk) {
        let calls = chunk.min(n - round * chunk);
        for k in 0..sides.len() {
            let i = (k + round) % sides.len();
            let side = sides[i].1.clone();
            totals[i].add(drive(calls, c, move || side()).await);
        }
    }
    let runs: Vec<_> = totals.into_iter().map(Totals::finish).collect();
    let bare_rate = runs[0].req_per_s;
    let mut out = serde_json::Map::new();
    out.insert("scenario".into(), json!("ceiling"));
    out.insert("requests".into(), json!(n));
    out.insert("concurrency".into(), json!(c));
    let mut errors = 0;
    for ((name, _), run) in sides.iter().zip(&runs) {
        out.insert(format!("{name}_req_per_s"), json!(run.req_per_s.round()));
        out.insert(format!("{name}_cpu_us_per_req"), json!((run.cpu_us_per_req * 10.0).round() / 10.0));
        if *name != "bare" {
            out.insert(format!("{name}_ratio"), json!((run.req_per_s / bare_rate * 1000.0).round() / 1000.0));
        }
        errors += run.errors;
    }
    out.insert("errors".into(), json!(errors));
    Ok(serde_json::Value::Object(out))
}
