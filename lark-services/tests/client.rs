//! The Client end to end over loopback HTTP against lark-testkit.

use std::sync::Arc;
use std::time::Duration;

use lark_auth::{ManualClock, MemoryStore};
use lark_services::{AccessTokenTypes, Client, ClientBuilder, LarkError, Multipart, RetryPolicy};
use lark_testkit::{Endpoint, FakePlatform, FakePlatformConfig, Fault};
use lark_types::{TimeoutKind, TokenErrorKind, TransportErrorKind};
use serde::Deserialize;
use serde_json::json;

const USER_PATH: &str = "/open-apis/contact/v3/users/:user_id";

fn builder(p: &FakePlatform) -> ClientBuilder {
    Client::builder(p.app_id(), p.app_secret()).base_url(p.base_url())
}

fn api_requests(p: &FakePlatform, prefix: &str) -> usize {
    p.requests().iter().filter(|r| r.path.starts_with(prefix)).count()
}

async fn get_user(c: &Client, id: &str) -> Result<serde_json::Value, LarkError> {
    c.get(USER_PATH).path_param("user_id", id).send_json().await
}

#[tokio::test]
async fn self_built_tenant_token_is_fetched_once_and_reused() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    let user = get_user(&c, "ou_1").await.unwrap();
    assert_eq!(user["user"]["open_id"], "ou_1");
    get_user(&c, "ou_2").await.unwrap();
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 1);
    assert_eq!(p.hits(Endpoint::AppAccessTokenInternal), 0);
    let sent: Vec<_> =
        p.requests().into_iter().filter(|r| r.path.starts_with("/open-apis/contact")).collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].headers["authorization"], sent[1].headers["authorization"]);
    assert!(sent[0].headers["user-agent"].to_str().unwrap().starts_with("lark-rs/"));
}

/// Checks at compile time that a call's future owns everything it needs.
fn owned<F: std::future::Future + Send + 'static>(f: F) -> F {
    f
}

#[tokio::test]
async fn a_call_is_sent_when_awaited_not_when_made() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    c.tokens().tenant_access_token(None).await.unwrap();
    // The future outlives the client handle it came from, and sends nothing until polled.
    let pending = {
        let c = c.clone();
        owned(c.get(USER_PATH).path_param("user_id", "ou_1").send_json())
    };
    let dropped = owned(c.get(USER_PATH).path_param("user_id", "ou_2").send_raw());
    drop(dropped);
    tokio::task::yield_now().await;
    assert_eq!(api_requests(&p, "/open-apis/contact"), 0);
    assert_eq!(pending.await.unwrap()["user"]["open_id"], "ou_1");
    assert_eq!(api_requests(&p, "/open-apis/contact"), 1);
    // A request that cannot be built fails when awaited, having sent nothing.
    let bad = c.get("/open-apis/x").header("bad header", "v").send_json();
    assert!(matches!(bad.await, Err(LarkError::Config(_))));
    assert_eq!(p.requests().len(), 2);
}

#[tokio::test]
async fn self_built_app_token_for_app_only_apis() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    c.get("/open-apis/testkit/echo/app").token_types(AccessTokenTypes::APP).send_json().await.unwrap();
    assert_eq!(p.hits(Endpoint::AppAccessTokenInternal), 1);
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 0);
}

#[tokio::test]
async fn api_errors_are_errors_with_log_id() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    // No receive_id_type: the fake platform answers a field validation error.
    let err = c
        .post("/open-apis/im/v1/messages")
        .json(&json!({"receive_id": "ou_1", "msg_type": "text", "content": "{\"text\":\"x\"}"}))
        .send_json()
        .await
        .unwrap_err();
    let api = err.as_api().expect("an API error");
    assert_eq!(api.code, 99992402);
    assert_eq!(api.http_status, 400);
    assert!(api.log_id.is_some(), "log id from X-Tt-Logid");
    assert_eq!(err.log_id(), api.log_id.as_deref());
    assert_eq!(api_requests(&p, "/open-apis/im"), 1, "business errors are never retried");
}

#[tokio::test]
async fn typed_replies_decode() {
    #[derive(Deserialize)]
    struct Sent {
        message_id: String,
    }
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    let sent: Sent = c
        .post("/open-apis/im/v1/messages")
        .query("receive_id_type", "open_id")
        .json(&json!({"receive_id": "ou_1", "msg_type": "text", "content": "{\"text\":\"hello\"}"}))
        .request_id("req-1")
        .send()
        .await
        .unwrap();
    assert!(sent.message_id.starts_with("om_"));
    assert_eq!(p.sent_messages().len(), 1);
    let last = p.requests().into_iter().find(|r| r.path == "/open-apis/im/v1/messages").unwrap();
    assert_eq!(last.headers["x-request-id"], "req-1");
}

