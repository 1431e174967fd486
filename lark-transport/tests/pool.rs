//! `HttpClient`'s connection pool against lark-testkit, counted at the server: connections are
//! reused, given back when a streamed reply ends and not when it is cut short, replaced when
//! the server closed them, closed after the idle timeout; HTTP/2 (h2c, and over TLS by ALPN) is
//! one shared connection; TLS trusts only the roots it is given.

use std::time::Duration;

use futures_util::StreamExt;
use lark_testkit::{FakePlatform, FakePlatformConfig};
use lark_transport::{Body, HttpClient};
use lark_types::{LarkError, TransportErrorKind};
use tower::ServiceExt;

const ECHO: &str = "/open-apis/testkit/echo/pool";

fn get(url: String) -> http::Request<Body> {
    http::Request::get(url).body(Body::empty()).unwrap()
}

/// One call; the reply's body read whole. Returns the status and the HTTP version.
async fn call(http: &HttpClient, req: http::Request<Body>) -> (http::StatusCode, http::Version) {
    let resp = http.clone().oneshot(req).await.unwrap();
    let (status, version) = (resp.status(), resp.version());
    resp.into_body().collect_limited(usize::MAX).await.unwrap();
    (status, version)
}

async fn echo(http: &HttpClient, p: &FakePlatform) -> http::Version {
    let (status, version) = call(http, get(format!("{}{ECHO}", p.base_url()))).await;
    assert_eq!(status, 200);
    version
}

/// A tenant token from the fake platform, as an `Authorization` value.
async fn bearer(http: &HttpClient, p: &FakePlatform) -> String {
    let body = serde_json::json!({"app_id": p.app_id(), "app_secret": p.app_secret()}).to_string();
    let req = http::Request::post(format!("{}/open-apis/auth/v3/tenant_access_token/internal", p.base_url()))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = http.clone().oneshot(req).await.unwrap();
    let bytes = resp.into_body().collect_limited(usize::MAX).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    format!("Bearer {}", v["tenant_access_token"].as_str().unwrap())
}

fn download(p: &FakePlatform, auth: &str, size: usize) -> http::Request<Body> {
    http::Request::get(format!("{}/open-apis/im/v1/files/size_{size}", p.base_url()))
        .header("authorization", auth)
        .body(Body::empty())
        .unwrap()
}

/// Waits (checking every millisecond, at most 5 s; with the clock paused, the clock moves on
/// as it waits) until the client has seen its idle connections close.
async fn until_no_idle(http: &HttpClient) {
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        while http.idle_connections() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the client never saw its idle connections close");
}

#[tokio::test]
async fn sequential_calls_share_one_connection() {
    let p = FakePlatform::start().await;
    let http = HttpClient::new().unwrap();
    for _ in 0..20 {
        assert_eq!(echo(&http, &p).await, http::Version::HTTP_11);
    }
    assert_eq!(p.connections(), 1);
    assert_eq!(p.total_requests(), 20);
    assert_eq!(http.idle_connections(), 1);
}

#[tokio::test]
async fn concurrent_calls_open_a_connection_each_then_reuse_them() {
    let p = FakePlatform::start().await;
    let http = HttpClient::new().unwrap();
    let round = || futures_util::future::join_all((0..8).map(|_| echo(&http, &p)));
    round().await;
    assert_eq!(p.connections(), 8, "plain HTTP/1.1 calls connect side by side");
    round().await;
    round().await;
    assert_eq!(p.connections(), 8, "later rounds opened connections");
    assert_eq!(p.total_requests(), 24);
}

type Chunks =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, lark_types::BoxError>> + Send>>;

/// A fake platform, a client, and the stream of a `size`-byte download through it (after a
/// token fetch on the same connection).
async fn streamed_download(size: usize) -> (FakePlatform, HttpClient, Chunks) {
    let p = FakePlatform::start().await;
    let http = HttpClient::new().unwrap();
    let auth = bearer(&http, &p).await;
    let resp = http.clone().oneshot(download(&p, &auth, size)).await.unwrap();
    (p, http, Box::pin(resp.into_body().into_data_stream()))
}

