//! One connection attempt: the bootstrap call, then dialing the URL it returns (TCP, rustls for
//! `wss://`, the WebSocket handshake), with the platform's refusals sorted into final and
//! retryable.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use lark_services::Client;
use lark_types::{AccessTokenTypes, BoxError, LarkError, SecretString};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::error::{WsError, WsErrorKind};
use super::frame::ClientConfig;
use super::url::ConnectUrl;

/// The bootstrap path, under the base URL.
pub const BOOTSTRAP_PATH: &str = "/callback/ws/endpoint";
/// Bootstrap reply code: the system is busy (retry).
pub const CODE_SYSTEM_BUSY: i64 = 1;
/// Bootstrap reply code: internal error (retry).
pub const CODE_INTERNAL_ERROR: i64 = 1_000_040_343;
/// Handshake header: the refusal's status (403 forbidden, 514 auth failed, ...).
pub const HANDSHAKE_STATUS: &str = "Handshake-Status";
/// Handshake header: the refusal's message.
pub const HANDSHAKE_MSG: &str = "Handshake-Msg";
/// Handshake header: the auth error code of a 514 refusal.
pub const HANDSHAKE_AUTH_ERR_CODE: &str = "Handshake-Autherrcode";
/// `Handshake-Status` of a banned app (final).
pub const STATUS_FORBIDDEN: i64 = 403;
/// `Handshake-Status` of an authentication failure.
pub const STATUS_AUTH_FAILED: i64 = 514;
/// `Handshake-Autherrcode` meaning too many connections (final with status 514).
pub const AUTH_EXCEED_CONN_LIMIT: i64 = 1_000_040_350;

/// The stream under the WebSocket: TCP, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An open long connection.
pub(crate) type WsStream = WebSocketStream<Box<dyn Io>>;

/// How an attempt failed.
pub(crate) enum Failure {
    /// Try again later.
    Retry(BoxError),
    /// Stop: the platform will not let this app connect.
    Final(WsError),
}

fn retry(e: impl Into<BoxError>) -> Failure {
    Failure::Retry(e.into())
}

#[derive(Serialize)]
struct BootstrapBody<'a> {
    #[serde(rename = "AppID")]
    app_id: &'a str,
    #[serde(rename = "AppSecret")]
    app_secret: &'a str,
}

#[derive(Deserialize)]
struct EndpointData {
    #[serde(rename = "URL", default)]
    url: Option<String>,
    #[serde(rename = "ClientConfig", default)]
    client_config: Option<ClientConfig>,
}

/// What the bootstrap call returned: where to dial (a secret URL) and settings.
pub(crate) struct Endpoint {
    pub(crate) url: ConnectUrl,
    pub(crate) config: Option<ClientConfig>,
}

/// Bootstrap codes that are final even in a reply with HTTP status 5xx or 429: the app may not
/// connect (forbidden, auth failed, no or invalid credentials, too many connections).
const FINAL_BOOTSTRAP_CODES: [i64; 5] = [403, 514, 1_000_040_344, 1_000_040_345, AUTH_EXCEED_CONN_LIMIT];

/// Whether a bootstrap reply with `code != 0` is worth retrying: "busy" and "internal error"
/// always are; HTTP 5xx and 429 are unless the code is a known final one; every other code is
/// final.
fn retryable_bootstrap_error(code: i64, http_status: u16) -> bool {
    matches!(code, CODE_SYSTEM_BUSY | CODE_INTERNAL_ERROR)
        || ((http_status >= 500 || http_status == 429) && !FINAL_BOOTSTRAP_CODES.contains(&code))
}

