//! A forward proxy for tests: answers `CONNECT host:port` with a tunnel to that address (on
//! loopback), after checking `Proxy-Authorization` when credentials are required, and keeps the
//! request head of every tunnel asked for.

use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// A running `CONNECT` proxy on 127.0.0.1; it stops when its runtime does.
pub struct ConnectProxy {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    /// Starts a proxy that tunnels for anyone.
    pub async fn start() -> ConnectProxy {
        ConnectProxy::spawn(None).await
    }

    /// Starts a proxy that tunnels only for `Proxy-Authorization: Basic` with `user:password`
    /// and answers 407 otherwise.
    pub async fn start_with_credentials(user: &str, password: &str) -> ConnectProxy {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        ConnectProxy::spawn(Some(format!("Proxy-Authorization: Basic {token}"))).await
    }

    async fn spawn(required: Option<String>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr of a bound listener").port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let required: Arc<Option<String>> = Arc::new(required);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, seen.clone(), required.clone()));
            }
        });
        ConnectProxy { port, heads }
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://{userinfo}127.0.0.1:{port}`; `userinfo` is `""` or like `"user:p%40ss@"`.
    pub fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}127.0.0.1:{}", self.port)
    }

    /// The request heads of the tunnels asked for so far, refused ones included.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

async fn serve(mut client: TcpStream, heads: Arc<Mutex<Vec<String>>>, required: Arc<Option<String>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD || client.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    heads.lock().unwrap_or_else(PoisonError::into_inner).push(head.clone());
    if let Some(required) = required.as_ref() {
        if !head.lines().any(|line| line == required) {
            let refusal = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\ncontent-length: 0\r\n\r\n";
            let _ = client.write_all(refusal.as_bytes()).await;
            return;
        }
    }
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    if method != "CONNECT" {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n").await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n").await;
        return;
    };
    if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}