#[tokio::test]
async fn marketplace_flow_uses_app_ticket_and_tenant_keys() {
    let p = FakePlatform::start().await;
    let c = builder(&p).marketplace().build().unwrap();

    // No ticket yet: a clear error and one resend request.
    let err = get_user(&c, "ou_1").await.unwrap_err();
    assert!(matches!(&err, LarkError::Config(_) | LarkError::Token(_)), "{err:?}");
    let err = c.get(USER_PATH).path_param("user_id", "ou_1").tenant_key("t1").send_json().await.unwrap_err();
    match &err {
        LarkError::Token(t) => assert_eq!(t.kind(), TokenErrorKind::AppTicketMissing),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(p.hits(Endpoint::AppTicketResend), 1);

    c.set_app_ticket(&p.issue_app_ticket()).await.unwrap();
    for tenant in ["t1", "t2", "t1"] {
        c.get(USER_PATH).path_param("user_id", "ou_1").tenant_key(tenant).send_json().await.unwrap();
    }
    assert_eq!(p.hits(Endpoint::AppAccessToken), 1);
    assert_eq!(p.hits(Endpoint::TenantAccessToken), 2, "one token per tenant");
    let tenants: Vec<_> = p
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/open-apis/contact"))
        .filter_map(|r| r.tenant_key)
        .collect();
    assert_eq!(tenants, ["t1", "t2", "t1"]);
}

#[tokio::test]
async fn marketplace_invalid_ticket_is_dropped_and_resend_requested() {
    let p = FakePlatform::start().await;
    let c = builder(&p).marketplace().build().unwrap();
    c.set_app_ticket("stale-ticket").await.unwrap();
    let err = c.get(USER_PATH).path_param("user_id", "ou_1").tenant_key("t1").send_json().await.unwrap_err();
    match &err {
        LarkError::Token(t) => {
            assert_eq!(t.kind(), TokenErrorKind::AppTicketInvalid);
            assert_eq!(err.code(), Some(10012));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(p.hits(Endpoint::AppTicketResend), 1);
    assert!(c.tokens().app_ticket().await.unwrap().is_none(), "the rejected ticket is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cold_calls_fetch_one_token() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { get_user(&c, &format!("ou_{}", i % 25 + 1)).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 1);
    assert_eq!(api_requests(&p, "/open-apis/contact"), 1000);
}

#[tokio::test]
async fn cached_token_is_reused_until_the_refresh_margin() {
    let p = FakePlatform::start().await;
    p.set_token_ttl(Duration::from_secs(7200));
    let clock = ManualClock::new();
    let c = builder(&p)
        .clock(Arc::new(clock.clone()))
        .token_refresh_margin(Duration::from_secs(180))
        .build()
        .unwrap();
    get_user(&c, "ou_1").await.unwrap();
    // Refresh happens between 180 s and 210 s (margin plus jitter) before expiry.
    clock.advance(Duration::from_secs(7200 - 211));
    get_user(&c, "ou_1").await.unwrap();
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 1);
    clock.advance(Duration::from_secs(32));
    get_user(&c, "ou_1").await.unwrap();
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 2);
    get_user(&c, "ou_1").await.unwrap();
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 2);
}

#[tokio::test]
async fn token_invalidated_at_the_server_is_refetched_and_retried_once() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    get_user(&c, "ou_1").await.unwrap();
    p.invalidate_tokens();
    p.clear_requests();
    get_user(&c, "ou_1").await.unwrap();
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 2);
    let sent: Vec<_> =
        p.requests().into_iter().filter(|r| r.path.starts_with("/open-apis/contact")).collect();
    assert_eq!(sent.len(), 2, "one rejected attempt, one retry");
    assert_ne!(sent[0].headers["authorization"], sent[1].headers["authorization"]);
}

#[tokio::test]
async fn a_new_token_that_fails_too_does_not_loop() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    p.inject(Fault::api_error(99991663, "invalid token").on_path_prefix("/open-apis/contact").times(5));
    let err = get_user(&c, "ou_1").await.unwrap_err();
    assert_eq!(err.code(), Some(99991663));
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 2, "initial fetch plus one refetch");
    assert_eq!(api_requests(&p, "/open-apis/contact"), 2);
}

