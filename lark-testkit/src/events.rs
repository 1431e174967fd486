//! Events as the platform sends them: envelopes, encryption and signatures ([`EventSigner`]).
//!
//! The envelopes follow the platform's schemas (2.0, 1.0, URL check, old-style card callback);
//! bodies are encrypted with the Encrypt Key when one is set and signed over the exact bytes
//! sent: `X-Lark-Signature` is SHA-256 with the Encrypt Key for events and callbacks, SHA-1 with
//! the verification token for old-style card callbacks.
//!
//! ```
//! use lark_testkit::events::EventSigner;
//! use serde_json::json;
//!
//! let signer = EventSigner::new().encrypt_key("encrypt-key").verification_token("token");
//! let envelope = signer.event_v2("im.chat.disbanded_v1", json!({"chat_id": "oc_1"}));
//! let signed = signer.seal(&envelope);
//! let request = signed.to_request("http://127.0.0.1:8089/webhook/event");
//! # let _ = request;
//! ```

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::Full;
use lark_events::crypto::{card_signature, event_signature, Cipher};
use lark_events::{NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use serde_json::{json, Value};

use crate::state::random_hex;

/// The app the signer speaks for by default (the fake platform's default app).
const DEFAULT_APP_ID: &str = "cli_a1b2c3d4e5f6a7b8";
/// The tenant events come from by default.
const DEFAULT_TENANT_KEY: &str = "tenant_selfbuilt";

/// Builds envelopes and seals them (encrypts and signs) as the platform does.
#[derive(Clone)]
pub struct EventSigner {
    encrypt_key: Option<String>,
    cipher: Option<Cipher>,
    verification_token: Option<String>,
    app_id: String,
    tenant_key: String,
}

impl fmt::Debug for EventSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSigner")
            .field("encrypt_key", &self.encrypt_key.as_ref().map(|_| "<redacted>"))
            .field("verification_token", &self.verification_token.as_ref().map(|_| "<redacted>"))
            .field("app_id", &self.app_id)
            .field("tenant_key", &self.tenant_key)
            .finish()
    }
}

impl Default for EventSigner {
    fn default() -> Self {
        EventSigner::new()
    }
}

