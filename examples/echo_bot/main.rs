//! echo_bot: replies to every text message with the same text.
//!
//! ```text
//! cargo run -p examples --bin echo_bot -- --webhook
//! cargo run -p examples --bin echo_bot -- --ws
//! ```
//!
//! `im.message.receive_v1` → `POST /open-apis/im/v1/messages/:message_id/reply` (tenant token),
//! served with axum through `lark_adapters::axum::router` on `POST /webhook/event` (and
//! `/webhook/card`).
//!
//! Environment: `LARK_APP_ID`, `LARK_APP_SECRET`, `LARK_ENCRYPT_KEY`,
//! `LARK_VERIFICATION_TOKEN`, `LARK_BASE_URL`, `LARK_LISTEN` (default `127.0.0.1:8089`).
//!
//! - With `LARK_APP_ID`: serves until Ctrl-C; set the app's event request URL to
//!   `https://<public host>/webhook/event` (a tunnel or proxy to `LARK_LISTEN`) and subscribe to
//!   `im.message.receive_v1`.
//! - Without: a full loop against lark-testkit: the fake platform pushes a text message to the
//!   bot (encrypted and signed), the bot replies through the platform's reply API, and the
//!   platform's record shows the reply. Exits 0 when the reply came back.
//!
//! `--ws` receives the same events over the long connection (`lark_events::ws::WsClient`) with
//! the same handler: no public URL, no Encrypt Key needed. `LARK_BASE_URL` points the bootstrap
//! call (`/callback/ws/endpoint`) and the API calls elsewhere. With `LARK_APP_ID`: runs until
//! Ctrl-C (choose "long connection" as the app's event subscription mode). Without: the same loop
//! against lark-testkit, the event pushed over its WebSocket server.

use std::process::ExitCode;

use lark_events::generated::im::MessageReceiveV1;
use lark_events::ws::WsClient;
use lark_events::{BoxError, EventContext, EventDispatcher};
use lark_testkit::events::text_message;
use lark_testkit::push::EventPusher;
use lark_testkit::FakePlatform;
use serde_json::{json, Value};

#[path = "../common/config.rs"]
mod config;

use config::{report, Config};

const USAGE: &str = "usage: echo_bot [--webhook | --ws]";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let long_connection = args.iter().any(|a| a == "--ws");
    if args.iter().any(|a| a != "--webhook" && a != "--ws") || (long_connection && args.len() > 1) {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("echo_bot: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match (long_connection, config.app.is_some()) {
        (true, true) => serve_ws(config).await,
        (true, false) => self_test_ws(config).await,
        (false, true) => serve(config).await,
        (false, false) => self_test(config.with_test_secrets()).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report("echo_bot failed", &*e);
            ExitCode::FAILURE
        }
    }
}

/// Replies to a text message with its own text.
async fn echo(ctx: EventContext, event: MessageReceiveV1) -> Result<(), BoxError> {
    let (Some(sender), Some(message)) = (event.sender, event.message) else { return Ok(()) };
    // Only people's text messages: never answer another bot (or ourselves).
    if sender.sender_type.as_deref() != Some("user") || message.message_type.as_deref() != Some("text") {
        return Ok(());
    }
    let (Some(message_id), Some(content)) = (message.message_id, message.content) else { return Ok(()) };
    let text = serde_json::from_str::<Value>(&content)?["text"].as_str().unwrap_or_default().to_owned();
    let client = ctx.client().ok_or("the dispatcher was built without a client")?;
    let mut reply = client
        .post("/open-apis/im/v1/messages/:message_id/reply")
        .path_param("message_id", message_id)
        .json(&json!({"msg_type": "text", "content": json!({"text": text}).to_string()}));
    if let Some(tenant) = ctx.tenant_key() {
        // Needed by marketplace apps; self-built apps ignore it.
        reply = reply.tenant_key(tenant);
    }
    reply.send_json().await?;
    Ok(())
}

fn dispatcher(
    config: &Config,
    client: lark_services::Client,
) -> Result<EventDispatcher, lark_types::LarkError> {
    config.dispatcher().client(client).dedup().on::<MessageReceiveV1, _, _>(echo).build()
}

