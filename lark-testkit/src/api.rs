//! The API routes: messages, contact users, image and file upload / download, echo.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use crate::body::ReplyBody;
use crate::record::{Upload, UploadedFile};
use crate::reply::{self, Reply, NO_USER_AUTHORITY, RESOURCE_NOT_FOUND};
use crate::state::{random_hex, Auth, Blob, State};
use crate::users::parse_page_token;

/// Default `page_size` of the user list.
const DEFAULT_PAGE_SIZE: usize = 10;
/// Largest `page_size` of the user list; bigger values are clamped to it.
const MAX_PAGE_SIZE: usize = 50;

const RECEIVE_ID_TYPES: [&str; 5] = ["open_id", "user_id", "union_id", "email", "chat_id"];
const MSG_TYPES: [&str; 11] = [
    "text",
    "post",
    "image",
    "file",
    "audio",
    "media",
    "sticker",
    "interactive",
    "share_chat",
    "share_user",
    "system",
];
const IMAGE_TYPES: [&str; 2] = ["message", "avatar"];
const FILE_TYPES: [&str; 7] = ["opus", "mp4", "pdf", "doc", "xls", "ppt", "stream"];

/// Characters that must be percent-encoded in an RFC 5987 `ext-value` (all but `attr-char`).
const RFC5987: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

type Violations<'a> = Vec<(&'a str, Cow<'static, str>)>;

/// The value of query parameter `name` (form-decoded), if present.
pub(crate) fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<Cow<'a, str>> {
    query?
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_form(key) == name).then(|| decode_form(value))
        })
        .next()
}

fn decode_form(s: &str) -> Cow<'_, str> {
    if s.contains('+') {
        let spaced = s.replace('+', " ");
        Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
    } else {
        percent_decode_str(s).decode_utf8_lossy()
    }
}

/// Percent-decodes one path segment.
pub(crate) fn decode_segment(s: &str) -> Cow<'_, str> {
    percent_decode_str(s).decode_utf8_lossy()
}

fn now_millis() -> String {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()).to_string()
}

/// A stable 64-bit FNV-1a hash, for deterministic fake chat ids.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

// ---- messages ----------------------------------------------------------------------------

/// Parses a message body and checks `msg_type` and `content`.
fn parse_message_body(body: &[u8], violations: &mut Violations<'_>) -> Map<String, Value> {
    let obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => obj,
        _ => {
            violations.push(("body", Cow::Borrowed("the body must be a JSON object")));
            return Map::new();
        }
    };
    match obj.get("msg_type").and_then(Value::as_str) {
        Some(t) if MSG_TYPES.contains(&t) => {}
        Some(_) => violations.push(("msg_type", Cow::Borrowed("unknown msg_type"))),
        None => violations.push(("msg_type", Cow::Borrowed("msg_type is required"))),
    }
    match obj.get("content") {
        Some(Value::String(content)) => {
            if !matches!(serde_json::from_str::<Value>(content), Ok(Value::Object(_))) {
                violations
                    .push(("content", Cow::Borrowed("content must be a JSON object serialised as a string")));
            }
        }
        Some(_) => violations.push(("content", Cow::Borrowed("content must be a string"))),
        None => violations.push(("content", Cow::Borrowed("content is required"))),
    }
    obj
}

fn message_data(
    state: &State,
    obj: &Map<String, Value>,
    message_id: &str,
    chat_id: &str,
    parent_id: Option<&str>,
    tenant: Option<&Arc<str>>,
) -> Value {
    let now = now_millis();
    let mut data = json!({
        "message_id": message_id,
        "chat_id": chat_id,
        "msg_type": obj.get("msg_type").cloned().unwrap_or(Value::Null),
        "create_time": now,
        "update_time": now,
        "deleted": false,
        "updated": false,
        "sender": {
            "id": state.app_id,
            "id_type": "app_id",
            "sender_type": "app",
            "tenant_key": tenant.map(|t| t.as_ref()),
        },
        "body": {"content": obj.get("content").cloned().unwrap_or(Value::Null)},
    });
    if let (Some(parent), Some(map)) = (parent_id, data.as_object_mut()) {
        map.insert("parent_id".into(), json!(parent));
        map.insert("root_id".into(), json!(parent));
    }
    data
}

