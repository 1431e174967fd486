//! `LarkAuthLayer` on a plain hyper-util client (not the SDK's stack), over loopback HTTP.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use lark_auth::{LarkAuthLayer, TokenManager};
use lark_testkit::{Endpoint, FakePlatform};
use lark_transport::{HttpClient, HttpService};
use lark_types::{AccessTokenTypes, AuthOptions};
use tower::{ServiceBuilder, ServiceExt};

fn manager(p: &FakePlatform) -> TokenManager {
    let http: HttpService = tower::util::BoxCloneSyncService::new(HttpClient::new().unwrap());
    TokenManager::builder(p.app_id(), p.app_secret()).base_url(p.base_url()).http(http).build().unwrap()
}

fn get(p: &FakePlatform, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::GET)
        .uri(format!("{}{path}", p.base_url()))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn injects_tokens_into_a_plain_hyper_client() {
    let p = FakePlatform::start().await;
    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new().layer(LarkAuthLayer::new(manager(&p))).service(hyper);

    for _ in 0..3 {
        let resp = svc.clone().oneshot(get(&p, "/open-apis/contact/v3/users/ou_1")).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], 0);
    }
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 1);

    // The request's AuthOptions pick the token: here the app token.
    let mut req = get(&p, "/open-apis/testkit/echo/x");
    req.extensions_mut().insert(AuthOptions::accepting(AccessTokenTypes::APP));
    let resp = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(p.hits(Endpoint::AppAccessTokenInternal), 1);

    // A request that carries its own Authorization header is left alone.
    let mut req = get(&p, "/open-apis/testkit/echo/own");
    req.headers_mut().insert("authorization", "Bearer u-mine".parse().unwrap());
    svc.clone().oneshot(req).await.unwrap();
    let own = p.requests().into_iter().find(|r| r.path == "/open-apis/testkit/echo/own").unwrap();
    assert_eq!(own.headers["authorization"], "Bearer u-mine");
}

#[tokio::test]
async fn refreshes_and_retries_once_on_a_plain_hyper_client() {
    let p = FakePlatform::start().await;
    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new().layer(LarkAuthLayer::new(manager(&p))).service(hyper);
    svc.clone().oneshot(get(&p, "/open-apis/contact/v3/users/ou_1")).await.unwrap();
    p.invalidate_tokens();
    let resp = svc.clone().oneshot(get(&p, "/open-apis/contact/v3/users/ou_1")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 2);
    let calls = p.requests().iter().filter(|r| r.path.starts_with("/open-apis/contact")).count();
    assert_eq!(calls, 3, "one call, then one rejected call and its single retry");
}

#[tokio::test]
async fn no_token_and_bad_given_tokens_on_a_plain_hyper_client() {
    let p = FakePlatform::start().await;
    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new().layer(LarkAuthLayer::new(manager(&p))).service(hyper);

    // An API that takes no token: sent without one, and no token is fetched.
    let mut req = get(&p, "/open-apis/testkit/echo/none");
    req.extensions_mut().insert(AuthOptions::none());
    svc.clone().oneshot(req).await.unwrap();
    let none = p.requests().into_iter().find(|r| r.path == "/open-apis/testkit/echo/none").unwrap();
    assert!(!none.headers.contains_key("authorization"));
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 0);

    // A given token that cannot be a header value: a config error, nothing sent.
    let mut req = get(&p, "/open-apis/testkit/echo/bad");
    let opts = AuthOptions {
        access_token: Some(lark_types::SecretString::new("t-1\nx")),
        ..AuthOptions::accepting(AccessTokenTypes::TENANT)
    };
    req.extensions_mut().insert(opts);
    let err = svc.clone().oneshot(req).await.unwrap_err();
    let err = lark_types::LarkError::from_boxed(err);
    assert!(matches!(err, lark_types::LarkError::Config(_)), "{err:?}");
    assert!(!format!("{err:?}").contains("t-1"));
    assert_eq!(p.requests().len(), 1);
}

#[tokio::test]
async fn errors_of_a_plain_hyper_client_come_back_as_one_lark_error() {
    use lark_types::{LarkError, TransportErrorKind};
    let p = FakePlatform::start().await;
    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = LarkAuthLayer::new(manager(&p)).json_limit(10);
    let svc = ServiceBuilder::new().layer(layer).service(hyper.clone());
    // The JSON reply is buffered by the layer (hyper leaves it streaming); over the limit it is
    // a TooLarge transport error, as a `LarkError` (not wrapped twice).
    let e = svc.clone().oneshot(get(&p, "/open-apis/contact/v3/users/ou_1")).await.unwrap_err();
    let kind = match e.downcast_ref::<LarkError>() {
        Some(LarkError::Transport(t)) => Some(t.kind()),
        _ => None,
    };
    assert_eq!(kind, Some(TransportErrorKind::TooLarge), "{e:?}");

    // hyper's own error (nothing listens on the port): wrapped once as a transport error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let svc = ServiceBuilder::new().layer(LarkAuthLayer::new(manager(&p))).service(hyper);
    let mut req = get(&p, "/x");
    *req.uri_mut() = format!("http://{closed}/open-apis/x").parse().unwrap();
    let e = svc.oneshot(req).await.unwrap_err();
    assert!(matches!(e.downcast_ref::<LarkError>(), Some(LarkError::Transport(_))), "{e:?}");
}
