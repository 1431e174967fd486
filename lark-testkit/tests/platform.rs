//! End-to-end tests of the fake platform over real loopback HTTP.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lark_testkit::{Endpoint, FakePlatform, FakePlatformConfig, Fault};
use serde_json::{json, Value};

// ---- a small client ----------------------------------------------------------------------

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body[..self.body.len().min(200)]))
        })
    }

    fn code(&self) -> i64 {
        self.json()["code"].as_i64().expect("code")
    }
}

impl Http {
    fn new(platform: &FakePlatform) -> Http {
        Http { client: Client::builder(TokioExecutor::new()).build_http(), base: platform.base_url() }
    }

    fn h2(platform: &FakePlatform) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).http2_only(true).build_http(),
            base: platform.base_url(),
        }
    }

    async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, hyper_util::client::legacy::Error> {
        let mut req = Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = self.client.request(req.body(Full::new(body)).unwrap()).await?;
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Bytes) -> Reply {
        self.try_send(method, path, headers, body).await.expect("request failed")
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.send(Method::GET, path, &[("authorization", &auth)], Bytes::new()).await
    }

    async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json; charset=utf-8")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        let body = Bytes::from(serde_json::to_vec(body).unwrap());
        self.send(Method::POST, path, &headers, body).await
    }
}

const APP_INTERNAL: &str = "/open-apis/auth/v3/app_access_token/internal";
const TENANT_INTERNAL: &str = "/open-apis/auth/v3/tenant_access_token/internal";
const APP_MARKET: &str = "/open-apis/auth/v3/app_access_token";
const TENANT_MARKET: &str = "/open-apis/auth/v3/tenant_access_token";
const RESEND: &str = "/open-apis/auth/v3/app_ticket/resend";

fn creds(p: &FakePlatform) -> Value {
    json!({"app_id": p.app_id(), "app_secret": p.app_secret()})
}

async fn tenant_token(http: &Http, p: &FakePlatform) -> String {
    let r = http.post_json(TENANT_INTERNAL, None, &creds(p)).await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()["tenant_access_token"].as_str().expect("token").to_owned()
}

// ---- tokens ------------------------------------------------------------------------------

#[tokio::test]
async fn self_built_token_flow() {
    let p = FakePlatform::start().await;
    let http = Http::new(&p);

    let r = http.post_json(APP_INTERNAL, None, &creds(&p)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["code"], 0);
    assert_eq!(v["msg"], "ok");
    assert_eq!(v["expire"], 7200);
    assert!(v["app_access_token"].as_str().unwrap().starts_with("a-"));
    assert!(v.get("data").is_none());
    let log1 = r.headers["x-tt-logid"].clone();

    let r = http.post_json(TENANT_INTERNAL, None, &creds(&p)).await;
    let v = r.json();
    assert_eq!(v["code"], 0);
    let token = v["tenant_access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("t-"));
    assert_ne!(r.headers["x-tt-logid"], log1, "log ids are unique");

    // Wrong secret: HTTP 200, code 10014. Malformed JSON: HTTP 400, code 9499.
    let r = http.post_json(TENANT_INTERNAL, None, &json!({"app_id": p.app_id(), "app_secret": "nope"})).await;
    assert_eq!((r.status, r.code()), (StatusCode::OK, 10014));
    let r = http
        .send(
            Method::POST,
            TENANT_INTERNAL,
            &[("content-type", "application/json")],
            Bytes::from_static(b"{not json"),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, 9499));

    assert_eq!(p.hits(Endpoint::AppAccessTokenInternal), 1);
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 3);
    assert_eq!(p.hits(Endpoint::AppAccessToken), 0);

    // The tenant token works and is recorded with its tenant.
    let r = http.get("/open-apis/contact/v3/users/ou_1", &token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["data"]["user"]["name"], "User 1");
    let last = p.requests().pop().unwrap();
    assert_eq!(last.tenant_key.as_deref(), Some("tenant_selfbuilt"));
    assert_eq!(last.path, "/open-apis/contact/v3/users/ou_1");
    assert_eq!(p.total_requests(), 5);
    assert_eq!(p.requests().len(), 5);
    p.clear_requests();
    assert!(p.requests().is_empty());
    assert_eq!(p.total_requests(), 5);
}