/// `POST {base}/callback/ws/endpoint` with the app's credentials.
pub(crate) async fn bootstrap(
    client: &Client,
    app_id: &str,
    app_secret: &SecretString,
) -> Result<Endpoint, Failure> {
    let body = BootstrapBody { app_id, app_secret: app_secret.expose_secret() };
    let reply = client
        .post(BOOTSTRAP_PATH)
        .token_types(AccessTokenTypes::NONE)
        .header("locale", "zh")
        .json(&body)
        .send::<EndpointData>()
        .await;
    let data = match reply {
        Ok(data) => data,
        Err(LarkError::Api(api)) => {
            if retryable_bootstrap_error(api.code, api.http_status) {
                return Err(retry(LarkError::Api(api)));
            }
            return Err(Failure::Final(
                WsError::new(WsErrorKind::Bootstrap).with_code(api.code).with_message(api.msg.clone()),
            ));
        }
        Err(e @ LarkError::Config(_)) => {
            return Err(Failure::Final(WsError::new(WsErrorKind::Bootstrap).with_source(e)));
        }
        Err(e) => return Err(retry(e)),
    };
    let url = data.url.filter(|u| !u.is_empty()).ok_or_else(|| retry("the bootstrap reply has no URL"))?;
    let url = ConnectUrl::parse(&url).map_err(retry)?;
    Ok(Endpoint { url, config: data.client_config })
}

/// The TLS setup for `wss://`: the SDK's rustls settings (ring provider, webpki roots), HTTP/1.1
/// by ALPN.
pub(crate) fn tls_connector() -> Result<TlsConnector, LarkError> {
    let mut config = lark_transport::tls_client_config(&[])?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Dials `url`: TCP, TLS for `wss://`, then the WebSocket handshake.
pub(crate) async fn dial(
    url: &ConnectUrl,
    tls: &TlsConnector,
    proxy: &lark_transport::Proxy,
    config: WebSocketConfig,
) -> Result<WsStream, Failure> {
    let tcp = proxy.connect_tcp(url.secure(), url.host(), url.port()).await.map_err(retry)?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if url.secure() {
        let name = rustls::pki_types::ServerName::try_from(url.host().to_owned()).map_err(retry)?;
        Box::new(tls.connect(name, tcp).await.map_err(retry)?)
    } else {
        Box::new(tcp)
    };
    handshake(io, url, config).await
}

/// The most bytes the handshake response head (status line and headers) may take.
pub(crate) const MAX_RESPONSE_HEAD: usize = 16 << 10;
/// The most headers the handshake response may have.
const MAX_RESPONSE_HEADERS: usize = 64;
/// The GUID of RFC 6455 section 1.3, for `Sec-WebSocket-Accept`.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why the handshake failed (retryable). Never shows the URL: its query holds secrets.
#[derive(Debug)]
pub(crate) struct HandshakeError(&'static str);

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the WebSocket handshake failed: {}", self.0)
    }
}

impl std::error::Error for HandshakeError {}

fn handshake_error(what: &'static str) -> Failure {
    retry(HandshakeError(what))
}

/// The `Sec-WebSocket-Accept` a server must answer to `key`.
fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The upgrade request. Written here rather than by the WebSocket library, which logs the whole
/// request line (with the `access_key` and `ticket` of the query) at TRACE level.
fn upgrade_request(url: &ConnectUrl, key: &str) -> Vec<u8> {
    let uri = url.uri();
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let target = if target.is_empty() { "/" } else { target };
    // The authority without any user info.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Whether the comma-separated header `value` holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The value of header `name` (case-insensitive), if any.
fn header_value<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
}