/// Unix time now, in milliseconds.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl EventSigner {
    /// A signer with no Encrypt Key and no verification token, for app
    /// `cli_a1b2c3d4e5f6a7b8` and tenant `tenant_selfbuilt`.
    pub fn new() -> EventSigner {
        EventSigner {
            encrypt_key: None,
            cipher: None,
            verification_token: None,
            app_id: DEFAULT_APP_ID.to_owned(),
            tenant_key: DEFAULT_TENANT_KEY.to_owned(),
        }
    }

    /// Encrypts bodies and signs them with this Encrypt Key.
    #[must_use]
    pub fn encrypt_key(mut self, key: impl Into<String>) -> EventSigner {
        let key = key.into();
        self.cipher = Some(Cipher::new(&key));
        self.encrypt_key = Some(key);
        self
    }

    /// Puts this verification token in envelopes and signs old-style card callbacks with it.
    #[must_use]
    pub fn verification_token(mut self, token: impl Into<String>) -> EventSigner {
        self.verification_token = Some(token.into());
        self
    }

    /// The app_id put in envelopes.
    #[must_use]
    pub fn app_id(mut self, app_id: impl Into<String>) -> EventSigner {
        self.app_id = app_id.into();
        self
    }

    /// The tenant_key put in envelopes.
    #[must_use]
    pub fn tenant_key(mut self, tenant_key: impl Into<String>) -> EventSigner {
        self.tenant_key = tenant_key.into();
        self
    }

    fn token(&self) -> &str {
        self.verification_token.as_deref().unwrap_or_default()
    }

    /// A schema 2.0 envelope around `event`, with a fresh `event_id` and `create_time` now.
    pub fn event_v2(&self, event_type: &str, event: Value) -> Value {
        json!({
            "schema": "2.0",
            "header": {
                "event_id": random_hex(32),
                "event_type": event_type,
                "create_time": now_ms().to_string(),
                "token": self.token(),
                "app_id": self.app_id,
                "tenant_key": self.tenant_key,
            },
            "event": event,
        })
    }

    /// A schema 1.0 envelope around `event` (which must carry its `type`), with a fresh `uuid`
    /// and `ts` now. `app_id` and `tenant_key` are added to the event when it lacks them.
    pub fn event_v1(&self, mut event: Value) -> Value {
        if let Some(obj) = event.as_object_mut() {
            obj.entry("app_id").or_insert_with(|| json!(self.app_id));
            obj.entry("tenant_key").or_insert_with(|| json!(self.tenant_key));
        }
        let ms = now_ms();
        json!({
            "uuid": random_hex(32),
            "token": self.token(),
            "ts": format!("{}.{:03}", ms / 1000, ms % 1000),
            "type": "event_callback",
            "event": event,
        })
    }

    /// The schema 1.0 `app_ticket` event the platform pushes to marketplace apps.
    pub fn app_ticket(&self, app_ticket: &str) -> Value {
        self.event_v1(json!({"type": "app_ticket", "app_id": self.app_id, "app_ticket": app_ticket}))
    }

    /// The URL check: `{"challenge","token","type":"url_verification"}`.
    pub fn url_check(&self, challenge: &str) -> Value {
        json!({"challenge": challenge, "token": self.token(), "type": "url_verification"})
    }

    /// A `card.action.trigger` callback: `open_id` clicked a component whose value is `value`
    /// on message `message_id`.
    pub fn card_action_trigger(&self, open_id: &str, message_id: &str, value: Value) -> Value {
        self.event_v2(
            "card.action.trigger",
            json!({
                "operator": {"tenant_key": self.tenant_key, "open_id": open_id, "user_id": "u_1"},
                "token": format!("c-{}", random_hex(40)),
                "action": {"value": value, "tag": "button"},
                "host": "im_message",
                "context": {"open_message_id": message_id, "open_chat_id": "oc_testkit"},
            }),
        )
    }

    /// An old-style card callback body (the card request URL).
    pub fn legacy_card_action(&self, open_id: &str, message_id: &str, value: Value) -> Value {
        json!({
            "open_id": open_id,
            "user_id": "u_1",
            "open_message_id": message_id,
            "open_chat_id": "oc_testkit",
            "tenant_key": self.tenant_key,
            "token": format!("c-{}", random_hex(40)),
            "action": {"value": value, "tag": "button"},
        })
    }

    /// A `url.preview.get` callback for `url`.
    pub fn url_preview(&self, open_id: &str, url: &str) -> Value {
        self.event_v2(
            "url.preview.get",
            json!({
                "operator": {"tenant_key": self.tenant_key, "open_id": open_id},
                "host": "im_message",
                "context": {"url": url, "preview_token": random_hex(16), "open_message_id": "om_testkit"},
            }),
        )
    }

    /// Serialises `envelope`, encrypts it when an Encrypt Key is set, and signs it (SHA-256 with
    /// the Encrypt Key; unsigned without one), timestamped now.
    pub fn seal(&self, envelope: &Value) -> SignedBody {
        self.seal_bytes(envelope.to_string().as_bytes(), now_ms() / 1000)
    }

    /// Like [`seal`](Self::seal) for plain bytes sent as they are (keeping any whitespace and
    /// unicode), with the given Unix timestamp in seconds.
    pub fn seal_bytes(&self, plain: &[u8], timestamp: u64) -> SignedBody {
        let body = self.wrap(plain);
        let (timestamp, nonce) = (timestamp.to_string(), random_hex(16));
        let signature =
            self.encrypt_key.as_deref().map(|key| event_signature(&timestamp, &nonce, key, &body));
        SignedBody { body, timestamp, nonce, signature }
    }

    /// Seals an old-style card callback: encrypted when an Encrypt Key is set, signed with SHA-1
    /// and the verification token (unsigned without one), timestamped now.
    pub fn seal_legacy_card(&self, body: &Value) -> SignedBody {
        let body = self.wrap(body.to_string().as_bytes());
        let (timestamp, nonce) = ((now_ms() / 1000).to_string(), random_hex(16));
        let signature =
            self.verification_token.as_deref().map(|t| card_signature(&timestamp, &nonce, t, &body));
        SignedBody { body, timestamp, nonce, signature }
    }

    /// `plain` as sent: `{"encrypt":"..."}` with an Encrypt Key, as is without.
    fn wrap(&self, plain: &[u8]) -> Bytes {
        match &self.cipher {
            Some(cipher) => Bytes::from(json!({"encrypt": cipher.encrypt(plain)}).to_string()),
            None => Bytes::copy_from_slice(plain),
        }
    }
}