#[tokio::test]
async fn the_token_refresh_retry_happens_even_with_retries_disabled() {
    let p = FakePlatform::start().await;
    let c = builder(&p).retry(RetryPolicy::none()).build().unwrap();
    get_user(&c, "ou_1").await.unwrap();
    p.invalidate_tokens();
    get_user(&c, "ou_1").await.unwrap();
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 2);
    assert_eq!(api_requests(&p, "/open-apis/contact"), 3);
}

#[tokio::test]
async fn a_rejected_explicit_token_is_not_retried() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    let err = c
        .get(USER_PATH)
        .path_param("user_id", "ou_1")
        .access_token("t-forged")
        .send_json()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(99991663));
    assert_eq!(api_requests(&p, "/open-apis/contact"), 1);
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 0);
}

#[tokio::test]
async fn an_explicit_token_wins_and_is_never_refreshed() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    let reply =
        c.get("/open-apis/testkit/echo/user").user_access_token("u-user-token").send_json().await.unwrap();
    assert_eq!(reply["method"], "GET");
    let sent = p.requests().into_iter().find(|r| r.path == "/open-apis/testkit/echo/user").unwrap();
    assert_eq!(sent.headers["authorization"], "Bearer u-user-token");
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 0);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_waits_for_the_reset_and_succeeds() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    p.inject(Fault::rate_limit(2).on_path_prefix("/open-apis/contact").times(2));
    let started = tokio::time::Instant::now();
    get_user(&c, "ou_1").await.unwrap();
    let waited = started.elapsed();
    assert_eq!(api_requests(&p, "/open-apis/contact"), 3, "two limited attempts, then success");
    assert!(waited >= Duration::from_secs(4), "waited {waited:?}: must honour the reset header twice");
    assert!(waited < Duration::from_secs(6), "waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_then_reported() {
    let p = FakePlatform::start().await;
    let c = builder(&p).retry(RetryPolicy::default().max_retries(2)).build().unwrap();
    p.inject(Fault::status(503).on_path_prefix("/open-apis/contact").times(1));
    get_user(&c, "ou_1").await.unwrap();
    assert_eq!(api_requests(&p, "/open-apis/contact"), 2);

    p.clear_requests();
    p.inject(Fault::status(502).on_path_prefix("/open-apis/contact").times(10));
    let err = get_user(&c, "ou_1").await.unwrap_err();
    assert_eq!(api_requests(&p, "/open-apis/contact"), 3, "first attempt plus two retries");
    assert!(matches!(err, LarkError::Api(ref a) if a.http_status == 502), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn posts_are_not_retried_after_a_dropped_connection() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    c.tokens().tenant_access_token(None).await.unwrap();
    p.inject(Fault::drop_connection().on_path_prefix("/open-apis/im").times(1));
    let err = c
        .post("/open-apis/im/v1/messages")
        .query("receive_id_type", "open_id")
        .json(&json!({"receive_id": "ou_1", "msg_type": "text", "content": "{\"text\":\"x\"}"}))
        .send_json()
        .await
        .unwrap_err();
    // One transport error, not a wrapped one: the kind says what happened.
    assert!(matches!(&err, LarkError::Transport(t) if t.kind() == TransportErrorKind::Io), "{err:?}");
    assert!(!err.is_not_sent(), "the message may have been processed");
    assert_eq!(api_requests(&p, "/open-apis/im"), 1);
    assert!(p.sent_messages().is_empty());
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_fires() {
    let p = FakePlatform::start().await;
    let c = builder(&p).attempt_timeout(Duration::from_secs(2)).retry(RetryPolicy::none()).build().unwrap();
    c.tokens().tenant_access_token(None).await.unwrap();
    p.inject(Fault::delay(Duration::from_secs(60)).on_path_prefix("/open-apis/contact").times(1));
    let err = get_user(&c, "ou_1").await.unwrap_err();
    match err {
        LarkError::Timeout(t) => assert_eq!(t.kind(), TimeoutKind::Attempt),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn total_timeout_fires_across_retries() {
    let p = FakePlatform::start().await;
    let c = builder(&p)
        .timeout(Duration::from_secs(5))
        .attempt_timeout(Duration::from_secs(2))
        .retry(RetryPolicy::default().max_retries(10).budget(None))
        .build()
        .unwrap();
    c.tokens().tenant_access_token(None).await.unwrap();
    p.inject(Fault::delay(Duration::from_secs(60)).on_path_prefix("/open-apis/contact").times(100));
    let started = tokio::time::Instant::now();
    let err = get_user(&c, "ou_1").await.unwrap_err();
    match err {
        LarkError::Timeout(t) => assert_eq!(t.kind(), TimeoutKind::Total),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(api_requests(&p, "/open-apis/contact") >= 2, "the GET was retried after its attempt timed out");
}

#[tokio::test]
async fn helpdesk_calls_carry_the_helpdesk_header_and_others_do_not() {
    let p = FakePlatform::start().await;
    let c = builder(&p).helpdesk("hd_1", "hd-token").build().unwrap();
    c.get("/open-apis/helpdesk/v1/tickets").send_json().await.ok();
    c.get("/open-apis/testkit/echo/other").send_json().await.unwrap();
    let sent = p.requests();
    let helpdesk = sent.iter().find(|r| r.path == "/open-apis/helpdesk/v1/tickets").unwrap();
    // base64("hd_1:hd-token")
    assert_eq!(helpdesk.headers["x-lark-helpdesk-authorization"], "aGRfMTpoZC10b2tlbg==");
    let other = sent.iter().find(|r| r.path == "/open-apis/testkit/echo/other").unwrap();
    assert!(other.headers.get("x-lark-helpdesk-authorization").is_none());
    // A path written without its leading slash is the same API, with the same header.
    c.get("open-apis/helpdesk/v1/faqs").send_json().await.ok();
    let sent = p.requests();
    let faqs = sent.iter().find(|r| r.path == "/open-apis/helpdesk/v1/faqs").unwrap();
    assert_eq!(faqs.headers["x-lark-helpdesk-authorization"], "aGRfMTpoZC10b2tlbg==");
}

#[tokio::test]
async fn default_headers_are_sent_unless_the_call_sets_them() {
    let p = FakePlatform::start().await;
    let c = builder(&p)
        .default_header(http::HeaderName::from_static("x-team"), http::HeaderValue::from_static("a"))
        .build()
        .unwrap();
    c.get("/open-apis/testkit/echo/1").send_json().await.unwrap();
    c.get("/open-apis/testkit/echo/2").header("x-team", "b").send_json().await.unwrap();
    let sent = p.requests();
    assert_eq!(sent.iter().find(|r| r.path.ends_with("/1")).unwrap().headers["x-team"], "a");
    let second: Vec<_> =
        sent.iter().find(|r| r.path.ends_with("/2")).unwrap().headers.get_all("x-team").iter().collect();
    assert_eq!(second, ["b"]);
}

#[tokio::test]
async fn path_values_are_percent_encoded() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    let reply = c
        .get("/open-apis/testkit/echo/:a/:b")
        .path_param("a", "x/y z")
        .path_param("b", "飞书")
        .query("ids", "a b")
        .query("ids", "c")
        .send_json()
        .await
        .unwrap();
    assert_eq!(reply["path"], "/open-apis/testkit/echo/x%2Fy%20z/%E9%A3%9E%E4%B9%A6");
    assert_eq!(reply["query"], "ids=a%20b&ids=c");
}

#[tokio::test]
async fn multipart_upload_arrives_intact() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    let image: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let reply = c
        .post("/open-apis/im/v1/images")
        .multipart(Multipart::new().text("image_type", "message").file_with_type(
            "image",
            "cat.png",
            "image/png",
            image.clone(),
        ))
        .send_json()
        .await
        .unwrap();
    assert!(reply["image_key"].as_str().unwrap().starts_with("img_"));
    let uploads = p.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].fields, vec![("image_type".to_owned(), "message".to_owned())]);
    let file = &uploads[0].files[0];
    assert_eq!(file.field, "image");
    assert_eq!(file.file_name.as_deref(), Some("cat.png"));
    assert_eq!(file.content_type.as_deref(), Some("image/png"));
    assert_eq!(&file.data[..], &image[..]);
}

#[tokio::test]
async fn streamed_upload_from_a_reader_and_download_round_trip() {
    use futures_util::TryStreamExt;
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let reply = c
        .post("/open-apis/im/v1/files")
        .multipart(Multipart::new().text("file_type", "stream").text("file_name", "报告.bin").file_reader(
            "file",
            "报告.bin",
            std::io::Cursor::new(data.clone()),
        ))
        .send_json()
        .await
        .unwrap();
    let key = reply["file_key"].as_str().unwrap().to_owned();
    let dl = c.get("/open-apis/im/v1/files/:file_key").path_param("file_key", key).download().await.unwrap();
    assert_eq!(dl.file_name(), Some("报告.bin"));
    let chunks: Vec<_> = dl.into_stream().try_collect().await.unwrap();
    assert_eq!(chunks.concat(), data);
}

#[tokio::test]
async fn a_download_of_a_json_error_is_an_error() {
    let p = FakePlatform::start().await;
    let c = builder(&p).build().unwrap();
    p.inject(Fault::api_error(234003, "file not found").on_path_prefix("/open-apis/im/v1/files").times(1));
    let err = c.get("/open-apis/im/v1/files/:k").path_param("k", "size_10").download().await.unwrap_err();
    assert_eq!(err.code(), Some(234003));
}

#[tokio::test]
async fn shared_memory_store_shares_tokens_between_clients() {
    let p = FakePlatform::start().await;
    let store = MemoryStore::new();
    let a = builder(&p).token_store(store.clone()).build().unwrap();
    let b = builder(&p).token_store(store).build().unwrap();
    get_user(&a, "ou_1").await.unwrap();
    get_user(&b, "ou_1").await.unwrap();
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 1);
}

