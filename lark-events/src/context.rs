//! [`EventContext`]: what a handler knows about the delivery besides the event itself.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use lark_services::Client;

/// The envelope a delivery came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Schema {
    /// Schema 2.0: `{"schema":"2.0","header":{...},"event":{...}}` (events and callbacks).
    V2,
    /// Schema 1.0: `{"uuid","token","ts","type":"event_callback","event":{...}}`.
    V1,
    /// An old-style card callback (the card request URL).
    LegacyCard,
}

/// The event type given to handlers of old-style card callbacks, which carry none on the wire.
pub const LEGACY_CARD_ACTION: &str = "legacy.card.action";

/// What a handler gets with each event: ids and metadata from the envelope, the raw (decrypted)
/// JSON, and the [`Client`] the dispatcher was built with, to answer through.
///
/// `Debug` shows the ids, never the raw JSON (it carries the verification token).
#[derive(Clone)]
pub struct EventContext {
    pub(crate) schema: Schema,
    pub(crate) event_type: Arc<str>,
    pub(crate) event_id: Option<String>,
    pub(crate) tenant_key: Option<String>,
    pub(crate) app_id: Option<String>,
    pub(crate) create_time_ms: Option<u64>,
    pub(crate) raw: Bytes,
    pub(crate) client: Option<Client>,
}

impl EventContext {
    /// The envelope's schema.
    pub fn schema(&self) -> Schema {
        self.schema
    }

    /// The event type, e.g. `im.message.receive_v1` ([`LEGACY_CARD_ACTION`] for old-style card
    /// callbacks).
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The delivery's id: `header.event_id` (2.0) or `uuid` (1.0); none for old-style cards.
    /// The same event delivered again has the same id.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// The tenant the event belongs to (name it on calls of marketplace apps).
    pub fn tenant_key(&self) -> Option<&str> {
        self.tenant_key.as_deref()
    }

    /// The app the event is for.
    pub fn app_id(&self) -> Option<&str> {
        self.app_id.as_deref()
    }

    /// When the platform created the event, in Unix milliseconds (`header.create_time` for 2.0,
    /// `ts` for 1.0).
    pub fn create_time_ms(&self) -> Option<u64> {
        self.create_time_ms
    }

    /// The whole delivery as plain (decrypted) JSON bytes, exactly as sent.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The whole delivery parsed as JSON.
    pub fn raw_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.raw)
    }

    /// The client the dispatcher was built with ([`client`](crate::EventDispatcherBuilder::client)).
    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }
}

impl fmt::Debug for EventContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventContext")
            .field("schema", &self.schema)
            .field("event_type", &self.event_type)
            .field("event_id", &self.event_id)
            .field("tenant_key", &self.tenant_key)
            .field("app_id", &self.app_id)
            .field("create_time_ms", &self.create_time_ms)
            .finish_non_exhaustive()
    }
}