/// The client side of the WebSocket handshake (RFC 6455 section 4.1) over `io`: writes the
/// upgrade request, reads the response head (bounded by [`MAX_RESPONSE_HEAD`]), checks the
/// `101` answer and its `Sec-WebSocket-Accept`, and sorts refusals. Bytes the server sent past
/// the head are kept for the WebSocket.
async fn handshake(
    mut io: Box<dyn Io>,
    url: &ConnectUrl,
    config: WebSocketConfig,
) -> Result<WsStream, Failure> {
    let nonce: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    io.write_all(&upgrade_request(url, &key)).await.map_err(retry)?;
    io.flush().await.map_err(retry)?;

    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let chunk_len = chunk.len();
    loop {
        let room = MAX_RESPONSE_HEAD - buf.len();
        if room == 0 {
            return Err(handshake_error("the response head is larger than 16 KiB"));
        }
        let n = io.read(&mut chunk[..room.min(chunk_len)]).await.map_err(retry)?;
        if n == 0 {
            return Err(handshake_error("the connection closed before the response head ended"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => {
                return Err(handshake_error("the response has more than 64 headers"))
            }
            Err(_) => return Err(handshake_error("the response is not HTTP/1.1")),
        };
        let status = response.code.unwrap_or_default();
        if status != 101 {
            return Err(refusal(status, response.headers));
        }
        let upgrade = header_value(response.headers, "Upgrade").is_some_and(|v| has_token(v, "websocket"));
        let connection =
            header_value(response.headers, "Connection").is_some_and(|v| has_token(v, "upgrade"));
        if !upgrade || !connection {
            return Err(handshake_error("the 101 response does not upgrade to websocket"));
        }
        let accept = header_value(response.headers, "Sec-WebSocket-Accept").map(<[u8]>::trim_ascii);
        if accept != Some(accept_key(&key).as_bytes()) {
            return Err(handshake_error("the Sec-WebSocket-Accept of the response is wrong"));
        }
        let rest = buf.split_off(head_len);
        return Ok(WebSocketStream::from_partially_read(io, rest, Role::Client, Some(config)).await);
    }
}

/// A refused upgrade that is worth retrying.
#[derive(Debug)]
pub(crate) struct Refused {
    http_status: u16,
    status: Option<i64>,
    auth_code: Option<i64>,
    message: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the platform refused the connection (HTTP {}", self.http_status)?;
        if let Some(s) = self.status {
            write!(f, ", Handshake-Status {s}")?;
        }
        if let Some(c) = self.auth_code {
            write!(f, ", Handshake-Autherrcode {c}")?;
        }
        if !self.message.is_empty() {
            write!(f, ", {}", self.message)?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for Refused {}

/// Sorts a refused upgrade: 403, and 514 with 1000040350, are final; the rest are retried.
fn refusal(http_status: u16, headers: &[httparse::Header<'_>]) -> Failure {
    let header =
        |name: &str| header_value(headers, name).and_then(|v| std::str::from_utf8(v).ok()).map(str::trim);
    let number = |name: &str| header(name).and_then(|v| v.parse::<i64>().ok());
    let status = number(HANDSHAKE_STATUS);
    let auth_code = number(HANDSHAKE_AUTH_ERR_CODE);
    let message = header(HANDSHAKE_MSG).unwrap_or_default().to_owned();
    let kind = match (status, auth_code) {
        (Some(STATUS_FORBIDDEN), _) => Some(WsErrorKind::Forbidden),
        (Some(STATUS_AUTH_FAILED), Some(AUTH_EXCEED_CONN_LIMIT)) => Some(WsErrorKind::TooManyConnections),
        _ => None,
    };
    match (kind, status) {
        (Some(kind), Some(status)) => {
            Failure::Final(WsError::new(kind).with_code(status).with_message(message))
        }
        _ => retry(Refused { http_status, status, auth_code, message }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(f: Failure) -> Option<WsErrorKind> {
        match f {
            Failure::Final(e) => Some(e.kind()),
            Failure::Retry(_) => None,
        }
    }

    fn sort(headers: &[(&'static str, &'static str)]) -> Failure {
        let headers: Vec<httparse::Header<'_>> =
            headers.iter().map(|(name, value)| httparse::Header { name, value: value.as_bytes() }).collect();
        refusal(400, &headers)
    }

    #[test]
    fn refusals_are_sorted() {
        let forbidden = sort(&[(HANDSHAKE_STATUS, "403"), ("handshake-msg", " banned ")]);
        match forbidden {
            Failure::Final(e) => {
                assert_eq!(
                    (e.kind(), e.code(), e.message()),
                    (WsErrorKind::Forbidden, Some(403), Some("banned"))
                );
            }
            Failure::Retry(_) => panic!("403 is final"),
        }
        let too_many = sort(&[(HANDSHAKE_STATUS, "514"), (HANDSHAKE_AUTH_ERR_CODE, "1000040350")]);
        assert_eq!(kind(too_many), Some(WsErrorKind::TooManyConnections));
        let other_auth = sort(&[(HANDSHAKE_STATUS, "514"), (HANDSHAKE_AUTH_ERR_CODE, "1000040351")]);
        assert_eq!(kind(other_auth), None);
        assert_eq!(kind(sort(&[(HANDSHAKE_STATUS, "500")])), None);
        assert_eq!(kind(sort(&[])), None);
        assert_eq!(kind(sort(&[(HANDSHAKE_STATUS, "not a number")])), None);
        match sort(&[(HANDSHAKE_STATUS, "500"), (HANDSHAKE_MSG, "busy")]) {
            Failure::Retry(e) => {
                assert_eq!(
                    e.to_string(),
                    "the platform refused the connection (HTTP 400, Handshake-Status 500, busy)"
                )
            }
            Failure::Final(_) => panic!("500 is retried"),
        }
    }

    #[test]
    fn bootstrap_errors_are_sorted() {
        // (code, HTTP status, retryable)
        let cases = [
            (CODE_SYSTEM_BUSY, 200, true),
            (CODE_INTERNAL_ERROR, 200, true),
            (CODE_SYSTEM_BUSY, 400, true),
            (CODE_INTERNAL_ERROR, 503, true),
            (1_000_040_344, 200, false),
            (1_000_040_344, 500, false),
            (1_000_040_345, 503, false),
            (1_000_040_350, 429, false),
            (403, 502, false),
            (514, 500, false),
            (99_991_400, 429, true),
            (500, 500, true),
            (12_345, 503, true),
            (12_345, 200, false),
            (12_345, 400, false),
        ];
        for (code, http_status, retryable) in cases {
            assert_eq!(
                retryable_bootstrap_error(code, http_status),
                retryable,
                "{code} / HTTP {http_status}"
            );
        }
    }

    #[test]
    fn the_accept_key_is_the_rfc_one() {
        // RFC 6455 section 1.3.
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    /// A one-shot server: reads the request head, answers what `answer` makes of it (given the
    /// request's key), keeps the socket open until the client closes it when `linger`, and
    /// hands back the request head.
    async fn serve_once(
        answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static,
        linger: bool,
    ) -> (ConnectUrl, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                socket.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap_or_default()
                .to_owned();
            socket.write_all(&answer(&key)).await.unwrap();
            if linger {
                let _ = socket.read(&mut byte).await;
            }
            head
        });
        let url =
            format!("ws://127.0.0.1:{port}/ws/v2?device_id=d1&access_key=k3y&service_id=7&ticket=t1ck3t");
        (ConnectUrl::parse(&url).unwrap(), server)
    }

    /// What a one-shot server answers, given the request's key.
    type Answer = Box<dyn FnOnce(&str) -> Vec<u8> + Send>;

    fn switching(accept: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n\
             sec-websocket-accept: {accept}\r\n\r\n"
        )
        .into_bytes()
    }

    async fn dial_plain(url: &ConnectUrl) -> Result<WsStream, Failure> {
        dial(url, &tls_connector().unwrap(), &lark_transport::Proxy::none(), WebSocketConfig::default()).await
    }

    fn retried(result: Result<WsStream, Failure>) -> String {
        match result {
            Err(Failure::Retry(e)) => e.to_string(),
            Err(Failure::Final(e)) => panic!("expected a retryable failure, got {e}"),
            Ok(_) => panic!("expected a failure"),
        }
    }

    #[tokio::test]
    async fn the_handshake_checks_the_accept_key_and_keeps_bytes_sent_past_the_head() {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;

        let (url, server) = serve_once(
            |key| {
                let mut out = switching(&accept_key(key));
                // A binary message in the same write as the head: 0x82 (final, binary), length 3.
                out.extend_from_slice(&[0x82, 0x03, 1, 2, 3]);
                out
            },
            true,
        )
        .await;
        let mut ws = dial_plain(&url).await.unwrap_or_else(|_| panic!("the handshake failed"));
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => assert_eq!(&bytes[..], &[1, 2, 3]),
            other => panic!("expected the binary message, got {other:?}"),
        }
        drop(ws);
        let head = server.await.unwrap();
        let mut lines = head.lines();
        assert_eq!(
            lines.next(),
            Some("GET /ws/v2?device_id=d1&access_key=k3y&service_id=7&ticket=t1ck3t HTTP/1.1")
        );
        let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
        let port = url.port();
        for expected in [
            format!("Host: 127.0.0.1:{port}"),
            "Upgrade: websocket".to_owned(),
            "Connection: Upgrade".to_owned(),
            "Sec-WebSocket-Version: 13".to_owned(),
        ] {
            assert!(headers.contains(&expected.as_str()), "{expected} in {headers:?}");
        }
        let key = headers.iter().find_map(|h| h.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
        let nonce = base64::engine::general_purpose::STANDARD.decode(key).unwrap();
        assert_eq!(nonce.len(), 16);
    }

    #[tokio::test]
    async fn bad_answers_are_retryable_errors_that_never_show_the_url() {
        let cases: Vec<(Answer, &str)> = vec![
            (Box::new(|_| switching("d3JvbmcgYWNjZXB0IGtleQ==")), "Sec-WebSocket-Accept"),
            (
                Box::new(|key| {
                    let accept = accept_key(key);
                    format!("HTTP/1.1 101 OK\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                        .into_bytes()
                }),
                "does not upgrade",
            ),
            (
                Box::new(|_| {
                    let mut out = b"HTTP/1.1 101 Switching Protocols\r\nX-Filler: ".to_vec();
                    out.resize(MAX_RESPONSE_HEAD + 10, b'a');
                    out
                }),
                "larger than 16 KiB",
            ),
            (Box::new(|_| b"HTTP/1.1 101 Switching".to_vec()), "closed before"),
            (
                Box::new(|_| {
                    let mut out = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
                    for i in 0..=MAX_RESPONSE_HEADERS {
                        out.extend_from_slice(format!("X-{i}: a\r\n").as_bytes());
                    }
                    out
                }),
                "more than 64 headers",
            ),
            (Box::new(|_| b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()), "not HTTP/1.1"),
            (
                Box::new(|_| {
                    b"HTTP/1.1 503 Busy\r\nHandshake-Status: 500\r\nHandshake-Msg: later\r\n\r\n".to_vec()
                }),
                "HTTP 503, Handshake-Status 500, later",
            ),
        ];
        for (answer, expected) in cases {
            let (url, server) = serve_once(move |key| answer(key), false).await;
            let result = retried(dial_plain(&url).await);
            server.await.unwrap();
            assert!(result.contains(expected), "{result} should say {expected}");
            assert!(!result.contains("k3y") && !result.contains("t1ck3t"), "{result}");
        }
    }

    #[tokio::test]
    async fn a_final_refusal_is_sorted_from_the_response_headers() {
        let (url, server) = serve_once(
            |_| {
                b"HTTP/1.1 514 Auth\r\nHandshake-Status: 514\r\nHandshake-Autherrcode: 1000040350\r\n\
              Handshake-Msg: exceed connection limit\r\nContent-Length: 0\r\n\r\n"
                    .to_vec()
            },
            false,
        )
        .await;
        match dial_plain(&url).await {
            Err(Failure::Final(e)) => assert_eq!(
                (e.kind(), e.code(), e.message()),
                (WsErrorKind::TooManyConnections, Some(514), Some("exceed connection limit"))
            ),
            _ => panic!("a final refusal was expected"),
        }
        server.await.unwrap();
    }

    #[tokio::test]
    async fn wss_dials_with_tls_and_a_peer_that_is_not_tls_is_a_retryable_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 3];
            socket.read_exact(&mut hello).await.unwrap();
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            hello
        });
        let url = ConnectUrl::parse(&format!("wss://127.0.0.1:{port}/ws/v2?service_id=1&ticket=t")).unwrap();
        let result =
            dial(&url, &tls_connector().unwrap(), &lark_transport::Proxy::none(), WebSocketConfig::default())
                .await;
        assert!(matches!(result, Err(Failure::Retry(_))));
        // A TLS handshake record (type 22, version 3.x): the ClientHello.
        let hello = server.await.unwrap();
        assert_eq!(&hello[..2], &[0x16, 0x03]);
    }
}
