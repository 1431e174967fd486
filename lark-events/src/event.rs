//! The [`Event`] trait: what a typed event model implements.

/// A typed event model: the `event` object of one event type.
///
/// The generated models in `lark_events::generated` implement it; so can your own:
///
/// ```
/// use lark_events::Event;
///
/// #[derive(serde::Deserialize)]
/// struct ChatDisbanded {
///     chat_id: String,
/// }
///
/// impl Event for ChatDisbanded {
///     const EVENT_TYPE: &'static str = "im.chat.disbanded_v1";
/// }
/// ```
///
/// For schema 2.0 events the model is deserialized from the `event` object. For schema 1.0
/// events it is deserialized from the `event` object with the envelope's `uuid`, `token` and
/// `ts` added when the object lacks them (the 1.0 models list those fields too).
pub trait Event: serde::de::DeserializeOwned + Send + Sync + 'static {
    /// The platform's event type, e.g. "im.message.receive_v1" or "app_ticket".
    const EVENT_TYPE: &'static str;
}