#[tokio::test]
async fn marketplace_token_flow() {
    let p = FakePlatform::start().await;
    let http = Http::new(&p);
    let app_body =
        |ticket: &str| json!({"app_id": p.app_id(), "app_secret": p.app_secret(), "app_ticket": ticket});

    // No ticket issued yet: 10012.
    let r = http.post_json(APP_MARKET, None, &app_body("whatever")).await;
    assert_eq!((r.status, r.code()), (StatusCode::OK, 10012));
    let r = http.post_json(RESEND, None, &creds(&p)).await;
    assert_eq!(r.json(), json!({"code": 0, "msg": "ok"}));
    assert_eq!(p.hits(Endpoint::AppTicketResend), 1);

    let old = p.issue_app_ticket();
    let ticket = p.issue_app_ticket();
    assert_ne!(old, ticket);
    let r = http.post_json(APP_MARKET, None, &app_body(&old)).await;
    assert_eq!(r.code(), 10012, "old tickets become invalid");
    let r = http.post_json(APP_MARKET, None, &app_body(&ticket)).await;
    let v = r.json();
    assert_eq!(v["code"], 0);
    let app_token = v["app_access_token"].as_str().unwrap().to_owned();

    let r = http
        .post_json(TENANT_MARKET, None, &json!({"app_access_token": app_token, "tenant_key": "tenant_42"}))
        .await;
    let tenant_token = r.json()["tenant_access_token"].as_str().unwrap().to_owned();
    let r = http.get("/open-apis/testkit/echo/x", &tenant_token).await;
    assert_eq!(r.json()["data"]["auth"]["tenant_key"], "tenant_42");
    assert_eq!(p.requests().pop().unwrap().tenant_key.as_deref(), Some("tenant_42"));

    // A self-built app token is not a marketplace app token.
    let v = http.post_json(APP_INTERNAL, None, &creds(&p)).await.json();
    let internal_app = v["app_access_token"].as_str().unwrap();
    let r = http
        .post_json(TENANT_MARKET, None, &json!({"app_access_token": internal_app, "tenant_key": "tenant_42"}))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, 99991664));

    assert_eq!(p.hits(Endpoint::AppAccessToken), 3);
    assert_eq!(p.hits(Endpoint::TenantAccessToken), 2);
}

#[tokio::test]
async fn invalid_tokens_are_refused() {
    let p = FakePlatform::start().await;
    let http = Http::new(&p);
    let path = "/open-apis/contact/v3/users/ou_2";

    let r = http.send(Method::GET, path, &[], Bytes::new()).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, 99991661));
    let r = http.get(path, "t-forged").await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, 99991663));
    assert_eq!(
        r.json()["msg"],
        "Invalid access token for authorization. Please make a request with token attached."
    );
    assert_eq!(http.get(path, "a-forged").await.code(), 99991664);
    assert_eq!(http.get(path, "forged").await.code(), 99991671);
    assert_eq!(http.get(path, "u-any-user-token").await.code(), 0);
    assert_eq!(p.requests().pop().unwrap().tenant_key, None);

    let app = http.post_json(APP_INTERNAL, None, &creds(&p)).await.json()["app_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(http.get(path, &app).await.code(), 0);
    let tenant = tenant_token(&http, &p).await;
    assert_eq!(http.get(path, &tenant).await.code(), 0);

    p.invalidate_tokens();
    assert_eq!(http.get(path, &tenant).await.code(), 99991663);
    assert_eq!(http.get(path, &app).await.code(), 99991664);
    let fresh = tenant_token(&http, &p).await;
    assert_eq!(http.get(path, &fresh).await.code(), 0);

    // Echo: a token is optional, a bad one is refused.
    let r = http.send(Method::GET, "/open-apis/testkit/echo", &[], Bytes::new()).await;
    assert_eq!(r.code(), 0);
    assert_eq!(r.json()["data"]["auth"]["kind"], Value::Null);
    assert_eq!(http.get("/open-apis/testkit/echo", "t-forged").await.code(), 99991663);
}