#[tokio::test]
async fn a_streamed_reply_read_to_its_end_gives_its_connection_back() {
    let (p, http, mut stream) = streamed_download(300_000).await;
    let mut total = 0;
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len();
    }
    assert_eq!(total, 300_000);
    assert_eq!(http.idle_connections(), 1);
    echo(&http, &p).await;
    assert_eq!(p.connections(), 1);
}

#[tokio::test]
async fn a_streamed_reply_dropped_halfway_does_not_reuse_its_connection() {
    let (p, http, mut stream) = streamed_download(5_000_000).await;
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty() && first.len() < 5_000_000);
    drop(stream);
    assert_eq!(http.idle_connections(), 0);
    echo(&http, &p).await;
    assert_eq!(p.connections(), 2);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_not_reused_and_the_request_arrives_once() {
    let p = FakePlatform::start().await;
    let http = HttpClient::new().unwrap();
    echo(&http, &p).await;
    p.close_connections();
    // The client sees the close before the next call, so the closed connection is skipped. (The
    // resend of a request a connection closed before sending needs a race and is not covered.)
    until_no_idle(&http).await;
    let req = http::Request::post(format!("{}{ECHO}", p.base_url())).body(Body::from("once")).unwrap();
    assert_eq!(call(&http, req).await.0, 200);
    assert_eq!(p.connections(), 2);
    assert_eq!(p.total_requests(), 2);
    let posts = p.requests().iter().filter(|r| r.method == http::Method::POST).count();
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let p = FakePlatform::start().await;
    let http = HttpClient::builder().pool_idle_timeout(Duration::from_secs(5)).build().unwrap();
    echo(&http, &p).await;
    assert_eq!(http.idle_connections(), 1);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(http.idle_connections(), 1, "closed before the idle timeout");
    expire_then_reconnect(&http, &p, Duration::from_secs(2)).await;
}

/// With the clock paused: moves it `by` on, waits for the reaper to close the idle connection,
/// then (clock running again) checks that the next call opens a second connection.
async fn expire_then_reconnect(http: &HttpClient, p: &FakePlatform, by: Duration) {
    tokio::time::advance(by).await;
    until_no_idle(http).await;
    tokio::time::resume();
    echo(http, p).await;
    assert_eq!(p.connections(), 2);
}

