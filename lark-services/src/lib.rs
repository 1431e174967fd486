//! The Feishu / Lark Open Platform client.
//!
//! [`Client`] owns the tower stack (trace → total timeout → retry → attempt timeout → auth →
//! hyper + rustls) and the [`TokenManager`]. Raw calls reach any API:
//!
//! ```no_run
//! # async fn demo() -> Result<(), lark_types::LarkError> {
//! use lark_services::Client;
//! use serde_json::json;
//!
//! let client = Client::builder("cli_a1b2c3d4e5f6a7b8", "app-secret").build()?;
//! let sent = client
//!     .post("/open-apis/im/v1/messages")
//!     .query("receive_id_type", "open_id")
//!     .json(&json!({"receive_id": "ou_1", "msg_type": "text", "content": "{\"text\":\"hi\"}"}))
//!     .send_json()
//!     .await?;
//! println!("message id: {}", sent["message_id"]);
//! # Ok(()) }
//! ```
//!
//! Every reply with `code != 0` is an `Err(LarkError::Api(..))`, never an `Ok`.

mod client;

pub use client::{Client, ClientBuilder, RequestBuilder, RequestOptions};
#[cfg(feature = "redis")]
pub use lark_auth::RedisStore;
pub use lark_auth::{MemoryStore, TokenManager, TokenStore};
pub use lark_transport::{Body, Download, Multipart, RetryPolicy};
pub use lark_types::{AccessTokenType, AccessTokenTypes, ApiError, AppType, Domain, LarkError};