#[tokio::test(start_paused = true)]
async fn tokens_expire_with_tokio_time() {
    let p = FakePlatform::start_with(FakePlatformConfig {
        token_ttl: Duration::from_secs(60),
        ..FakePlatformConfig::default()
    })
    .await;
    let http = Http::new(&p);
    let r = http.post_json(TENANT_INTERNAL, None, &creds(&p)).await;
    assert_eq!(r.json()["expire"], 60);
    let short = r.json()["tenant_access_token"].as_str().unwrap().to_owned();

    p.set_token_ttl(Duration::from_secs(600));
    let r = http.post_json(TENANT_INTERNAL, None, &creds(&p)).await;
    assert_eq!(r.json()["expire"], 600);
    let long = r.json()["tenant_access_token"].as_str().unwrap().to_owned();

    let path = "/open-apis/contact/v3/users/ou_1";
    assert_eq!(http.get(path, &short).await.code(), 0);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(http.get(path, &short).await.code(), 99991663);
    assert_eq!(http.get(path, &long).await.code(), 0);
}

// ---- faults ------------------------------------------------------------------------------

#[tokio::test]
async fn injected_faults() {
    let p = FakePlatform::start().await;
    let http = Http::new(&p);
    let token = tenant_token(&http, &p).await;
    let user = "/open-apis/contact/v3/users/ou_1";

    // Status, scoped: contact requests pass, im requests get it twice.
    p.inject(Fault::status(503).on_path_prefix("/open-apis/im").times(2));
    assert_eq!(http.get(user, &token).await.code(), 0);
    for _ in 0..2 {
        let r = http.get("/open-apis/im/v1/images/img_x", &token).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.json(), json!({"code": 503, "msg": "injected"}));
        assert!(r.headers.contains_key("x-tt-logid"));
    }
    assert_eq!(p.pending_faults(), 0);

    // Default scope never touches the token endpoints.
    p.inject(Fault::rate_limit(7));
    tenant_token(&http, &p).await;
    let r = http.get(user, &token).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["x-ogw-ratelimit-reset"], "7");
    assert_eq!(r.json(), json!({"code": 99991400, "msg": "request trigger frequency limit"}));

    // API errors: token codes come with HTTP 400, others with 200.
    p.inject(Fault::api_error(99991663, "token gone"));
    p.inject(Fault::api_error(230020, "slow down"));
    let r = http.get(user, &token).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, 99991663));
    assert_eq!(r.json()["msg"], "token gone");
    let r = http.get(user, &token).await;
    assert_eq!((r.status, r.code()), (StatusCode::OK, 230020));
    assert_eq!(http.get(user, &token).await.code(), 0);

    // Faults scoped to the auth endpoints do hit them.
    p.inject(Fault::status(500).on_path_prefix("/open-apis/auth/v3/tenant"));
    let r = http.post_json(TENANT_INTERNAL, None, &creds(&p)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(p.hits(Endpoint::TenantAccessTokenInternal), 3);

    // Dropped connection: no response at all; the next request is served.
    p.inject(Fault::drop_connection());
    let fresh = Http::new(&p);
    let auth = format!("Bearer {token}");
    let err = fresh
        .try_send(Method::GET, user, &[("authorization", &auth)], Bytes::new())
        .await
        .expect_err("the connection is dropped");
    assert!(!err.is_connect(), "{err:?}");
    assert_eq!(fresh.get(user, &token).await.code(), 0);

    // A fault with zero repetitions is ignored; clear_faults empties the queue.
    p.inject(Fault::status(500).times(0));
    assert_eq!(p.pending_faults(), 0);
    p.inject(Fault::status(500).times(3));
    p.clear_faults();
    assert_eq!(http.get(user, &token).await.code(), 0);
}

