//! `HttpClient` through an HTTP proxy: lark-testkit's `CONNECT` proxy on loopback (which keeps
//! what it is asked) in front of the fake platform, plain and TLS.

use lark_testkit::connect_proxy::ConnectProxy;
use lark_testkit::{FakePlatform, FakePlatformConfig};
use lark_transport::{Body, HttpClient, Proxy};
use lark_types::{LarkError, TransportErrorKind};
use tower::ServiceExt;

/// `user:p@ss` in Basic form.
const GOOD_AUTH: &str = "Proxy-Authorization: Basic dXNlcjpwQHNz";

async fn proxy() -> ConnectProxy {
    ConnectProxy::start_with_credentials("user", "p@ss").await
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
        let proxy = proxy().await;
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
    let proxy = proxy().await;
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
    let proxy = proxy().await;
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
