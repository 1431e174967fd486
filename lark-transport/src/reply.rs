//! Reply decoding: the `{code, msg, data}` envelope into a typed value or [`LarkError::Api`],
//! downloads as streams with their file name.

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use http::Response;
use lark_types::{
    log_id_from_headers, ApiError, ApiReply, DecodeError, LarkError, TransportError, TransportErrorKind,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::Body;

/// Default cap on a JSON reply held in memory: 32 MiB.
pub const DEFAULT_JSON_LIMIT: usize = 32 << 20;

/// The `code` of a JSON reply, attached as a response extension once the reply is buffered, so
/// retry and auth layers can classify it without parsing again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyCode(pub i64);

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    code: i64,
}

/// The reply's top-level `code`. The platform writes it first (`{"code":0,...`), which is read
/// without parsing the rest; any other layout falls back to a full parse.
pub fn reply_code(bytes: &[u8]) -> Option<i64> {
    let trimmed = bytes.trim_ascii_start();
    if let Some(rest) = trimmed.strip_prefix(b"{\"code\":") {
        let rest = rest.trim_ascii_start();
        let (neg, digits) = match rest.strip_prefix(b"-") {
            Some(d) => (true, d),
            None => (false, rest),
        };
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        let next = digits.get(len).copied();
        if len > 0 && len <= 18 && matches!(next, Some(b',' | b'}' | b' ' | b'\n' | b'\r' | b'\t')) {
            let value = digits[..len].iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
            return Some(if neg { -value } else { value });
        }
    }
    serde_json::from_slice::<Head>(bytes).ok().map(|h| h.code)
}

/// Whether a response is JSON by its content type.
pub fn is_json<B>(resp: &Response<B>) -> bool {
    let Some(ct) = resp.headers().get(CONTENT_TYPE) else { return false };
    let ct = ct.as_bytes();
    let essence = ct.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
    essence.eq_ignore_ascii_case(b"application/json") || essence.ends_with(b"+json")
}

/// Whether [`buffer_json_reply`] has work to do: the reply is JSON and not yet buffered and
/// tagged with its [`ReplyCode`]. (Other replies, such as downloads, keep streaming.)
pub fn needs_buffering<B>(resp: &Response<B>) -> bool {
    resp.extensions().get::<ReplyCode>().is_none() && is_json(resp)
}

