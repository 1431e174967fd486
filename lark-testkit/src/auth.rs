//! The token endpoints under `/open-apis/auth/v3/`.

use std::borrow::Cow;

use http::StatusCode;
use lark_types::codes;
use serde_json::{json, Map, Value};

use crate::reply::{self, Reply, APP_SECRET_INVALID, BAD_REQUEST};
use crate::state::{State, TokenKind, SELF_BUILT_TENANT};

/// Why a token endpoint refuses a request before looking at its specifics.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// The body is not a JSON object: HTTP 400, code 9499.
    NotJson,
    /// Wrong `app_id` / `app_secret`: HTTP 200, code 10014.
    BadCredentials,
}

impl Refusal {
    fn reply(self) -> Reply {
        match self {
            Refusal::NotJson => reply::code(
                StatusCode::BAD_REQUEST,
                BAD_REQUEST,
                "Bad Request: the body must be a JSON object",
            ),
            Refusal::BadCredentials => reply::code(StatusCode::OK, APP_SECRET_INVALID, "app secret invalid"),
        }
    }
}

/// Parses a token endpoint's body as a JSON object.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Refusal::NotJson),
    }
}

/// A string field of the body, empty when missing or not a string.
fn str_field<'a>(obj: &'a Map<String, Value>, name: &str) -> &'a str {
    obj.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Parses the body and checks `app_id` and `app_secret` against the configured app.
fn with_credentials(state: &State, body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    let obj = parse_object(body)?;
    if str_field(&obj, "app_id") == state.app_id && str_field(&obj, "app_secret") == state.app_secret {
        Ok(obj)
    } else {
        Err(Refusal::BadCredentials)
    }
}

fn token_reply(field: &str, token: &str, expire: u64) -> Reply {
    let mut obj = Map::with_capacity(4);
    obj.insert("code".into(), json!(0));
    obj.insert("msg".into(), json!("ok"));
    obj.insert(field.into(), json!(token));
    obj.insert("expire".into(), json!(expire));
    reply::json_value(StatusCode::OK, &Value::Object(obj))
}

/// `POST /open-apis/auth/v3/app_access_token/internal`.
pub(crate) fn app_token_internal(state: &State, body: &[u8]) -> Reply {
    if let Err(refusal) = with_credentials(state, body) {
        return refusal.reply();
    }
    let (token, expire) = state.issue_token(TokenKind::App { marketplace: false });
    token_reply("app_access_token", &token, expire)
}

/// `POST /open-apis/auth/v3/tenant_access_token/internal`.
pub(crate) fn tenant_token_internal(state: &State, body: &[u8]) -> Reply {
    if let Err(refusal) = with_credentials(state, body) {
        return refusal.reply();
    }
    let (token, expire) = state.issue_token(TokenKind::Tenant(SELF_BUILT_TENANT.into()));
    token_reply("tenant_access_token", &token, expire)
}

/// `POST /open-apis/auth/v3/app_access_token` (marketplace: needs the current app_ticket).
pub(crate) fn app_token(state: &State, body: &[u8]) -> Reply {
    let obj = match with_credentials(state, body) {
        Ok(obj) => obj,
        Err(refusal) => return refusal.reply(),
    };
    if !state.app_ticket_is_valid(str_field(&obj, "app_ticket")) {
        return reply::code(StatusCode::OK, codes::APP_TICKET_INVALID, "app_ticket is invalid");
    }
    let (token, expire) = state.issue_token(TokenKind::App { marketplace: true });
    token_reply("app_access_token", &token, expire)
}

/// `POST /open-apis/auth/v3/tenant_access_token` (marketplace: app token + tenant_key).
pub(crate) fn tenant_token(state: &State, body: &[u8]) -> Reply {
    let obj = match parse_object(body) {
        Ok(obj) => obj,
        Err(refusal) => return refusal.reply(),
    };
    let app_token = str_field(&obj, "app_access_token");
    if !matches!(state.token_kind(app_token), Some(TokenKind::App { marketplace: true })) {
        return reply::token_error(codes::APP_ACCESS_TOKEN_INVALID);
    }
    let tenant_key = str_field(&obj, "tenant_key");
    if tenant_key.is_empty() {
        return reply::field_violations(&[("tenant_key", Cow::Borrowed("tenant_key is required"))]);
    }
    let (token, expire) = state.issue_token(TokenKind::Tenant(tenant_key.into()));
    token_reply("tenant_access_token", &token, expire)
}

/// `POST /open-apis/auth/v3/app_ticket/resend` (only counted).
pub(crate) fn resend_ticket(state: &State, body: &[u8]) -> Reply {
    match with_credentials(state, body) {
        Ok(_) => reply::code(StatusCode::OK, 0, "ok"),
        Err(refusal) => refusal.reply(),
    }
}
