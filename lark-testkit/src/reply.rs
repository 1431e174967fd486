//! Building replies: JSON envelopes and the platform's error shapes.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use lark_types::codes;
use serde_json::{json, Value};

use crate::body::ReplyBody;

/// A reply of the fake platform.
pub(crate) type Reply = Response<ReplyBody>;

/// Field validation failed (bad or missing parameters).
pub(crate) const FIELD_VALIDATION_FAILED: i64 = 99992402;
/// A token endpoint got a body that is not a JSON object.
pub(crate) const BAD_REQUEST: i64 = 9499;
/// Wrong app_id / app_secret on a token endpoint.
pub(crate) const APP_SECRET_INVALID: i64 = 10014;
/// The user does not exist (or the app may not see it).
pub(crate) const NO_USER_AUTHORITY: i64 = 41050;
/// The image or file key is unknown.
pub(crate) const RESOURCE_NOT_FOUND: i64 = 234003;

const JSON: &str = "application/json; charset=utf-8";

/// A reply with a JSON body already serialised.
pub(crate) fn json_bytes(status: StatusCode, body: Bytes) -> Reply {
    let mut reply = Response::new(ReplyBody::full(body));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    reply
}

/// A reply with `value` as its JSON body.
pub(crate) fn json_value(status: StatusCode, value: &Value) -> Reply {
    json_bytes(status, Bytes::from(serde_json::to_vec(value).unwrap_or_default()))
}

/// `{"code": code, "msg": msg}`.
pub(crate) fn code(status: StatusCode, code: i64, msg: &str) -> Reply {
    json_value(status, &json!({"code": code, "msg": msg}))
}

/// `{"code": 0, "msg": "success", "data": data}`.
pub(crate) fn ok_data(data: Value) -> Reply {
    json_value(StatusCode::OK, &json!({"code": 0, "msg": "success", "data": data}))
}

/// HTTP 404 `{"code": 404, "msg": "not found"}`.
pub(crate) fn not_found() -> Reply {
    code(StatusCode::NOT_FOUND, 404, "not found")
}

/// HTTP 400 with code 99992402 and `error.field_violations`.
pub(crate) fn field_violations(violations: &[(&str, Cow<'_, str>)]) -> Reply {
    let list: Vec<Value> = violations
        .iter()
        .map(|(field, description)| json!({"field": field, "description": description}))
        .collect();
    json_value(
        StatusCode::BAD_REQUEST,
        &json!({
            "code": FIELD_VALIDATION_FAILED,
            "msg": "field validation failed",
            "error": {"field_violations": list},
        }),
    )
}

/// Whether `c` is a token code, replied with HTTP 400.
pub(crate) fn is_token_code(c: i64) -> bool {
    matches!(
        c,
        codes::ACCESS_TOKEN_MISSING
            | codes::TENANT_ACCESS_TOKEN_INVALID
            | codes::APP_ACCESS_TOKEN_INVALID
            | codes::USER_ACCESS_TOKEN_INVALID
            | codes::ACCESS_TOKEN_INVALID
    )
}

/// The reply to a request whose token is missing or invalid.
pub(crate) fn token_error(c: i64) -> Reply {
    let msg = match c {
        codes::ACCESS_TOKEN_MISSING => {
            "Missing access token for authorization. Please make a request with token attached."
        }
        codes::TENANT_ACCESS_TOKEN_INVALID => {
            "Invalid access token for authorization. Please make a request with token attached."
        }
        codes::APP_ACCESS_TOKEN_INVALID => {
            "Invalid app access token for authorization. Please make a request with token attached."
        }
        _ => "Invalid access token. Please make a request with a valid token attached.",
    };
    code(StatusCode::BAD_REQUEST, c, msg)
}