#[tokio::test(start_paused = true)]
async fn delay_fault_uses_tokio_time() {
    let p = FakePlatform::start().await;
    let http = Http::new(&p);
    let token = tenant_token(&http, &p).await;
    p.inject(Fault::delay(Duration::from_secs(30)));
    let wall = std::time::Instant::now();
    let start = tokio::time::Instant::now();
    let r = http.get("/open-apis/contact/v3/users/ou_3", &token).await;
    assert_eq!(r.code(), 0, "handled normally after the delay");
    assert!(start.elapsed() >= Duration::from_secs(30));
    assert!(wall.elapsed() < Duration::from_secs(5), "no real sleep");
}

// ---- messages ----------------------------------------------------------------------------

#[tokio::test]
async fn send_and_reply_messages() {
    let p = FakePlatform::start().await;
    let http = Http::new(&p);
    let token = tenant_token(&http, &p).await;
    let content = json!({"text": "hello"}).to_string();

    let r = http
        .post_json(
            "/open-apis/im/v1/messages?receive_id_type=chat_id",
            Some(&token),
            &json!({"receive_id": "oc_abc", "msg_type": "text", "content": content}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let data = r.json()["data"].clone();
    let message_id = data["message_id"].as_str().unwrap().to_owned();
    assert!(message_id.starts_with("om_"));
    assert_eq!(data["chat_id"], "oc_abc");
    assert_eq!(data["msg_type"], "text");
    assert_eq!(data["body"]["content"], content.as_str());
    assert!(data["create_time"].is_string());

    let r = http
        .post_json(
            &format!("/open-apis/im/v1/messages/{message_id}/reply"),
            Some(&token),
            &json!({"msg_type": "text", "content": content}),
        )
        .await;
    let data = r.json()["data"].clone();
    assert_eq!(data["parent_id"], message_id.as_str());
    assert_eq!(data["chat_id"], "oc_abc");

    let sent = p.sent_messages();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["receive_id"], "oc_abc");
    assert_eq!(sent[0]["receive_id_type"], "chat_id");
    assert_eq!(sent[0]["message_id"], message_id.as_str());
    assert_eq!(sent[0]["tenant_key"], "tenant_selfbuilt");
    assert_eq!(sent[1]["reply_to"], message_id.as_str());

    // Validation failures.
    let r = http
        .post_json(
            "/open-apis/im/v1/messages",
            Some(&token),
            &json!({"receive_id": "ou_1", "msg_type": "text", "content": content}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, 99992402));
    assert_eq!(r.json()["error"]["field_violations"][0]["field"], "receive_id_type");
    let r = http
        .post_json(
            "/open-apis/im/v1/messages?receive_id_type=open_id",
            Some(&token),
            &json!({"receive_id": "ou_1", "msg_type": "text", "content": {"text": "not a string"}}),
        )
        .await;
    assert_eq!(r.code(), 99992402);
    assert_eq!(p.sent_messages().len(), 2);
}

// ---- contact users -----------------------------------------------------------------------

#[tokio::test]
async fn users_and_pagination() {
    let p = FakePlatform::start().await;
    let http = Http::new(&p);
    let token = tenant_token(&http, &p).await;

    let r = http.get("/open-apis/contact/v3/users/u_7?user_id_type=user_id", &token).await;
    let user = r.json()["data"]["user"].clone();
    assert_eq!(user["open_id"], "ou_7");
    assert_eq!(user["union_id"], "on_7");
    let r = http.get("/open-apis/contact/v3/users/ou_26", &token).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, 41050));

    // Default page size is 10.
    let r = http.get("/open-apis/contact/v3/users", &token).await;
    assert_eq!(r.json()["data"]["items"].as_array().unwrap().len(), 10);

    let mut seen = Vec::new();
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/open-apis/contact/v3/users?page_size=7".to_owned();
        if let Some(t) = &page_token {
            path.push_str("&page_token=");
            path.push_str(t);
        }
        let data = http.get(&path, &token).await.json()["data"].clone();
        pages += 1;
        for item in data["items"].as_array().unwrap() {
            seen.push(item["open_id"].as_str().unwrap().to_owned());
        }
        if data["has_more"] == false {
            break;
        }
        page_token = Some(data["page_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(pages, 4);
    let expected: Vec<String> = (1..=25).map(|n| format!("ou_{n}")).collect();
    assert_eq!(seen, expected);

    let r = http.get("/open-apis/contact/v3/users?page_token=garbage", &token).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, 99992402));
    let r = http.get("/open-apis/contact/v3/users?page_size=0", &token).await;
    assert_eq!(r.code(), 99992402);
    let r = http.get("/open-apis/contact/v3/users?page_size=500", &token).await;
    assert_eq!(r.json()["data"]["items"].as_array().unwrap().len(), 25);
}

