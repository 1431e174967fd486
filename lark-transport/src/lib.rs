//! The HTTP side of lark-rs: [`Body`], request building ([`ApiRequest`], [`Multipart`]),
//! reply decoding ([`decode_reply`], [`Download`]), tower layers ([`TraceLayer`],
//! [`TimeoutLayer`], retry by [`RetryPolicy`]) and the pooled hyper + rustls [`HttpClient`].
//!
//! The stack `lark-services` assembles, outermost first: [`CallPolicyLayer`] (trace, total
//! timeout, retry, attempt timeout, run as one future) → auth (from `lark-auth`) → [`HttpClient`].
//! The separate [`TraceLayer`], [`TimeoutLayer`] and retry policy do the same for stacks of your
//! own.

mod body;
mod client;
mod multipart;
mod policy;
mod pool;
mod proxy;
mod reply;
mod request;
mod retry;
mod timeout;
mod trace;

pub use body::{try_clone_request, Body, BodyTooLarge, ReplayBody};
pub use client::{tls_client_config, HttpClient, HttpClientBuilder, HttpClientFuture};
pub use multipart::Multipart;
pub use policy::{CallPolicy, CallPolicyLayer};
pub use proxy::Proxy;
pub use reply::{
    buffer_json_reply, content_disposition_file_name, decode_bytes, decode_reply, is_json, needs_buffering,
    reply_code, Download, ReplyCode, DEFAULT_JSON_LIMIT,
};
pub use request::{encode_path_segment, ApiRequest, BaseUrl, JSON_CONTENT_TYPE};
pub use retry::{RetryPolicy, RetryReason, TokenRejected};
pub use timeout::{Timeout, TimeoutLayer};
pub use trace::{Trace, TraceLayer};

/// The type-erased service every layer of the stack wraps: `http::Request<Body>` in,
/// `http::Response<Body>` out, boxed errors (always a `lark_types::LarkError` inside).
pub type HttpService =
    tower::util::BoxCloneSyncService<http::Request<Body>, http::Response<Body>, lark_types::BoxError>;

/// Re-export of the retry budget type used by [`RetryPolicy::budget`].
pub use tower::retry::budget::TpsBudget;