/// Adds the bookkeeping fields to a recorded message body.
fn record_fields(
    mut obj: Map<String, Value>,
    message_id: &str,
    chat_id: &str,
    tenant: Option<&Arc<str>>,
) -> Map<String, Value> {
    obj.insert("message_id".into(), json!(message_id));
    obj.insert("chat_id".into(), json!(chat_id));
    if let Some(t) = tenant {
        obj.insert("tenant_key".into(), json!(t.as_ref()));
    }
    obj
}

/// `POST /open-apis/im/v1/messages?receive_id_type=...`.
pub(crate) fn send_message(
    state: &State,
    query: Option<&str>,
    body: &[u8],
    tenant: Option<&Arc<str>>,
) -> Reply {
    let mut violations = Violations::new();
    let receive_id_type = query_param(query, "receive_id_type");
    match receive_id_type.as_deref() {
        Some(t) if RECEIVE_ID_TYPES.contains(&t) => {}
        Some(_) => violations.push((
            "receive_id_type",
            Cow::Borrowed("receive_id_type must be one of open_id, user_id, union_id, email, chat_id"),
        )),
        None => violations.push(("receive_id_type", Cow::Borrowed("receive_id_type is required"))),
    }
    let obj = parse_message_body(body, &mut violations);
    let receive_id = obj.get("receive_id").and_then(Value::as_str).unwrap_or("");
    if receive_id.is_empty() && !violations.iter().any(|(f, _)| *f == "body") {
        violations.push(("receive_id", Cow::Borrowed("receive_id is required")));
    }
    if !violations.is_empty() {
        return reply::field_violations(&violations);
    }
    let receive_id_type = receive_id_type.unwrap_or_default();
    let message_id = format!("om_{}", random_hex(32));
    let chat_id = if receive_id_type == "chat_id" {
        receive_id.to_owned()
    } else {
        format!("oc_{:016x}", fnv(receive_id))
    };
    let data = message_data(state, &obj, &message_id, &chat_id, None, tenant);
    let mut record = record_fields(obj, &message_id, &chat_id, tenant);
    record.insert("receive_id_type".into(), json!(receive_id_type));
    state.push_message(&message_id, &chat_id, Value::Object(record));
    reply::ok_data(data)
}

/// `POST /open-apis/im/v1/messages/:message_id/reply`.
pub(crate) fn reply_message(state: &State, parent: &str, body: &[u8], tenant: Option<&Arc<str>>) -> Reply {
    let mut violations = Violations::new();
    if parent.is_empty() {
        violations.push(("message_id", Cow::Borrowed("message_id is required")));
    }
    let obj = parse_message_body(body, &mut violations);
    if !violations.is_empty() {
        return reply::field_violations(&violations);
    }
    let message_id = format!("om_{}", random_hex(32));
    let chat_id = state.chat_of_message(parent).unwrap_or_else(|| format!("oc_{:016x}", fnv(parent)));
    let data = message_data(state, &obj, &message_id, &chat_id, Some(parent), tenant);
    let mut record = record_fields(obj, &message_id, &chat_id, tenant);
    record.insert("reply_to".into(), json!(parent));
    state.push_message(&message_id, &chat_id, Value::Object(record));
    reply::ok_data(data)
}

// ---- contact users -----------------------------------------------------------------------

/// `GET /open-apis/contact/v3/users/:user_id?user_id_type=...`.
pub(crate) fn get_user(state: &State, id: &str, query: Option<&str>) -> Reply {
    let id_type = query_param(query, "user_id_type");
    let id_type = id_type.as_deref().unwrap_or("open_id");
    if !matches!(id_type, "open_id" | "user_id" | "union_id") {
        return reply::field_violations(&[(
            "user_id_type",
            Cow::Borrowed("user_id_type must be one of open_id, user_id, union_id"),
        )]);
    }
    match state.users.find(id, id_type) {
        Some(index) => reply::json_bytes(StatusCode::OK, state.users.reply(index)),
        None => reply::code(StatusCode::BAD_REQUEST, NO_USER_AUTHORITY, "no user authority error"),
    }
}

