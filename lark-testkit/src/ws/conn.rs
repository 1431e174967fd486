//! The WebSocket listener and one task per connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, StatusCode};
use lark_events::ws::frame::{
    Frame, Header, HEADER_BIZ_RT, HEADER_MESSAGE_ID, HEADER_TYPE, METHOD_CONTROL, METHOD_DATA, TYPE_PING,
    TYPE_PONG,
};
use lark_events::ws::{Ack, HANDSHAKE_AUTH_ERR_CODE, HANDSHAKE_MSG, HANDSHAKE_STATUS};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::hub::Shared;
use super::{RecordedAck, RecordedPing, Refusal};

/// What the hub asks of a connection.
#[derive(Clone, Debug)]
pub(crate) enum Command {
    /// Send this binary message.
    Send(Bytes),
    /// Drop the connection without a close frame.
    Drop,
    /// Close with a close frame.
    Close,
    /// Go silent: read, answer and send nothing any more, but keep the socket open.
    Stall,
}

/// Completes on shutdown (or when the hub is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Accepts connections until shutdown.
pub(super) async fn listen(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => return,
        };
        match accepted {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve(tcp, shared.clone()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "lark-testkit: WebSocket accept failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

fn refusal_response(refusal: &Refusal) -> ErrorResponse {
    let status = u16::try_from(refusal.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = ErrorResponse::new(Some(refusal.message.clone()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(HANDSHAKE_STATUS, HeaderValue::from(refusal.status));
    if let Ok(msg) = HeaderValue::from_str(&refusal.message) {
        headers.insert(HANDSHAKE_MSG, msg);
    }
    if let Some(code) = refusal.auth_code {
        headers.insert(HANDSHAKE_AUTH_ERR_CODE, HeaderValue::from(code));
    }
    resp
}

/// Handshake, then the connection's loop.
async fn serve(tcp: TcpStream, shared: Arc<Shared>) {
    let mut admitted = None;
    // The error type is tungstenite's handshake reply.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| match shared.admit(req.uri().query().unwrap_or_default()) {
        Ok(id) => {
            admitted = Some(id);
            Ok(resp)
        }
        Err(refusal) => Err(refusal_response(&refusal)),
    };
    let mut config = WebSocketConfig::default();
    // Each read zero-fills this much of the buffer first; frames are small.
    config.read_buffer_size = 16 << 10;
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(tcp, check, Some(config)).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(error = %e, "lark-testkit: WebSocket handshake failed or refused");
            return;
        }
    };
    let Some(id) = admitted else { return };
    let (tx, rx) = mpsc::unbounded_channel();
    shared.connected(id, tx);
    run(ws, id, rx, &shared).await;
    shared.disconnected(id);
}

async fn run(
    mut ws: WebSocketStream<TcpStream>,
    id: u64,
    mut rx: mpsc::UnboundedReceiver<Command>,
    shared: &Shared,
) {
    let mut shutdown: watch::Receiver<bool> = shared.shutdown_signal();
    let mut stalled = false;
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(Command::Send(bytes)) => {
                    if !stalled && ws.send(Message::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                Some(Command::Stall) => {
                    stalled = true;
                    shared.stalled(id);
                }
                Some(Command::Close) => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        if ws.close(None).await.is_ok() {
                            while let Some(Ok(_)) = ws.next().await {}
                        }
                    })
                    .await;
                    return;
                }
                Some(Command::Drop) | None => return,
            },
            message = ws.next(), if !stalled => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Some(pong) = on_client_frame(&bytes, id, shared) {
                        if ws.send(Message::Binary(pong)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// Records a ping or an ack; returns the pong to send, if any.
fn on_client_frame(bytes: &[u8], id: u64, shared: &Shared) -> Option<Bytes> {
    let Ok(frame) = Frame::from_bytes(bytes) else {
        shared.record_undecodable();
        return None;
    };
    match (frame.method, frame.kind()) {
        (METHOD_CONTROL, TYPE_PING) => {
            let service = frame.service;
            let (answer, config) =
                shared.record_ping(RecordedPing { connection: id, at: Instant::now(), frame });
            if !answer {
                return None;
            }
            let pong = Frame {
                service,
                method: METHOD_CONTROL,
                headers: vec![Header::new(HEADER_TYPE, TYPE_PONG)],
                payload: config.map(|c| Bytes::from(serde_json::to_vec(&c).unwrap_or_default())),
                ..Frame::default()
            };
            Some(pong.to_bytes())
        }
        (METHOD_DATA, _) => {
            let message_id = frame.header(HEADER_MESSAGE_ID).unwrap_or_default().to_owned();
            let biz_rt = frame.header(HEADER_BIZ_RT).and_then(|v| v.parse().ok());
            let ack = frame.payload.as_deref().and_then(|p| Ack::from_json(p).ok());
            shared.record_ack(RecordedAck { message_id, connection: id, ack, biz_rt, frame });
            None
        }
        _ => {
            shared.record_undecodable();
            None
        }
    }
}