#[tokio::test]
async fn different_secrets_never_share_a_cached_token() {
    let p = FakePlatform::start_with(FakePlatformConfig::default()).await;
    let store = MemoryStore::new();
    let good = builder(&p).token_store(store.clone()).build().unwrap();
    get_user(&good, "ou_1").await.unwrap();
    let wrong = Client::builder(p.app_id(), "not-the-secret")
        .base_url(p.base_url())
        .token_store(store)
        .build()
        .unwrap();
    let err = get_user(&wrong, "ou_1").await.unwrap_err();
    assert!(matches!(err, LarkError::Token(ref t) if t.kind() == TokenErrorKind::Fetch), "{err:?}");
    assert_eq!(err.code(), Some(10014));
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_not_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = Client::builder("cli_x", "secret")
        .base_url(format!("http://{addr}"))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = get_user(&c, "ou_1").await.unwrap_err();
    match &err {
        LarkError::Token(t) => assert_eq!(t.kind(), TokenErrorKind::Unreachable),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_not_sent());
}

#[test]
fn builder_rejects_bad_configuration() {
    assert!(matches!(Client::builder("", "s").build(), Err(LarkError::Config(_))));
    assert!(matches!(Client::builder("cli_1", "").build(), Err(LarkError::Config(_))));
    let err = Client::builder("cli_1", "s").base_url("ftp://x").build().unwrap_err();
    assert!(err.to_string().contains("http"), "{err}");
    for bad in ["https://h/lark?x=1", "https://h/lark#x", "open.feishu.cn"] {
        assert!(
            matches!(Client::builder("cli_1", "s").base_url(bad).build(), Err(LarkError::Config(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        Client::builder("cli_1", "s").timeout(Duration::ZERO).build(),
        Err(LarkError::Config(_))
    ));
    let http = lark_transport::HttpClient::new().unwrap();
    let both = Client::builder("cli_1", "s")
        .http_client(http.clone())
        .http_service(tower::util::BoxCloneSyncService::new(http))
        .build();
    assert!(matches!(both, Err(LarkError::Config(_))));
}

#[tokio::test]
async fn over_https_calls_token_fetches_and_uploads_share_one_http2_connection() {
    let p = FakePlatform::start_with(FakePlatformConfig { tls: true, ..FakePlatformConfig::default() }).await;
    let ca = p.ca_certificate_der().unwrap().to_vec();
    let http = lark_transport::HttpClient::builder().add_root_certificate_der(ca).build().unwrap();
    let c = builder(&p).http_client(http).build().unwrap();
    let ids: Vec<String> = (1..=8).map(|i| format!("ou_{i}")).collect();
    let users = futures_util::future::join_all(ids.iter().map(|id| get_user(&c, id))).await;
    assert!(users.iter().all(Result::is_ok), "{users:?}");
    let sent = c
        .post("/open-apis/im/v1/messages")
        .query("receive_id_type", "open_id")
        .json(&json!({"receive_id": "ou_1", "msg_type": "text", "content": "{\"text\":\"hi\"}"}))
        .send_json()
        .await
        .unwrap();
    assert!(sent["message_id"].as_str().unwrap().starts_with("om_"));
    let image = vec![7u8; 100_000];
    c.post("/open-apis/im/v1/images")
        .multipart(Multipart::new().text("image_type", "message").file("image", "a.png", image.clone()))
        .send_json()
        .await
        .unwrap();
    assert_eq!(p.uploads()[0].files[0].data.len(), image.len());
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 1);
    assert_eq!(p.connections(), 1);
}
