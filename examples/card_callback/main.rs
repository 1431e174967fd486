//! card_callback: a card with a button; a click is answered with a toast and an updated card.
//!
//! ```text
//! cargo run -p examples --bin card_callback
//! ```
//!
//! Served with warp through `lark_adapters::warp::routes` on `POST /webhook/card` (and
//! `/webhook/event`). The same handler answers new-style `card.action.trigger` callbacks and
//! old-style card callbacks.
//!
//! Environment: `LARK_APP_ID`, `LARK_APP_SECRET`, `LARK_ENCRYPT_KEY`,
//! `LARK_VERIFICATION_TOKEN`, `LARK_BASE_URL`, `LARK_LISTEN` (default `127.0.0.1:8089`), and
//! `LARK_RECEIVE_ID` (an open_id) to send the card to.
//!
//! - With `LARK_APP_ID`: sends the card to `LARK_RECEIVE_ID` when set, then serves until Ctrl-C;
//!   set the app's card request URL (or callback URL) to `https://<public host>/webhook/card`.
//! - Without: a full loop against lark-testkit: the bot sends the card through the fake
//!   platform, the platform pushes a click on it, and the bot's answer (toast and updated card)
//!   is checked. Exits 0 when the answer is right.

use std::process::ExitCode;

use lark_events::{BoxError, CardAction, CardResponse, EventContext, EventDispatcher, ToastKind};
use lark_testkit::push::EventPusher;
use lark_testkit::FakePlatform;
use serde_json::{json, Value};

#[path = "../common/config.rs"]
mod config;

use config::{report, Config};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    if std::env::args().len() > 1 {
        eprintln!("usage: card_callback (configured by environment, see the source)");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("card_callback: {e}");
            return ExitCode::from(2);
        }
    };
    let result =
        if config.app.is_some() { serve(config).await } else { self_test(config.with_test_secrets()).await };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report("card_callback failed", &*e);
            ExitCode::FAILURE
        }
    }
}

/// The card, showing how many times it was liked.
fn card(likes: u64) -> Value {
    json!({
        "config": {"wide_screen_mode": true},
        "header": {"title": {"tag": "plain_text", "content": "lark-rs card_callback"}},
        "elements": [
            {"tag": "markdown", "content": format!("Liked **{likes}** time(s)")},
            {"tag": "action", "actions": [{
                "tag": "button",
                "text": {"tag": "plain_text", "content": "👍 Like"},
                "type": "primary",
                "value": {"action": "like", "likes": likes},
            }]},
        ],
    })
}

/// A click on "Like": a toast, and the card with one more like.
async fn on_click(_ctx: EventContext, action: CardAction) -> Result<CardResponse, BoxError> {
    if action.action.value["action"] != "like" {
        return Ok(CardResponse::empty());
    }
    let likes = action.action.value["likes"].as_u64().unwrap_or(0) + 1;
    Ok(CardResponse::toast(ToastKind::Success, format!("Thanks! {likes} like(s) now")).with_card(card(likes)))
}

fn dispatcher(
    config: &Config,
    client: lark_services::Client,
) -> Result<EventDispatcher, lark_types::LarkError> {
    config.dispatcher().client(client).on_card_action(on_click).build()
}

/// Sends the card to `receive_id` (an open_id); returns the message id.
async fn send_card(client: &lark_services::Client, receive_id: &str) -> Result<String, BoxError> {
    let sent = client
        .post("/open-apis/im/v1/messages")
        .query("receive_id_type", "open_id")
        .json(&json!({"receive_id": receive_id, "msg_type": "interactive", "content": card(0).to_string()}))
        .send_json()
        .await?;
    Ok(sent["message_id"].as_str().unwrap_or_default().to_owned())
}

async fn serve(config: Config) -> Result<(), BoxError> {
    let client = config.client(None).map_err(|e| e.to_string())?;
    if let Ok(receive_id) = std::env::var("LARK_RECEIVE_ID") {
        println!("sent the card: {}", send_card(&client, &receive_id).await?);
    }
    let routes = lark_adapters::warp::routes(dispatcher(&config, client)?);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    println!("card_callback listening on http://{}/webhook/card (Ctrl-C to stop)", listener.local_addr()?);
    warp::serve(routes)
        .incoming(listener)
        .graceful(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .run()
        .await;
    Ok(())
}

async fn self_test(config: Config) -> Result<(), BoxError> {
    let platform = FakePlatform::start().await;
    println!("no LARK_APP_ID: running against lark-testkit at {}", platform.base_url());
    let client = config.client(Some(&platform)).map_err(|e| e.to_string())?;
    let message_id = send_card(&client, "ou_1").await?;
    println!("sent the card as message {message_id}");

    let routes = lark_adapters::warp::routes(dispatcher(&config, client)?);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let url = format!("http://{}/webhook/card", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        warp::serve(routes)
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );
    println!("card_callback listening on {url}");

    let signer = config.signer().app_id(platform.app_id());
    let pusher = EventPusher::new(url, signer.clone());
    let click = signer.card_action_trigger("ou_1", &message_id, json!({"action": "like", "likes": 0}));
    let answer = pusher.push(&click).await;
    let answer =
        answer.json().filter(|_| answer.is_success()).ok_or("the click was not answered with 200")?;
    println!("card.action.trigger answered: {answer}");

    let legacy = signer.legacy_card_action("ou_1", &message_id, json!({"action": "like", "likes": 1}));
    let legacy_answer = pusher.push_legacy_card(&legacy).await;
    println!("old-style callback answered: {}", String::from_utf8_lossy(&legacy_answer.body));

    let _ = stop.send(());
    server.await?;
    let liked_once = answer["toast"]["content"] == "Thanks! 1 like(s) now"
        && answer["card"]["data"]["elements"][0]["content"] == "Liked **1** time(s)";
    let liked_twice = legacy_answer
        .json()
        .is_some_and(|a| a["card"]["data"]["elements"][0]["content"] == "Liked **2** time(s)");
    if !liked_once || !liked_twice {
        return Err("the answers are not the expected toast and card".into());
    }
    println!("ok: the clicks were answered with a toast and an updated card");
    Ok(())
}