/// Buffers a JSON reply (up to `limit` bytes) and attaches its [`ReplyCode`]. Non-JSON replies
/// (downloads) pass through untouched, still streaming.
pub async fn buffer_json_reply(resp: Response<Body>, limit: usize) -> Result<Response<Body>, LarkError> {
    if !needs_buffering(&resp) {
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let bytes = read_body(body, limit, &parts.headers).await?;
    Ok(tagged(parts, bytes))
}

/// A buffered JSON reply, tagged with its [`ReplyCode`] when it has one.
pub(crate) fn tagged(mut parts: http::response::Parts, bytes: Bytes) -> Response<Body> {
    if let Some(code) = reply_code(&bytes) {
        parts.extensions.insert(ReplyCode(code));
    }
    Response::from_parts(parts, Body::full(bytes))
}

/// The whole body in memory (at most `limit` bytes), errors carrying the reply's log id.
async fn read_body(body: Body, limit: usize, headers: &http::HeaderMap) -> Result<Bytes, LarkError> {
    body.collect_limited(limit).await.map_err(|e| body_error(e, headers))
}

/// A failure reading a reply's body ([`BodyTooLarge`](crate::BodyTooLarge) or the connection's),
/// with the reply's log id.
pub(crate) fn body_error(e: lark_types::BoxError, headers: &http::HeaderMap) -> LarkError {
    let kind = if e.is::<crate::body::BodyTooLarge>() {
        TransportErrorKind::TooLarge
    } else {
        TransportErrorKind::Body
    };
    TransportError::from_boxed(kind, e).with_log_id(log_id_from_headers(headers)).into()
}

/// Decodes a reply: `data` as `T` when `code == 0`, [`LarkError::Api`] otherwise. A buffered
/// reply is decoded without waiting; a streaming one is read first (up to `limit` bytes).
/// A missing `data` decodes as JSON `null` (or `{}` for structs with optional fields).
pub async fn decode_reply<T: DeserializeOwned>(resp: Response<Body>, limit: usize) -> Result<T, LarkError> {
    let (parts, body) = resp.into_parts();
    let bytes = match body.into_bytes() {
        Ok(bytes) => bytes,
        // Boxed: the rare case keeps its state out of every caller's future.
        Err(body) => Box::pin(read_body(body, limit, &parts.headers)).await?,
    };
    decode_bytes(&bytes, parts.status.as_u16(), &parts.headers)
}

/// Decodes reply bytes as [`decode_reply`] does.
pub fn decode_bytes<T: DeserializeOwned>(
    bytes: &[u8],
    status: u16,
    headers: &http::HeaderMap,
) -> Result<T, LarkError> {
    // Happy path in one pass: the envelope with `data` straight into `T`.
    let first_err = match serde_json::from_slice::<ApiReply<T>>(bytes) {
        Ok(reply) if reply.code == 0 => {
            return match reply.data {
                Some(v) => Ok(v),
                None => data_absent(status, headers),
            };
        }
        Ok(reply) => {
            return Err(ApiError::from_reply(reply.code, reply.msg, reply.error, status, headers).into());
        }
        Err(e) => e,
    };
    // `data` did not match `T`, or the reply is no envelope: find out which.
    match serde_json::from_slice::<ApiReply<serde::de::IgnoredAny>>(bytes) {
        Ok(reply) if reply.code != 0 => {
            Err(ApiError::from_reply(reply.code, reply.msg, reply.error, status, headers).into())
        }
        Ok(_) => Err(decode_error(status, headers, first_err)),
        Err(e) => {
            let msg = if (200..300).contains(&status) {
                "the reply is not the JSON envelope the API promises"
            } else {
                "the platform answered an HTTP error without a JSON envelope"
            };
            Err(DecodeError::new(status, msg).with_source(e).with_log_id(log_id_from_headers(headers)).into())
        }
    }
}

/// A success without `data`: `T` from JSON `null` (unit, options) or `{}` (structs whose fields
/// are all optional).
fn data_absent<T: DeserializeOwned>(status: u16, headers: &http::HeaderMap) -> Result<T, LarkError> {
    serde_json::from_str::<T>("null")
        .or_else(|_| serde_json::from_str::<T>("{}"))
        .map_err(|e| decode_error(status, headers, e))
}

fn decode_error(status: u16, headers: &http::HeaderMap, e: serde_json::Error) -> LarkError {
    DecodeError::new(status, "`data` does not match the expected type")
        .with_source(e)
        .with_log_id(log_id_from_headers(headers))
        .into()
}

/// A file download: metadata plus the body as a stream, never buffered whole.
pub struct Download {
    file_name: Option<String>,
    content_type: Option<String>,
    content_length: Option<u64>,
    log_id: Option<String>,
    body: Body,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .field("log_id", &self.log_id)
            .finish_non_exhaustive()
    }
}

