//! `HttpClient` against a loopback server writing canned HTTP/1.1 replies: JSON read whole and
//! tagged, other replies streaming, the JSON limit and a reply cut short, each with its log id.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::StreamExt;
use lark_transport::{Body, HttpClient, ReplyCode};
use lark_types::{BoxError, LarkError, TransportErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

/// Serves one connection: reads a request head, writes `parts` (flushed one by one, so a body
/// arrives in several reads), then closes.
async fn serve_once(parts: Vec<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            head.extend_from_slice(&buf[..n]);
        }
        for part in parts {
            sock.write_all(part.as_bytes()).await.unwrap();
            sock.flush().await.unwrap();
        }
    });
    format!("http://{addr}/open-apis/x")
}

fn get(url: &str) -> http::Request<Body> {
    http::Request::get(url).body(Body::empty()).unwrap()
}

fn transport_kind(e: &BoxError) -> Option<(TransportErrorKind, Option<String>)> {
    match e.downcast_ref::<LarkError>() {
        Some(LarkError::Transport(t)) => Some((t.kind(), t.log_id().map(str::to_owned))),
        _ => None,
    }
}

#[tokio::test]
async fn a_json_reply_in_chunks_is_read_whole_and_tagged() {
    let url = serve_once(vec![
        "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\nx-tt-logid: L1\r\n",
        "transfer-encoding: chunked\r\n\r\n",
        "c\r\n{\"code\":1234\r\n",
        "11\r\n5,\"msg\":\"failed\"}\r\n",
        "0\r\n\r\n",
    ])
    .await;
    let resp = HttpClient::new().unwrap().oneshot(get(&url)).await.unwrap();
    assert_eq!(resp.extensions().get::<ReplyCode>(), Some(&ReplyCode(12345)));
    assert_eq!(resp.headers()["x-tt-logid"], "L1");
    let bytes = resp.into_body().into_bytes().expect("a JSON reply comes back in memory");
    assert_eq!(&bytes[..], br#"{"code":12345,"msg":"failed"}"#);
}

#[tokio::test]
async fn a_reply_that_is_not_json_keeps_streaming() {
    let url = serve_once(vec![
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 6\r\n\r\n",
        "abc",
        "def",
    ])
    .await;
    let resp = HttpClient::new().unwrap().oneshot(get(&url)).await.unwrap();
    assert!(resp.extensions().get::<ReplyCode>().is_none());
    let body = resp.into_body().into_bytes().expect_err("a download is not buffered");
    assert_eq!(&body.collect_limited(100).await.unwrap()[..], b"abcdef");
}

#[tokio::test]
async fn json_over_the_limit_is_too_large_with_the_log_id() {
    let url = serve_once(vec![
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-tt-logid: L2\r\ncontent-length: 39\r\n\r\n",
        "{\"code\":0,\"data\":\"0123456789012345678\"}",
    ])
    .await;
    let client = HttpClient::builder().json_limit(16).build().unwrap();
    let e = client.oneshot(get(&url)).await.unwrap_err();
    assert_eq!(transport_kind(&e), Some((TransportErrorKind::TooLarge, Some("L2".into()))), "{e:?}");
}

#[tokio::test]
async fn the_limit_counts_every_chunk_and_a_reply_of_exactly_the_limit_passes() {
    const HEAD: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    // 10 + 10 bytes in two chunks.
    let chunks = vec![HEAD, "a\r\n{\"code\":0,\r\n", "a\r\n\"x\":12345}\r\n", "0\r\n\r\n"];
    let url = serve_once(chunks.clone()).await;
    let exact = HttpClient::builder().json_limit(20).build().unwrap();
    let resp = exact.oneshot(get(&url)).await.unwrap();
    assert_eq!(resp.extensions().get::<ReplyCode>(), Some(&ReplyCode(0)));
    let url = serve_once(chunks).await;
    let under = HttpClient::builder().json_limit(19).build().unwrap();
    let e = under.oneshot(get(&url)).await.unwrap_err();
    assert_eq!(transport_kind(&e).map(|(k, _)| k), Some(TransportErrorKind::TooLarge), "{e:?}");
}

#[tokio::test]
async fn a_reply_cut_short_is_a_body_error_with_the_log_id_and_no_panic_after() {
    let url = serve_once(vec![
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-tt-logid: L3\r\ncontent-length: 100\r\n\r\n",
        "{\"code\":0,",
    ])
    .await;
    let mut client = HttpClient::new().unwrap();
    let mut call = client.call(get(&url));
    let e = (&mut call).await.unwrap_err();
    assert_eq!(transport_kind(&e), Some((TransportErrorKind::Body, Some("L3".into()))), "{e:?}");
    // Polled again after it finished: an error, not a panic.
    let again = std::future::poll_fn(|cx| match Pin::new(&mut call).poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => Poll::Ready(Err("still pending".into())),
    })
    .await;
    assert_eq!(transport_kind(&again.unwrap_err()).map(|(k, _)| k), Some(TransportErrorKind::Io));
}

/// A server that answers every request with a 400 JSON reply as soon as it has the request's
/// head, without reading its body, and keeps the connection open. Counts connections.
async fn early_replier() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"code":1,"msg":"early"}"#;
                let reply = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if sock.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
                // Keep the connection open, reading nothing more.
                std::future::pending::<()>().await;
            });
        }
    });
    (format!("http://{addr}/open-apis/x"), accepted)
}

#[tokio::test]
async fn a_reply_that_comes_before_the_request_body_is_sent_does_not_hold_up_the_next_call() {
    let (url, accepted) = early_replier().await;
    let http = HttpClient::new().unwrap();
    // One chunk, then a body that never ends: the connection stays busy sending it.
    let stalled = futures_util::stream::iter([Ok::<_, BoxError>(bytes::Bytes::from_static(b"part"))])
        .chain(futures_util::stream::pending());
    let post = http::Request::post(url.as_str()).body(Body::from_stream(stalled)).unwrap();
    let resp = http.clone().oneshot(post).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.extensions().get::<ReplyCode>(), Some(&ReplyCode(1)));
    // The next call must not wait for that connection: it connects anew.
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), http.clone().oneshot(get(&url))).await;
    assert_eq!(next.expect("the next call waited on the busy connection").unwrap().status(), 400);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(http.idle_connections(), 1, "only the second connection is idle");
}
