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
    pub(crate) event_id: Text,
    pub(crate) tenant_key: Text,
    pub(crate) app_id: Text,
    pub(crate) create_time_ms: Option<u64>,
    pub(crate) raw: Bytes,
    pub(crate) client: Option<Client>,
}

/// A text field of a context: where it sits in the raw JSON when it appears there as is (no
/// escapes, so no copy is made), or its own copy.
#[derive(Clone, Default)]
pub(crate) enum Text {
    /// The envelope has no such field.
    #[default]
    Absent,
    /// `raw[start..end]`.
    Span(usize, usize),
    /// Text that is not a slice of the raw JSON (it had escapes, or came from elsewhere).
    Owned(Box<str>),
}

impl Text {
    /// `text`, found in `raw` when it is a slice of it, else copied.
    pub(crate) fn new(raw: &[u8], text: Option<&str>) -> Text {
        let Some(text) = text else { return Text::Absent };
        let start = (text.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
        let within = start
            .checked_add(text.len())
            .and_then(|end| raw.get(start..end))
            .is_some_and(|slice| std::ptr::eq(slice.as_ptr(), text.as_ptr()));
        if within {
            Text::Span(start, start + text.len())
        } else {
            Text::Owned(text.into())
        }
    }

    /// The text, given the raw JSON it was made with.
    pub(crate) fn get<'a>(&'a self, raw: &'a [u8]) -> Option<&'a str> {
        match self {
            Text::Absent => None,
            Text::Span(start, end) => raw.get(*start..*end).and_then(|b| std::str::from_utf8(b).ok()),
            Text::Owned(text) => Some(text),
        }
    }
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
        self.event_id.get(&self.raw)
    }

    /// The tenant the event belongs to (name it on calls of marketplace apps).
    pub fn tenant_key(&self) -> Option<&str> {
        self.tenant_key.get(&self.raw)
    }

    /// The app the event is for.
    pub fn app_id(&self) -> Option<&str> {
        self.app_id.get(&self.raw)
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
            .field("event_id", &self.event_id())
            .field("tenant_key", &self.tenant_key())
            .field("app_id", &self.app_id())
            .field("create_time_ms", &self.create_time_ms)
            .finish_non_exhaustive()
    }
}