// ---- uploads and downloads ---------------------------------------------------------------

fn multipart(boundary: &str, fields: &[(&str, &str)], file: (&str, &str, &str, &[u8])) -> Bytes {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    let (field, file_name, content_type, data) = file;
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body.into()
}

#[tokio::test]
async fn upload_then_download_round_trip() {
    let p = FakePlatform::start().await;
    let http = Http::new(&p);
    let token = tenant_token(&http, &p).await;
    let auth = format!("Bearer {token}");
    let ct = "multipart/form-data; boundary=XyZ123";
    let image: Vec<u8> = (0..=255u8).cycle().take(3000).collect();

    let body = multipart("XyZ123", &[("image_type", "message")], ("image", "pic.png", "image/png", &image));
    let r = http
        .send(
            Method::POST,
            "/open-apis/im/v1/images",
            &[("authorization", &auth), ("content-type", ct)],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let image_key = r.json()["data"]["image_key"].as_str().unwrap().to_owned();
    let r = http.get(&format!("/open-apis/im/v1/images/{image_key}"), &token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "image/png");
    assert_eq!(&r.body[..], &image[..]);

    let name = "报告 Q1.pdf";
    let pdf = b"%PDF-1.7 fake\x00\xff";
    let body = multipart(
        "XyZ123",
        &[("file_type", "pdf"), ("file_name", name)],
        ("file", "report.pdf", "application/pdf", pdf),
    );
    let r = http
        .send(Method::POST, "/open-apis/im/v1/files", &[("authorization", &auth), ("content-type", ct)], body)
        .await;
    let file_key = r.json()["data"]["file_key"].as_str().unwrap().to_owned();
    let r = http.get(&format!("/open-apis/im/v1/files/{file_key}"), &token).await;
    assert_eq!(&r.body[..], pdf);
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert_eq!(
        r.headers["content-disposition"],
        "attachment; filename=\"__ Q1.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%20Q1.pdf"
    );

    let uploads = p.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[0].path, "/open-apis/im/v1/images");
    assert_eq!(uploads[0].fields, vec![("image_type".to_owned(), "message".to_owned())]);
    assert_eq!(uploads[0].files[0].field, "image");
    assert_eq!(uploads[0].files[0].file_name.as_deref(), Some("pic.png"));
    assert_eq!(uploads[0].files[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(uploads[1].fields[1], ("file_name".to_owned(), name.to_owned()));
    assert_eq!(&uploads[1].files[0].data[..], pdf);

    // Missing image_type: validation error, not recorded. Unknown key: 234003.
    let body = multipart("XyZ123", &[], ("image", "a.png", "image/png", b"x"));
    let r = http
        .send(
            Method::POST,
            "/open-apis/im/v1/images",
            &[("authorization", &auth), ("content-type", ct)],
            body,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, 99992402));
    assert_eq!(p.uploads().len(), 2);
    let r = http.get("/open-apis/im/v1/files/file_nope", &token).await;
    assert_eq!(r.code(), 234003);
}

#[tokio::test]
async fn generated_download_streams_the_pattern() {
    let p = FakePlatform::start().await;
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let n: u64 = 5_000_003;
    let req = Request::get(format!("{}/open-apis/im/v1/files/size_{n}", p.base_url()))
        .header("authorization", "Bearer u-reader")
        .body(Full::default())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-length"], n.to_string().as_str());
    assert_eq!(
        res.headers()["content-disposition"],
        format!("attachment; filename=\"size_{n}.bin\"").as_str()
    );
    let mut body = res.into_body();
    let mut i: u64 = 0;
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        for (j, b) in data.iter().enumerate() {
            assert_eq!(*b, ((i + j as u64) % 251) as u8, "byte {}", i + j as u64);
        }
        i += data.len() as u64;
    }
    assert_eq!(i, n);
}