/// A body ready to send, with its signature headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedBody {
    /// The exact bytes to send.
    pub body: Bytes,
    /// `X-Lark-Request-Timestamp` (Unix seconds).
    pub timestamp: String,
    /// `X-Lark-Request-Nonce`.
    pub nonce: String,
    /// `X-Lark-Signature`, when the body is signed.
    pub signature: Option<String>,
}

impl SignedBody {
    /// The headers the platform sends with this body.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        headers.insert(USER_AGENT, HeaderValue::from_static("Go-http-client/1.1 (lark-testkit)"));
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        put(TIMESTAMP_HEADER, &self.timestamp);
        put(NONCE_HEADER, &self.nonce);
        if let Some(sig) = &self.signature {
            put(SIGNATURE_HEADER, sig);
        }
        headers
    }

    /// A `POST` request of this body to `uri`, with the platform's headers.
    pub fn to_request(&self, uri: &str) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.parse().unwrap_or_default();
        *req.headers_mut() = self.headers();
        req
    }
}

/// The `event` object of an `im.message.receive_v1` text message from a user.
pub fn text_message(message_id: &str, chat_id: &str, open_id: &str, text: &str) -> Value {
    let now = now_ms().to_string();
    json!({
        "sender": {
            "sender_id": {"open_id": open_id, "user_id": "u_1", "union_id": "on_1"},
            "sender_type": "user",
            "tenant_key": DEFAULT_TENANT_KEY,
        },
        "message": {
            "message_id": message_id,
            "create_time": now,
            "update_time": now,
            "chat_id": chat_id,
            "chat_type": "p2p",
            "message_type": "text",
            "content": json!({"text": text}).to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lark_events::crypto::{verify_card_signature, verify_event_signature};

    #[test]
    fn sealed_bodies_decrypt_and_verify() {
        let signer = EventSigner::new().encrypt_key("k").verification_token("t");
        let envelope = signer.event_v2("x.y_v1", json!({"a": 1}));
        assert_eq!(envelope["header"]["token"], "t");
        let sealed = signer.seal(&envelope);
        let sig = sealed.signature.as_deref().unwrap();
        assert!(verify_event_signature(&sealed.timestamp, &sealed.nonce, "k", &sealed.body, sig));
        let outer: Value = serde_json::from_slice(&sealed.body).unwrap();
        let plain = Cipher::new("k").decrypt(outer["encrypt"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&plain).unwrap(), envelope);

        let card = signer.seal_legacy_card(&signer.legacy_card_action("ou_1", "om_1", json!({})));
        let sig = card.signature.as_deref().unwrap();
        assert!(verify_card_signature(&card.timestamp, &card.nonce, "t", &card.body, sig));
        let headers = card.headers();
        assert_eq!(headers[SIGNATURE_HEADER], sig);
        assert!(!format!("{signer:?}").contains("\"k\""));
    }

    #[test]
    fn plain_without_a_key() {
        let signer = EventSigner::new();
        let sealed = signer.seal_bytes(b"{ \"x\" : \"\xc3\xa9\" }", 7);
        assert_eq!(&sealed.body[..], b"{ \"x\" : \"\xc3\xa9\" }");
        assert_eq!(sealed.signature, None);
        assert_eq!(sealed.timestamp, "7");
        let v1 = signer.event_v1(json!({"type": "custom"}));
        assert_eq!(v1["event"]["app_id"], DEFAULT_APP_ID);
        assert_eq!(v1["type"], "event_callback");
    }
}