/// `GET /open-apis/contact/v3/users?page_size=&page_token=`.
pub(crate) fn list_users(state: &State, query: Option<&str>) -> Reply {
    let size = match query_param(query, "page_size") {
        None => DEFAULT_PAGE_SIZE,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n.min(MAX_PAGE_SIZE),
            _ => {
                return reply::field_violations(&[(
                    "page_size",
                    Cow::Borrowed("page_size must be a positive integer"),
                )])
            }
        },
    };
    let offset = match query_param(query, "page_token") {
        None => 0,
        Some(t) if t.is_empty() => 0,
        Some(t) => match parse_page_token(&t) {
            Some(offset) if offset <= state.users.len() => offset,
            _ => return reply::field_violations(&[("page_token", Cow::Borrowed("invalid page_token"))]),
        },
    };
    reply::json_bytes(StatusCode::OK, state.users.list_reply(offset, size))
}

// ---- uploads and downloads ---------------------------------------------------------------

/// Which upload route.
#[derive(Clone, Copy, Debug)]
pub(crate) enum UploadKind {
    /// `POST /open-apis/im/v1/images`.
    Image,
    /// `POST /open-apis/im/v1/files`.
    File,
}

/// Parses a `multipart/form-data` body into plain fields and file parts.
async fn parse_multipart(
    headers: &HeaderMap,
    body: Bytes,
    file_field: &str,
) -> Result<(Vec<(String, String)>, Vec<UploadedFile>), String> {
    let content_type =
        headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).ok_or("missing Content-Type")?;
    let boundary = multer::parse_boundary(content_type).map_err(|e| e.to_string())?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    let mut files = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        if file_name.is_some() || name == file_field {
            let content_type = field.content_type().map(|m| m.to_string());
            let data = field.bytes().await.map_err(|e| e.to_string())?;
            files.push(UploadedFile { field: name, file_name, content_type, data });
        } else {
            let text = field.text().await.map_err(|e| e.to_string())?;
            fields.push((name, text));
        }
    }
    Ok((fields, files))
}

fn field_value<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// `POST /open-apis/im/v1/images` and `POST /open-apis/im/v1/files`.
pub(crate) async fn upload(state: &State, parts: &Parts, body: Bytes, kind: UploadKind) -> Reply {
    let file_field = match kind {
        UploadKind::Image => "image",
        UploadKind::File => "file",
    };
    let (fields, files) = match parse_multipart(&parts.headers, body, file_field).await {
        Ok(parsed) => parsed,
        Err(e) => return reply::field_violations(&[("body", Cow::Owned(e))]),
    };
    let file = files.iter().find(|f| f.field == file_field);
    let mut violations = Violations::new();
    if file.is_none() {
        violations.push((file_field, Cow::Borrowed("the file part is required")));
    }
    let name = match kind {
        UploadKind::Image => {
            if !field_value(&fields, "image_type").is_some_and(|t| IMAGE_TYPES.contains(&t)) {
                violations.push(("image_type", Cow::Borrowed("image_type must be message or avatar")));
            }
            file.and_then(|f| f.file_name.clone())
        }
        UploadKind::File => {
            if !field_value(&fields, "file_type").is_some_and(|t| FILE_TYPES.contains(&t)) {
                violations.push((
                    "file_type",
                    Cow::Borrowed("file_type must be one of opus, mp4, pdf, doc, xls, ppt, stream"),
                ));
            }
            match field_value(&fields, "file_name") {
                Some(n) if !n.is_empty() => Some(n.to_owned()),
                _ => {
                    violations.push(("file_name", Cow::Borrowed("file_name is required")));
                    None
                }
            }
        }
    };
    let Some(file) = file.filter(|_| violations.is_empty()) else {
        return reply::field_violations(&violations);
    };
    let blob = Blob { name, content_type: file.content_type.clone(), data: file.data.clone() };
    let (key, data) = match kind {
        UploadKind::Image => {
            let key = format!("img_v3_{}", random_hex(24));
            let data = json!({ "image_key": key });
            (key, data)
        }
        UploadKind::File => {
            let key = format!("file_v3_{}", random_hex(24));
            let data = json!({ "file_key": key });
            (key, data)
        }
    };
    let upload = Upload { path: parts.uri.path().to_owned(), fields, files };
    state.push_upload(upload, &key, blob);
    reply::ok_data(data)
}