// ---- echo, recording, routing ------------------------------------------------------------

#[tokio::test]
async fn echo_keeps_the_raw_request() {
    let p = FakePlatform::start().await;
    let http = Http::new(&p);
    let path = "/open-apis/testkit/echo/a%2Fb%20c/%E4%B8%AD?q=%E4%B8%AD+x&user_ids=a&user_ids=b";
    let r = http
        .send(
            Method::PUT,
            path,
            &[("authorization", "Bearer u-someone"), ("x-custom", "one"), ("x-custom", "two")],
            Bytes::from_static(b"payload"),
        )
        .await;
    let data = r.json()["data"].clone();
    assert_eq!(data["method"], "PUT");
    assert_eq!(data["path"], "/open-apis/testkit/echo/a%2Fb%20c/%E4%B8%AD");
    assert_eq!(data["query"], "q=%E4%B8%AD+x&user_ids=a&user_ids=b");
    assert_eq!(data["body"], "payload");
    assert_eq!(data["headers"]["x-custom"], "one, two");
    assert!(data["headers"].get("authorization").is_none());
    assert_eq!(data["auth"]["kind"], "user");

    let rec = p.requests().pop().unwrap();
    assert_eq!(rec.method, Method::PUT);
    assert_eq!(rec.path, "/open-apis/testkit/echo/a%2Fb%20c/%E4%B8%AD");
    assert_eq!(rec.query.as_deref(), Some("q=%E4%B8%AD+x&user_ids=a&user_ids=b"));
    assert_eq!(&rec.body[..], b"payload");
    assert_eq!(rec.headers["authorization"], "Bearer u-someone");

    // Recorded bodies are truncated to 1 MiB.
    let big = Bytes::from(vec![b'z'; 1024 * 1024 + 10]);
    let r = http.send(Method::POST, "/open-apis/testkit/echo", &[], big).await;
    assert_eq!(r.code(), 0);
    assert_eq!(p.requests().pop().unwrap().body.len(), 1024 * 1024);

    // Unknown routes.
    let r = http.get("/open-apis/nope/v1/x", "u-x").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json(), json!({"code": 404, "msg": "not found"}));
    assert!(r.headers.contains_key("x-tt-logid"));
    let r = http.get("/elsewhere", "u-x").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(p.total_requests(), 4);
}

#[tokio::test]
async fn h2c_works() {
    let p = FakePlatform::start().await;
    let http = Http::h2(&p);
    let token = tenant_token(&http, &p).await;
    let r = http.get("/open-apis/testkit/echo/h2", &token).await;
    assert_eq!(r.code(), 0);
    assert_eq!(p.requests().pop().unwrap().tenant_key.as_deref(), Some("tenant_selfbuilt"));
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let p = FakePlatform::start().await;
    let addr = p.addr();
    let clone = p.clone();
    drop(p);
    // A live clone keeps it running.
    let r = Http::new(&clone).get("/open-apis/testkit/echo", "u-x").await;
    assert_eq!(r.code(), 0);
    clone.shutdown();
    assert!(wait_refused(addr).await, "the listener is closed after shutdown");

    // Dropping the last handle shuts down too.
    let p = FakePlatform::start().await;
    let addr = p.addr();
    drop(p);
    assert!(wait_refused(addr).await, "the listener is closed after drop");
}

async fn wait_refused(addr: std::net::SocketAddr) -> bool {
    for _ in 0..200 {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}
