//! quickstart: send a message with a typed call, reply to it with a raw call, print the replies.
//!
//! With no `LARK_APP_ID`, it starts lark-testkit (a fake open platform) in process and runs
//! against it, so it works anywhere with no credentials. With `LARK_APP_ID` and `LARK_APP_SECRET`
//! (and optionally `LARK_BASE_URL`, e.g. `https://open.larksuite.com` for Lark) it talks to that
//! platform; set `LARK_RECEIVE_ID` (an open_id) to choose who receives the message.
//!
//! ```text
//! cargo run -p examples --bin quickstart
//! ```

use std::process::ExitCode;

use lark_services::content::{MessageContent, Text};
use lark_services::im::v1::{CreateMessageRequest, ReceiveIdType};
use lark_services::Client;
use serde_json::json;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            let mut source = std::error::Error::source(&*e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the fake platform alive for the whole run when we use it.
    let (client, receive_id, _platform) = match std::env::var("LARK_APP_ID") {
        Ok(app_id) => {
            let secret = std::env::var("LARK_APP_SECRET")
                .map_err(|_| "LARK_APP_ID is set but LARK_APP_SECRET is not")?;
            let mut builder = Client::builder(app_id, secret);
            if let Ok(url) = std::env::var("LARK_BASE_URL") {
                builder = builder.base_url(url);
            }
            let receive_id = std::env::var("LARK_RECEIVE_ID")
                .map_err(|_| "set LARK_RECEIVE_ID to the open_id of the user to message")?;
            (builder.build()?, receive_id, None)
        }
        Err(_) => {
            let platform = lark_testkit::FakePlatform::start().await;
            println!("no LARK_APP_ID: using lark-testkit at {}", platform.base_url());
            let client = Client::builder(platform.app_id(), platform.app_secret())
                .base_url(platform.base_url())
                .build()?;
            (client, "ou_1".to_owned(), Some(platform))
        }
    };

    // A typed call: `im.v1.message.create`, its request built with setters, its reply typed.
    let sent = client
        .im()
        .v1()
        .message()
        .create(
            CreateMessageRequest::new()
                .receive_id_type(ReceiveIdType::OpenId)
                .receive_id(receive_id)
                .message(&Text::new("Hello from lark-rs")),
        )
        .await?;
    let message_id = sent.message_id.clone().unwrap_or_default();
    println!("sent message {message_id} to chat {}", sent.chat_id.as_deref().unwrap_or("?"));

    // A raw call reaches any API, including ones newer than the generated code.
    let reply = client
        .post("/open-apis/im/v1/messages/:message_id/reply")
        .path_param("message_id", message_id)
        .json(&json!({"msg_type": "text", "content": Text::new("and a reply").to_content()}))
        .send_json()
        .await?;
    println!("replied with {}", reply["message_id"].as_str().unwrap_or("?"));
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(())
}
