//! Reading the envelopes the platform sends, borrowing from the body (one pass, few copies).
//!
//! - schema 2.0: `{"schema":"2.0","header":{event_id,event_type,create_time,token,app_id,tenant_key},"event":{...}}`
//! - schema 1.0: `{"uuid","token","ts","type":"event_callback","event":{"type":...,...}}`
//! - URL check: `{"challenge","token","type":"url_verification"}` (the encrypted form is
//!   decrypted before it gets here)
//! - old-style card callback: `{open_id,user_id,open_message_id,open_chat_id,tenant_key,token,action}`
//! - encrypted: `{"encrypt":"<base64>"}`

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::EventError;

/// Every top-level field the dispatcher looks at, of any envelope.
#[derive(Deserialize)]
pub(crate) struct Wire<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) encrypt: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) header: Option<Header<'a>>,
    #[serde(borrow, default)]
    pub(crate) event: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) uuid: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) ts: Option<&'a RawValue>,
    #[serde(rename = "type", borrow, default, deserialize_with = "borrowed")]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) challenge: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) action: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) tenant_key: Option<Cow<'a, str>>,
}

/// The `header` of a schema 2.0 envelope.
#[derive(Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) event_type: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) create_time: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) token: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) app_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) tenant_key: Option<Cow<'a, str>>,
}

/// The fields of a schema 1.0 `event` object the dispatcher needs.
#[derive(Deserialize)]
pub(crate) struct V1Event<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) app_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) tenant_key: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub(crate) app_ticket: Option<Cow<'a, str>>,
}

/// An optional string that borrows from the body unless it has escapes. (`Option<Cow<str>>`
/// with plain `#[serde(borrow)]` always copies.)
fn borrowed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'de>>::deserialize(d)?.map(|t| t.0))
}

/// Which envelope a plain body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    UrlCheck,
    V2,
    V1,
    LegacyCard,
}

/// Parses a body (outer or decrypted) as an envelope.
pub(crate) fn parse(body: &[u8]) -> Result<Wire<'_>, EventError> {
    // Checking UTF-8 once up front is cheaper than per string and per raw value while parsing.
    let text = std::str::from_utf8(body)
        .map_err(|e| EventError::malformed("the body is not UTF-8").with_source(e))?;
    serde_json::from_str(text)
        .map_err(|e| EventError::malformed("the body is not a JSON envelope").with_source(e))
}

/// The ciphertext of a body that is exactly `{"encrypt":"<text>"}`, without looking at the text.
///
/// When the text then decodes as base64 it holds no quote, backslash or control character, so
/// the body is that one-field JSON object and [`parse`] would read the same `encrypt` (and
/// nothing else) from it.
pub(crate) fn bare_encrypt(body: &[u8]) -> Option<&[u8]> {
    body.strip_prefix(br#"{"encrypt":""#)?.strip_suffix(br#""}"#)
}

impl Wire<'_> {
    /// Which envelope this is, or why it is none.
    pub(crate) fn kind(&self) -> Result<Kind, EventError> {
        if self.kind.as_deref() == Some("url_verification") {
            return match self.challenge {
                Some(_) => Ok(Kind::UrlCheck),
                None => Err(EventError::malformed("URL check without a challenge")),
            };
        }
        if self.schema.is_some() || self.header.is_some() {
            return match (&self.header, self.event) {
                (Some(_), Some(_)) => Ok(Kind::V2),
                _ => Err(EventError::malformed("schema 2.0 envelope without header or event")),
            };
        }
        if self.kind.as_deref() == Some("event_callback") {
            return match self.event {
                Some(_) => Ok(Kind::V1),
                None => Err(EventError::malformed("schema 1.0 envelope without event")),
            };
        }
        if self.action.is_some() {
            return Ok(Kind::LegacyCard);
        }
        Err(EventError::malformed("not an event, a callback or a URL check"))
    }
}

/// The text of a JSON string or number (`"123"` or `123` both give `123`).
pub(crate) fn raw_text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if text.starts_with('"') {
        // A JSON string without escapes is the text between its quotes.
        let plain = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).filter(|t| !t.contains('\\'));
        plain.map(Cow::Borrowed).or_else(|| serde_json::from_str::<Cow<'_, str>>(text).ok())
    } else {
        Some(Cow::Borrowed(text))
    }
}