#[tokio::test]
async fn an_unused_http2_connection_closes_after_the_idle_timeout() {
    let p = FakePlatform::start().await;
    let http =
        HttpClient::builder().http2_only(true).pool_idle_timeout(Duration::from_secs(5)).build().unwrap();
    echo(&http, &p).await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(3)).await;
    // No I/O while the clock is paused: it could jump to a timer while a reply is on its way.
    tokio::time::resume();
    echo(&http, &p).await; // taking it counts as use
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(http.idle_connections(), 1, "closed though used within the idle timeout");
    expire_then_reconnect(&http, &p, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn with_no_idle_connections_allowed_every_call_connects() {
    let p = FakePlatform::start().await;
    let http = HttpClient::builder().pool_max_idle_per_host(0).build().unwrap();
    for _ in 0..3 {
        echo(&http, &p).await;
    }
    assert_eq!(p.connections(), 3);
    assert_eq!(http.idle_connections(), 0);
}

#[tokio::test]
async fn http2_only_shares_one_connection_among_concurrent_calls() {
    let p = FakePlatform::start().await;
    let http = HttpClient::builder().http2_only(true).build().unwrap();
    for _ in 0..2 {
        let versions = futures_util::future::join_all((0..16).map(|_| echo(&http, &p))).await;
        assert!(versions.iter().all(|v| *v == http::Version::HTTP_2), "{versions:?}");
    }
    assert_eq!(p.connections(), 1);
    assert_eq!(p.total_requests(), 32);
    assert_eq!(http.idle_connections(), 1);

    p.close_connections();
    until_no_idle(&http).await;
    echo(&http, &p).await;
    assert_eq!(p.connections(), 2);
}

async fn tls_platform() -> FakePlatform {
    FakePlatform::start_with(FakePlatformConfig { tls: true, ..FakePlatformConfig::default() }).await
}

#[tokio::test]
async fn https_to_an_http1_server_pools_connections_like_plain_http() {
    let config = FakePlatformConfig { tls: true, http1_only: true, ..FakePlatformConfig::default() };
    let p = FakePlatform::start_with(config).await;
    let ca = p.ca_certificate_der().unwrap().to_vec();
    let http = HttpClient::builder().add_root_certificate_der(ca).build().unwrap();
    for _ in 0..3 {
        let versions = futures_util::future::join_all((0..8).map(|_| echo(&http, &p))).await;
        assert!(versions.iter().all(|v| *v == http::Version::HTTP_11), "{versions:?}");
    }
    assert_eq!(p.connections(), 8);
    assert_eq!(http.idle_connections(), 8);
}

#[tokio::test]
async fn connections_idle_long_enough_to_be_checked_for_a_close_are_still_reused() {
    for tls in [false, true] {
        let config = FakePlatformConfig { tls, http1_only: true, ..FakePlatformConfig::default() };
        let p = FakePlatform::start_with(config).await;
        let mut builder = HttpClient::builder();
        if let Some(ca) = p.ca_certificate_der() {
            builder = builder.add_root_certificate_der(ca.to_vec());
        }
        let http = builder.build().unwrap();
        for _ in 0..3 {
            futures_util::future::join_all((0..4).map(|_| echo(&http, &p))).await;
            // Past the idle time after which a reuse first checks the socket for a close.
            tokio::time::pause();
            tokio::time::advance(Duration::from_millis(5)).await;
            tokio::time::resume();
        }
        assert_eq!((tls, p.connections()), (tls, 4));
        assert_eq!(http.idle_connections(), 4);
    }
}

#[tokio::test]
async fn an_idle_timeout_of_duration_max_means_never() {
    let p = FakePlatform::start().await;
    let http = HttpClient::builder().pool_idle_timeout(Duration::MAX).build().unwrap();
    echo(&http, &p).await;
    echo(&http, &p).await;
    assert_eq!(p.connections(), 1);
    assert_eq!(http.idle_connections(), 1);
}

#[test]
fn the_reaper_starts_again_after_its_runtime_is_gone() {
    let server = tokio::runtime::Runtime::new().unwrap();
    let p = server.block_on(FakePlatform::start());
    let http = HttpClient::builder().pool_idle_timeout(Duration::from_secs(5)).build().unwrap();
    let current = || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The first runtime pools a connection and starts the reaper, then goes away with both.
    current().block_on(echo(&http, &p));
    current().block_on(async {
        echo(&http, &p).await;
        assert_eq!(p.connections(), 2, "the first runtime's connection died with it");
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(6)).await;
        until_no_idle(&http).await;
    });
}

