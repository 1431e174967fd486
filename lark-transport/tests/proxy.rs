//! `HttpClient` through an HTTP proxy: a `CONNECT` proxy on loopback (written here, counting what
//! it is asked) in front of lark-testkit, plain and TLS.

use std::sync::{Arc, Mutex};

use lark_testkit::{FakePlatform, FakePlatformConfig};
use lark_transport::{Body, HttpClient, Proxy};
use lark_types::{LarkError, TransportErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// `user:p@ss` in Basic form.
const GOOD_AUTH: &str = "Proxy-Authorization: Basic dXNlcjpwQHNz";

/// A CONNECT proxy requiring `user:p@ss`; keeps the request head of every tunnel asked for.
struct ConnectProxy {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    async fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, seen.clone()));
            }
        });
        ConnectProxy { port, heads }
    }

    fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}127.0.0.1:{}", self.port)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn serve(mut client: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await.unwrap_or(0) == 0 || head.len() > 8192 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    heads.lock().unwrap().push(head.clone());
    if !head.lines().any(|line| line == GOOD_AUTH) {
        let refusal = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\ncontent-length: 0\r\n\r\n";
        let _ = client.write_all(refusal.as_bytes()).await;
        return;
    }
    let target = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n").await;
        return;
    };
    if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

async fn echo(http: &HttpClient, p: &FakePlatform) -> Result<http::StatusCode, LarkError> {
    let req = http::Request::get(format!("{}/open-apis/testkit/echo/proxy", p.base_url()))
        .body(Body::empty())
        .unwrap();
    let resp = http.clone().oneshot(req).await.map_err(|e| *e.downcast::<LarkError>().unwrap())?;
    let status = resp.status();
    resp.into_body().collect_limited(usize::MAX).await.unwrap();
    Ok(status)
}

fn client(p: &FakePlatform, proxy: Proxy) -> HttpClient {
    let mut builder = HttpClient::builder().proxy(proxy);
    if let Some(ca) = p.ca_certificate_der() {
        builder = builder.add_root_certificate_der(ca.to_vec());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn connections_go_through_one_connect_tunnel_each_with_the_credentials() {
    for tls in [true, false] {
        let config = FakePlatformConfig { tls, http1_only: true, ..FakePlatformConfig::default() };
        let p = FakePlatform::start_with(config).await;
        let proxy = ConnectProxy::start().await;
        let http = client(&p, Proxy::all(&proxy.url("user:p%40ss@")).unwrap());
        for _ in 0..3 {
            assert_eq!(echo(&http, &p).await.unwrap(), 200);
        }
        let heads = proxy.heads();
        let target = format!("127.0.0.1:{}", p.addr().port());
        assert_eq!(heads.len(), 1, "one tunnel, reused (tls: {tls})");
        assert!(
            heads[0].starts_with(&format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n")),
            "{}",
            heads[0]
        );
        assert!(heads[0].lines().any(|l| l == GOOD_AUTH), "{}", heads[0]);
        assert_eq!(p.connections(), 1);
    }
}

#[tokio::test]
async fn a_refused_tunnel_is_a_connect_error_without_the_credentials() {
    let p = FakePlatform::start().await;
    let proxy = ConnectProxy::start().await;
    let http = client(&p, Proxy::all(&proxy.url("user:wrong-secret@")).unwrap());
    let err = echo(&http, &p).await.unwrap_err();
    let LarkError::Transport(t) = &err else { panic!("{err:?}") };
    assert_eq!(t.kind(), TransportErrorKind::Connect);
    let mut shown = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        shown.push_str(&format!(" / {s}"));
        source = s.source();
    }
    assert!(shown.contains("407"), "{shown}");
    assert!(!shown.contains("wrong-secret") && !shown.contains("dXNlcjp3cm9uZy1zZWNyZXQ="), "{shown}");
    assert_eq!(p.connections(), 0);
    assert_eq!(proxy.heads().len(), 1);
}

#[tokio::test]
async fn hosts_listed_in_no_proxy_go_straight() {
    let p = FakePlatform::start().await;
    let proxy = ConnectProxy::start().await;
    let http = client(&p, Proxy::all(&proxy.url("user:p%40ss@")).unwrap().no_proxy("example.com, 127.0.0.1"));
    assert_eq!(echo(&http, &p).await.unwrap(), 200);
    assert!(proxy.heads().is_empty());
    assert_eq!(p.connections(), 1);
}

#[tokio::test]
async fn an_unreachable_proxy_is_a_connect_error() {
    let p = FakePlatform::start().await;
    let port = lark_testkit::redis_server::free_port();
    let http = client(&p, Proxy::all(&format!("http://127.0.0.1:{port}")).unwrap());
    let err = echo(&http, &p).await.unwrap_err();
    let LarkError::Transport(t) = &err else { panic!("{err:?}") };
    assert_eq!(t.kind(), TransportErrorKind::Connect);
    assert!(format!("{err:?}").contains("proxy"), "{err:?}");
    assert_eq!(p.connections(), 0);
}