impl Download {
    /// Turns a reply into a download; a JSON reply is an error envelope (or an unexpected
    /// success without a file) and is decoded as such.
    pub async fn from_response(resp: Response<Body>, limit: usize) -> Result<Download, LarkError> {
        if is_json(&resp) || !resp.status().is_success() {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let value: serde_json::Value = decode_reply(resp, limit).await?;
            return Err(DecodeError::new(status, "expected a file but the reply is JSON")
                .with_log_id(log_id_from_headers(&headers))
                .with_source(format!(
                    "reply data has {} top-level fields",
                    value.as_object().map_or(0, |o| o.len())
                ))
                .into());
        }
        let (parts, body) = resp.into_parts();
        let h = &parts.headers;
        Ok(Download {
            file_name: h
                .get(CONTENT_DISPOSITION)
                .and_then(|v| v.to_str().ok())
                .and_then(content_disposition_file_name),
            content_type: h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned),
            content_length: h.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()),
            log_id: log_id_from_headers(h),
            body,
        })
    }

    /// The file name from `Content-Disposition` (`filename*` preferred), if any.
    pub fn file_name(&self) -> Option<&str> {
        self.file_name.as_deref()
    }

    /// The reply's content type.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The length announced by the platform, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The call's log id.
    pub fn log_id(&self) -> Option<&str> {
        self.log_id.as_deref()
    }

    /// The file content as a stream of chunks.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, LarkError>> + Send {
        let log_id = self.log_id;
        self.body.into_data_stream().map_err(move |e| {
            LarkError::Transport(TransportError::new(TransportErrorKind::Body, e).with_log_id(log_id.clone()))
        })
    }

    /// Writes the content to `path`, returning the number of bytes written.
    pub async fn save_to(self, path: impl AsRef<std::path::Path>) -> Result<u64, LarkError> {
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(path.as_ref())
            .await
            .map_err(|e| TransportError::new(TransportErrorKind::Io, e))?;
        let mut stream = std::pin::pin!(self.into_stream());
        let mut written = 0u64;
        while let Some(chunk) = stream.try_next().await? {
            file.write_all(&chunk).await.map_err(|e| TransportError::new(TransportErrorKind::Io, e))?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(|e| TransportError::new(TransportErrorKind::Io, e))?;
        Ok(written)
    }

    /// Reads the whole file into memory, failing past `limit` bytes.
    pub async fn bytes(self, limit: usize) -> Result<Bytes, LarkError> {
        let log_id = self.log_id;
        self.body.collect_limited(limit).await.map_err(|e| {
            LarkError::Transport(TransportError::new(TransportErrorKind::TooLarge, e).with_log_id(log_id))
        })
    }
}

/// The file name of a `Content-Disposition` value: `filename*=UTF-8''…` (RFC 5987) when present,
/// else `filename="…"` or a bare `filename=…`.
pub fn content_disposition_file_name(value: &str) -> Option<String> {
    let mut plain = None;
    for param in split_params(value) {
        let (k, v) = match param.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => continue,
        };
        if k.eq_ignore_ascii_case("filename*") {
            let (charset, rest) = v.split_once('\'')?;
            let (_lang, encoded) = rest.split_once('\'')?;
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
            if charset.eq_ignore_ascii_case("utf-8") {
                if let Ok(s) = String::from_utf8(bytes) {
                    return Some(s);
                }
            } else {
                return Some(bytes.iter().map(|&b| b as char).collect());
            }
        } else if k.eq_ignore_ascii_case("filename") {
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            plain = Some(v.replace("\\\"", "\"").replace("\\\\", "\\"));
        }
    }
    plain
}

fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lark_types::BoxError;

    fn json_response(status: u16, body: &'static str) -> Response<Body> {
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .header("x-tt-logid", "LOG")
            .body(Body::from(body))
            .unwrap()
    }

    fn streaming(status: u16, content_type: &str, chunks: Vec<&'static str>) -> Response<Body> {
        let chunks = chunks.into_iter().map(|c| Ok::<_, BoxError>(Bytes::from_static(c.as_bytes())));
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, content_type)
            .header("x-tt-logid", "LOG")
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .unwrap()
    }

    #[tokio::test]
    async fn streaming_replies_are_read_within_the_limit() {
        let ok = streaming(200, "application/json", vec![r#"{"code":0,"#, r#""data":{"a":2}}"#]);
        let v: serde_json::Value = decode_reply(ok, 1024).await.unwrap();
        assert_eq!(v["a"], 2);
        // An HTML error page: read, then reported as no envelope, with the log id.
        let html = streaming(502, "text/html", vec!["<html>bad gateway</html>"]);
        let e = decode_reply::<serde_json::Value>(html, 1024).await.unwrap_err();
        assert!(matches!(&e, LarkError::Decode(d) if d.log_id() == Some("LOG")), "{e:?}");
        // Over the limit, JSON or not: TooLarge.
        for ct in ["application/json", "text/html"] {
            let big = streaming(200, ct, vec!["0123456789", "0123456789"]);
            let e = decode_reply::<serde_json::Value>(big, 15).await.unwrap_err();
            assert!(
                matches!(&e, LarkError::Transport(t) if t.kind() == TransportErrorKind::TooLarge),
                "{e:?}"
            );
        }
        // A body that fails while being read: Body.
        let broken = Response::builder()
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from_stream(futures_util::stream::iter([Err::<Bytes, BoxError>("reset".into())])))
            .unwrap();
        let e = decode_reply::<serde_json::Value>(broken, 1024).await.unwrap_err();
        assert!(matches!(&e, LarkError::Transport(t) if t.kind() == TransportErrorKind::Body), "{e:?}");
    }

    #[tokio::test]
    async fn decodes_data_and_errors() {
        let v: serde_json::Value =
            decode_reply(json_response(200, r#"{"code":0,"msg":"ok","data":{"a":1}}"#), 1024).await.unwrap();
        assert_eq!(v["a"], 1);
        let e = decode_reply::<serde_json::Value>(
            json_response(
                400,
                r#"{"code":99991663,"msg":"bad token","error":{"troubleshooter":"https://t"}}"#,
            ),
            1024,
        )
        .await
        .unwrap_err();
        let api = e.as_api().unwrap();
        assert_eq!((api.code, api.http_status), (99991663, 400));
        assert_eq!(api.log_id.as_deref(), Some("LOG"));
        assert_eq!(api.troubleshooter.as_deref(), Some("https://t"));
    }

    #[tokio::test]
    async fn missing_data_decodes_to_unit_null_or_defaults() {
        #[derive(Deserialize, Debug, Default)]
        struct Opt {
            #[serde(default)]
            items: Vec<u32>,
        }
        decode_reply::<()>(json_response(200, r#"{"code":0,"msg":"ok"}"#), 1024).await.unwrap();
        let o: Opt = decode_reply(json_response(200, r#"{"code":0,"msg":"ok"}"#), 1024).await.unwrap();
        assert!(o.items.is_empty());
    }

    #[tokio::test]
    async fn garbage_is_a_decode_error_with_status_and_log_id() {
        let e = decode_reply::<serde_json::Value>(json_response(502, "<html>"), 1024).await.unwrap_err();
        match e {
            LarkError::Decode(d) => {
                assert_eq!(d.http_status(), 502);
                assert_eq!(d.log_id(), Some("LOG"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let e =
            decode_reply::<u32>(json_response(200, r#"{"code":0,"data":{"x":1}}"#), 1024).await.unwrap_err();
        assert!(matches!(e, LarkError::Decode(_)));
    }

    #[tokio::test]
    async fn oversized_json_is_too_large() {
        let e = decode_reply::<serde_json::Value>(
            Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .body(Body::from_stream(futures_util::stream::iter(vec![Ok::<_, lark_types::BoxError>(
                    Bytes::from(vec![b' '; 100]),
                )])))
                .unwrap(),
            10,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, LarkError::Transport(ref t) if t.kind() == TransportErrorKind::TooLarge),
            "{e:?}"
        );
    }

    #[test]
    fn reply_code_fast_path_and_fallback() {
        assert_eq!(reply_code(br#"{"code":0,"msg":"ok"}"#), Some(0));
        assert_eq!(reply_code(br#" {"code": 99991663 ,"msg":"x"}"#), Some(99991663));
        assert_eq!(reply_code(br#"{"code":-1}"#), Some(-1));
        assert_eq!(reply_code(br#"{"msg":"x","code":10012}"#), Some(10012));
        assert_eq!(reply_code(br#"{"msg":"no code"}"#), Some(0));
        assert_eq!(reply_code(b"<html>"), None);
        assert_eq!(reply_code(br#"{"code":1.5}"#), None);
    }

    #[test]
    fn content_disposition_names() {
        assert_eq!(
            content_disposition_file_name("attachment; filename=\"a b.txt\"").as_deref(),
            Some("a b.txt")
        );
        assert_eq!(
            content_disposition_file_name("attachment; filename=plain.bin").as_deref(),
            Some("plain.bin")
        );
        assert_eq!(
            content_disposition_file_name(
                "attachment; filename=\"x.txt\"; filename*=UTF-8''%E9%A3%9E%E4%B9%A6.txt"
            )
            .as_deref(),
            Some("飞书.txt")
        );
        assert_eq!(
            content_disposition_file_name("attachment; filename=\"a;b.txt\"").as_deref(),
            Some("a;b.txt")
        );
        assert_eq!(content_disposition_file_name("inline"), None);
    }
}