#[tokio::test(start_paused = true)]
async fn the_connect_timeout_covers_the_tls_handshake() {
    // Accepts TCP (the kernel does) but never answers the TLS hello.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}{ECHO}", silent.local_addr().unwrap());
    let http = HttpClient::builder().connect_timeout(Duration::from_secs(3)).build().unwrap();
    let e = http.clone().oneshot(get(url)).await.unwrap_err();
    match e.downcast_ref::<LarkError>() {
        Some(LarkError::Transport(t)) => {
            assert_eq!(t.kind(), TransportErrorKind::Connect);
            let cause = std::error::Error::source(t).map(ToString::to_string).unwrap_or_default();
            assert!(cause.contains("took longer than 3s"), "{cause}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn calls_waiting_for_a_failed_http2_connect_fail_with_it_instead_of_each_trying() {
    // HTTP/2 only, to a server whose certificate the client does not trust: every connect fails.
    let p = tls_platform().await;
    let http = HttpClient::builder().http2_only(true).build().unwrap();
    let url = format!("{}{ECHO}", p.base_url());
    let calls = (0..8).map(|_| http.clone().oneshot(get(url.clone())));
    let results = futures_util::future::join_all(calls).await;
    for r in &results {
        match r.as_ref().map_err(|e| e.downcast_ref::<LarkError>()) {
            Err(Some(LarkError::Transport(t))) => assert_eq!(t.kind(), TransportErrorKind::Connect, "{t}"),
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
    assert_eq!(p.connections(), 1, "one connect was tried, not one per call");
}

#[tokio::test]
async fn https_negotiates_http2_by_alpn_and_shares_the_connection() {
    let p = tls_platform().await;
    assert!(p.base_url().starts_with("https://"));
    let ca = p.ca_certificate_der().unwrap().to_vec();
    let http = HttpClient::builder().add_root_certificate_der(ca).build().unwrap();
    assert_eq!(echo(&http, &p).await, http::Version::HTTP_2);
    for _ in 0..2 {
        let versions = futures_util::future::join_all((0..16).map(|_| echo(&http, &p))).await;
        assert!(versions.iter().all(|v| *v == http::Version::HTTP_2), "{versions:?}");
    }
    assert_eq!(p.connections(), 1, "calls to an HTTP/2 host share its connection");
    assert_eq!(p.total_requests(), 33);

    // The host is now known to speak HTTP/2: after its connection closes, a burst of calls
    // waits for one new connect instead of each opening its own.
    p.close_connections();
    until_no_idle(&http).await;
    let versions = futures_util::future::join_all((0..16).map(|_| echo(&http, &p))).await;
    assert!(versions.iter().all(|v| *v == http::Version::HTTP_2), "{versions:?}");
    assert_eq!(p.connections(), 2);

    // Uploads and streamed downloads over the same connection.
    let auth = bearer(&http, &p).await;
    let resp = http.clone().oneshot(download(&p, &auth, 200_000)).await.unwrap();
    assert_eq!(resp.into_body().collect_limited(usize::MAX).await.unwrap().len(), 200_000);
    assert_eq!(p.connections(), 2);
}

#[tokio::test]
async fn https_to_a_server_signed_by_an_unknown_authority_is_a_connect_error() {
    let p = tls_platform().await;
    let http = HttpClient::new().unwrap();
    let e = http.clone().oneshot(get(format!("{}{ECHO}", p.base_url()))).await.unwrap_err();
    match e.downcast_ref::<LarkError>() {
        Some(LarkError::Transport(t)) => assert_eq!(t.kind(), TransportErrorKind::Connect, "{t:?}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(p.total_requests(), 0);
}

#[test]
fn a_root_certificate_that_is_not_one_is_a_config_error() {
    let e =
        HttpClient::builder().add_root_certificate_der(b"not a certificate".to_vec()).build().unwrap_err();
    assert!(matches!(e, LarkError::Config(_)), "{e:?}");
}

/// Reads one request head (the test's requests have no body) from `stream`; `false` at end of
/// stream or on an error.
fn read_head(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => return false,
        }
    }
    true
}

#[tokio::test]
async fn a_request_given_to_a_pooled_connection_the_server_already_closed_goes_out_once_on_another() {
    use std::io::Write;
    // A plain server on a thread of its own, so that it can close the pooled connection while the
    // client's runtime (this test's one thread) is held: the connection's task has not seen the
    // close and the connection still looks ready. Handed the request, it would write it to the
    // closed socket and fail with the request possibly sent (hyper: IncompleteMessage), which
    // no retry may repeat for a POST; the pool has to see the close itself before reusing it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let (close_tx, close_rx) = std::sync::mpsc::channel::<()>();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (mut first, _) = listener.accept().unwrap();
        assert!(read_head(&mut first));
        first.write_all(REPLY).unwrap();
        close_rx.recv().unwrap();
        first.shutdown(std::net::Shutdown::Both).unwrap();
        drop(first);
        closed_tx.send(()).unwrap();
        let (mut second, _) = listener.accept().unwrap();
        assert!(read_head(&mut second));
        second.write_all(REPLY).unwrap();
        // What else arrives: nothing on either connection (the client closes the second when
        // the test ends).
        drop(listener);
        read_head(&mut second)
    });

    let http = HttpClient::new().unwrap();
    assert_eq!(call(&http, get(url.clone())).await.0, 200);
    assert_eq!(http.idle_connections(), 1, "the first connection is pooled");
    // Idle long enough that its reuse checks it (busy connections skip the check), before the
    // server closes it.
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(5)).await;
    close_tx.send(()).unwrap();
    // Blocks this runtime's only thread on purpose: the client must not run until the close is done.
    closed_rx.recv().unwrap();
    tokio::time::resume();
    assert_eq!(http.idle_connections(), 1, "the client has not seen the close yet");

    assert_eq!(call(&http, get(url)).await.0, 200);
    drop(http);
    // Joined off this thread: the second connection closes when the client's tasks run.
    let more = tokio::task::spawn_blocking(move || server.join().unwrap()).await.unwrap();
    assert!(!more, "the request arrived once, on the second connection");
}
