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
//!
//! # Typed APIs
//!
//! Every server API of the platform's API list is generated as a typed request, grouped as
//! `client.project().version().resource().method(request)`, which returns a [`Call`]: add
//! per-call options, then `.await` it.
//!
//! ```no_run
//! # #[cfg(feature = "im")]
//! # async fn demo(client: lark_services::Client) -> Result<(), lark_types::LarkError> {
//! use lark_services::content::Text;
//! use lark_services::im::v1::{CreateMessageRequest, ReceiveIdType};
//!
//! let sent = client
//!     .im()
//!     .v1()
//!     .message()
//!     .create(
//!         CreateMessageRequest::new()
//!             .receive_id_type(ReceiveIdType::ChatId)
//!             .receive_id("oc_1")
//!             .message(&Text::new("hi")),
//!     )
//!     .await?;
//! println!("{:?}", sent.message_id);
//! # Ok(()) }
//! ```
//!
//! - Modules: `lark_services::<project>::<version>`, one cargo feature per project (`im` is on
//!   by default; `full` enables all). The request of `project.version.resource.method` is
//!   `{Method}{Resource}Request`, its reply `{Method}{Resource}Response`
//!   (`im.v1.chat.members.create` → `im::v1::CreateChatMembersRequest`); a Rust keyword gets a
//!   trailing `_` (`type_`, `move_`).
//! - Requests: path values are the arguments of `new`, query and body fields `impl Into`
//!   setters; enums keep unknown values as `Unknown(String)`.
//! - Replies: every field an `Option`, unknown fields ignored, 64-bit integers read from strings
//!   or numbers (and sent as strings), numbers of unknown kind as `f64`; secrets (app secrets,
//!   tokens, tickets, passwords) are `SecretString`s, redacted in `Debug`.
//! - Pagination: [`Call::items`] and [`Call::pages`] (streams, with `.limit(n)`), which end with
//!   an error when a reply breaks the paging rules; uploads take [`UploadFile`]s; downloads
//!   return a [`Download`]. Each request's [`TypedRequest::META`] holds its method, path, token
//!   types and documentation link.
//! - `content` (feature `im`): message content builders (text with mentions, rich text, image,
//!   file, cards).

/// The per-call option setters shared by the raw [`RequestBuilder`] and the typed [`Call`]:
/// both keep their [`RequestOptions`] in a field named `options`.
macro_rules! per_call_option_setters {
    () => {
        /// Acts for a tenant (marketplace apps).
        pub fn tenant_key(mut self, tenant_key: impl Into<String>) -> Self {
            self.options.tenant_key = Some(tenant_key.into());
            self
        }

        /// Sends a user access token (it wins over managed tokens when the API accepts it).
        pub fn user_access_token(mut self, token: impl Into<SecretString>) -> Self {
            self.options.user_access_token = Some(token.into());
            self
        }

        /// Sends this token as is (it wins over everything else).
        pub fn access_token(mut self, token: impl Into<SecretString>) -> Self {
            self.options.access_token = Some(token.into());
            self
        }

        /// Adds a header.
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.options.headers.push((name.into(), value.into()));
            self
        }

        /// Sets `X-Request-Id`.
        pub fn request_id(mut self, id: impl Into<String>) -> Self {
            self.options.request_id = Some(id.into());
            self
        }
    };
}

mod call;
mod client;
#[cfg(feature = "im")]
pub mod content;
mod generated;
mod pagination;

pub use call::{ApiMeta, Call, FileReply, JsonReply, Outgoing, ReplyKind, TypedRequest, UploadFile};
pub use client::{Client, ClientBuilder, RequestBuilder, RequestOptions};
// The project modules (`im`, `contact`, ...); with no project feature there are none.
#[allow(unused_imports, unreachable_pub)]
pub use generated::*;
#[cfg(feature = "redis")]
pub use lark_auth::RedisStore;
pub use lark_auth::{MemoryStore, TokenManager, TokenStore};
pub use lark_transport::{Body, Download, HttpClient, HttpClientBuilder, Multipart, Proxy, RetryPolicy};
pub use lark_types::{AccessTokenType, AccessTokenTypes, ApiError, AppType, Domain, LarkError};
pub use pagination::{next_page, Items, NextPage, Pages, Paginated, PaginatedItems};