/// `header.create_time` (Unix ms, as text) in milliseconds.
pub(crate) fn millis(raw: &RawValue) -> Option<u64> {
    raw_text(raw)?.trim().parse().ok()
}

/// A 1.0 `ts` (Unix seconds with a fraction, as text) in milliseconds.
pub(crate) fn seconds_to_millis(raw: &RawValue) -> Option<u64> {
    let secs: f64 = raw_text(raw)?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some((secs * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let cases: [(&str, Kind); 5] = [
            (r#"{"challenge":"c","token":"t","type":"url_verification"}"#, Kind::UrlCheck),
            (r#"{"schema":"2.0","header":{"event_type":"x"},"event":{}}"#, Kind::V2),
            (r#"{"uuid":"u","type":"event_callback","event":{"type":"x"}}"#, Kind::V1),
            (r#"{"open_id":"ou","action":{"value":{}}}"#, Kind::LegacyCard),
            (r#"{"schema":"2.0","header":{"event_type":"x\u0041"},"event":{"a":[1,{"b":null}]}}"#, Kind::V2),
        ];
        for (body, kind) in cases {
            assert_eq!(parse(body.as_bytes()).unwrap().kind().unwrap(), kind, "{body}");
        }
        let w = parse(br#"{"schema":"2.0","header":{"event_type":"x\u0041"},"event":{}}"#).unwrap();
        assert_eq!(w.header.unwrap().event_type, "xA");
        let w =
            parse(br#"{"uuid":"u\u0041","token":"t","tenant_key":null,"type":"event_callback"}"#).unwrap();
        assert!(matches!(w.uuid, Some(Cow::Owned(ref u)) if u == "uA"));
        assert!(matches!(w.token, Some(Cow::Borrowed("t"))));
        assert!(w.tenant_key.is_none() && w.challenge.is_none());
    }

    #[test]
    fn bare_encrypt_only_takes_the_exact_one_field_object() {
        assert_eq!(bare_encrypt(br#"{"encrypt":"QUJD"}"#), Some(&b"QUJD"[..]));
        assert_eq!(bare_encrypt(br#"{"encrypt":""}"#), Some(&b""[..]));
        for body in [
            r#"{"encrypt": "QUJD"}"#,
            r#" {"encrypt":"QUJD"}"#,
            r#"{"encrypt":"QUJD"} "#,
            r#"{"encrypt":5}"#,
            "{",
        ] {
            assert_eq!(bare_encrypt(body.as_bytes()), None, "{body}");
        }
    }

    #[test]
    fn malformed_shapes() {
        for body in [
            "[]",
            "1",
            "\"s\"",
            "{",
            "",
            "{}",
            r#"{"type":"url_verification"}"#,
            r#"{"schema":"2.0","event":{}}"#,
            r#"{"schema":"2.0","header":{"event_type":"x"}}"#,
            r#"{"schema":"2.0","header":{},"event":{}}"#,
            r#"{"type":"event_callback"}"#,
            r#"{"type":"something"}"#,
            r#"{"encrypt":5}"#,
        ] {
            let err = parse(body.as_bytes()).and_then(|w| w.kind());
            assert!(err.is_err(), "{body}");
        }
    }

    #[test]
    fn times() {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        assert_eq!(millis(&raw("\"1700000000123\"")), Some(1_700_000_000_123));
        assert_eq!(millis(&raw("1700000000123")), Some(1_700_000_000_123));
        assert_eq!(millis(&raw("\"x\"")), None);
        assert_eq!(millis(&raw("\"17\\u0030\"")), Some(170));
        assert_eq!(raw_text(&raw("\"a\\\"b\"")).as_deref(), Some("a\"b"));
        assert_eq!(seconds_to_millis(&raw("\"1502199207.7171419\"")), Some(1_502_199_207_717));
        assert_eq!(seconds_to_millis(&raw("\"-1\"")), None);
        assert_eq!(seconds_to_millis(&raw("\"NaN\"")), None);
    }
}