async fn serve(config: Config) -> Result<(), BoxError> {
    let client = config.client(None).map_err(|e| e.to_string())?;
    let app = lark_adapters::axum::router(dispatcher(&config, client)?);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    println!("echo_bot listening on http://{}/webhook/event (Ctrl-C to stop)", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn self_test(config: Config) -> Result<(), BoxError> {
    let platform = FakePlatform::start().await;
    println!("no LARK_APP_ID: running against lark-testkit at {}", platform.base_url());
    let client = config.client(Some(&platform)).map_err(|e| e.to_string())?;
    let app = lark_adapters::axum::router(dispatcher(&config, client)?);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let url = format!("http://{}/webhook/event", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("echo_bot listening on {url}");

    let signer = config.signer().app_id(platform.app_id());
    let pusher = EventPusher::new(url, signer.clone());
    let check = pusher.push(&signer.url_check("echo-bot-check")).await;
    println!("URL check answered: {}", String::from_utf8_lossy(&check.body));

    let text = "Hello, echo bot! 你好";
    let event = signer.event_v2("im.message.receive_v1", text_message("om_testkit_1", "oc_1", "ou_1", text));
    let delivery = pusher.push(&event).await;
    println!(
        "pushed im.message.receive_v1: HTTP {:?} after {} attempt(s)",
        delivery.status, delivery.attempts
    );

    let _ = stop.send(());
    server.await??;
    let replies = platform.sent_messages();
    let reply = replies.iter().find(|m| m["reply_to"] == "om_testkit_1").ok_or("the bot sent no reply")?;
    let echoed: Value = serde_json::from_str(reply["content"].as_str().unwrap_or("null"))?;
    println!("the platform received the reply {}: {}", reply["message_id"], reply["content"]);
    if !delivery.is_success() || echoed["text"] != text {
        return Err("the reply is not the same text".into());
    }
    println!("ok: the bot echoed the message");
    Ok(())
}

/// `--ws` with credentials: the long connection until Ctrl-C (or a final error).
async fn serve_ws(config: Config) -> Result<(), BoxError> {
    let (app_id, app_secret) = config.app.clone().ok_or("LARK_APP_ID and LARK_APP_SECRET are not set")?;
    let client = config.client(None).map_err(|e| e.to_string())?;
    // The bootstrap call goes through the dispatcher's client: to LARK_BASE_URL when set.
    let ws = WsClient::builder(app_id, app_secret, dispatcher(&config, client)?).build()?;
    let mut handle = ws.start();
    println!("echo_bot receiving over the long connection (Ctrl-C to stop)");
    tokio::select! {
        ended = handle.wait() => return ended.map_err(Into::into),
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("stopping: running handlers finish and are acked");
    handle.shutdown().await?;
    Ok(())
}

/// `--ws` without credentials: the full loop against lark-testkit's long-connection server.
async fn self_test_ws(config: Config) -> Result<(), BoxError> {
    let limit = std::time::Duration::from_secs(10);
    let platform = FakePlatform::start().await;
    println!("no LARK_APP_ID: running against lark-testkit at {}", platform.base_url());
    let client = config.client(Some(&platform)).map_err(|e| e.to_string())?;
    let ws =
        WsClient::builder(platform.app_id(), platform.app_secret(), dispatcher(&config, client)?).build()?;
    let handle = ws.start();
    if !tokio::time::timeout(limit, handle.connected()).await.unwrap_or(false) {
        return Err("the bot did not connect".into());
    }
    println!("echo_bot connected over the long connection");

    let text = "Hello, echo bot! 你好";
    let event = lark_testkit::events::EventSigner::new()
        .app_id(platform.app_id())
        .event_v2("im.message.receive_v1", text_message("om_testkit_ws_1", "oc_1", "ou_1", text));
    let server = platform.ws();
    let message_id = server.push_event(&event);
    let acked = server.wait_until_for(limit, |s| s.is_acked(&message_id)).await;
    println!("pushed im.message.receive_v1 over the long connection: acked = {acked}");
    handle.shutdown().await?;

    let replies = platform.sent_messages();
    let reply = replies.iter().find(|m| m["reply_to"] == "om_testkit_ws_1").ok_or("the bot sent no reply")?;
    let echoed: Value = serde_json::from_str(reply["content"].as_str().unwrap_or("null"))?;
    println!("the platform received the reply {}: {}", reply["message_id"], reply["content"]);
    if !acked || echoed["text"] != text {
        return Err("the reply is not the same text".into());
    }
    println!("ok: the bot echoed the message over the long connection");
    Ok(())
}