/// `Content-Disposition: attachment; filename="..."`, adding RFC 5987 `filename*` when the
/// name is not plain printable ASCII.
fn content_disposition(name: &str) -> HeaderValue {
    let plain = name.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' { c } else { '_' })
        .collect();
    let mut value = format!("attachment; filename=\"{fallback}\"");
    if !plain {
        value.push_str("; filename*=UTF-8''");
        value.extend(utf8_percent_encode(name, RFC5987));
    }
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn download_reply(body: ReplyBody, content_type: Option<&str>, name: Option<&str>) -> Reply {
    let mut reply = Response::new(body);
    let headers = reply.headers_mut();
    let content_type = content_type
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_TYPE, content_type);
    if let Some(name) = name {
        headers.insert(CONTENT_DISPOSITION, content_disposition(name));
    }
    reply
}

fn resource_not_found() -> Reply {
    reply::code(StatusCode::BAD_REQUEST, RESOURCE_NOT_FOUND, "resource not found")
}

/// `GET /open-apis/im/v1/images/:image_key`.
pub(crate) fn download_image(state: &State, key: &str) -> Reply {
    match state.blob(key) {
        Some(blob) => {
            download_reply(ReplyBody::full(blob.data), blob.content_type.as_deref(), blob.name.as_deref())
        }
        None => resource_not_found(),
    }
}

/// `GET /open-apis/im/v1/files/:file_key`; `size_<N>` keys stream N generated bytes.
pub(crate) fn download_file(state: &State, key: &str) -> Reply {
    if let Some(total) = key.strip_prefix("size_").and_then(|n| n.parse::<u64>().ok()) {
        let body = ReplyBody::Pattern { pattern: state.pattern.clone(), sent: 0, total };
        return download_reply(body, None, Some(&format!("size_{total}.bin")));
    }
    match state.blob(key) {
        Some(blob) => download_reply(ReplyBody::full(blob.data), None, blob.name.as_deref()),
        None => resource_not_found(),
    }
}

// ---- echo --------------------------------------------------------------------------------

/// `ANY /open-apis/testkit/echo/...`: what arrived, as data.
pub(crate) fn echo(parts: &Parts, body: &[u8], auth: &Auth) -> Reply {
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        if name == http::header::AUTHORIZATION {
            continue;
        }
        let joined = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(", ");
        headers.insert(name.as_str().to_owned(), Value::String(joined));
    }
    let (kind, tenant_key) = match auth {
        Auth::Tenant(t) => (Some("tenant"), Some(t.as_ref())),
        Auth::App => (Some("app"), None),
        Auth::User => (Some("user"), None),
        Auth::Missing | Auth::Invalid(_) => (None, None),
    };
    reply::ok_data(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(body),
        "auth": {"kind": kind, "tenant_key": tenant_key},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        let q = Some("a=1&b=x%20y&c=1+2&receive_id_type=open_id&flag");
        assert_eq!(query_param(q, "b").as_deref(), Some("x y"));
        assert_eq!(query_param(q, "c").as_deref(), Some("1 2"));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "zzz"), None);
        assert_eq!(query_param(None, "a"), None);
    }

    #[test]
    fn disposition() {
        assert_eq!(content_disposition("report.pdf"), "attachment; filename=\"report.pdf\"");
        assert_eq!(
            content_disposition("报告 1.pdf"),
            "attachment; filename=\"__ 1.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%201.pdf"
        );
        assert_eq!(content_disposition("a\"b"), "attachment; filename=\"a_b\"; filename*=UTF-8''a%22b");
    }
}
