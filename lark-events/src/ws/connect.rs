//! One connection attempt: the bootstrap call, then dialing the URL it returns (TCP, rustls for
//! `wss://`, the WebSocket handshake), with the platform's refusals sorted into final and
//! retryable.

use std::fmt;
use std::sync::Arc;

use lark_services::Client;
use lark_types::{AccessTokenTypes, BoxError, LarkError, SecretString};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
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
            let retryable = matches!(api.code, CODE_SYSTEM_BUSY | CODE_INTERNAL_ERROR)
                || api.http_status >= 500
                || api.http_status == 429;
            if retryable {
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

/// The TLS setup for `wss://`: rustls with the ring provider and the webpki roots.
pub(crate) fn tls_connector() -> Result<TlsConnector, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Dials `url`: TCP, TLS for `wss://`, then the WebSocket handshake.
pub(crate) async fn dial(
    url: &ConnectUrl,
    tls: &TlsConnector,
    config: WebSocketConfig,
) -> Result<WsStream, Failure> {
    let tcp = TcpStream::connect((url.host(), url.port())).await.map_err(retry)?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if url.secure() {
        let name = rustls::pki_types::ServerName::try_from(url.host().to_owned()).map_err(retry)?;
        Box::new(tls.connect(name, tcp).await.map_err(retry)?)
    } else {
        Box::new(tcp)
    };
    let request = url.uri().into_client_request().map_err(retry)?;
    match tokio_tungstenite::client_async_with_config(request, io, Some(config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(refusal(&resp)),
        Err(e) => Err(retry(e)),
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
fn refusal(resp: &Response) -> Failure {
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
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
        _ => retry(Refused { http_status: resp.status().as_u16(), status, auth_code, message }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[(&str, &str)]) -> Response {
        let mut b = http::Response::builder().status(400);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(None).unwrap()
    }

    fn kind(f: Failure) -> Option<WsErrorKind> {
        match f {
            Failure::Final(e) => Some(e.kind()),
            Failure::Retry(_) => None,
        }
    }

    #[test]
    fn refusals_are_sorted() {
        let forbidden = refusal(&response(&[(HANDSHAKE_STATUS, "403"), (HANDSHAKE_MSG, "banned")]));
        match forbidden {
            Failure::Final(e) => {
                assert_eq!(
                    (e.kind(), e.code(), e.message()),
                    (WsErrorKind::Forbidden, Some(403), Some("banned"))
                );
            }
            Failure::Retry(_) => panic!("403 is final"),
        }
        let too_many = response(&[(HANDSHAKE_STATUS, "514"), (HANDSHAKE_AUTH_ERR_CODE, "1000040350")]);
        assert_eq!(kind(refusal(&too_many)), Some(WsErrorKind::TooManyConnections));
        let other_auth = response(&[(HANDSHAKE_STATUS, "514"), (HANDSHAKE_AUTH_ERR_CODE, "1000040351")]);
        assert_eq!(kind(refusal(&other_auth)), None);
        assert_eq!(kind(refusal(&response(&[(HANDSHAKE_STATUS, "500")]))), None);
        assert_eq!(kind(refusal(&response(&[]))), None);
        assert_eq!(kind(refusal(&response(&[(HANDSHAKE_STATUS, "not a number")]))), None);
    }

    #[tokio::test]
    async fn wss_dials_with_tls_and_a_peer_that_is_not_tls_is_a_retryable_error() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        let result = dial(&url, &tls_connector().unwrap(), WebSocketConfig::default()).await;
        assert!(matches!(result, Err(Failure::Retry(_))));
        // A TLS handshake record (type 22, version 3.x): the ClientHello.
        let hello = server.await.unwrap();
        assert_eq!(&hello[..2], &[0x16, 0x03]);
    }
}
