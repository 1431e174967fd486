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

use crate::error::EventError;

/// Every top-level field the dispatcher looks at, of any envelope.
///
/// Members are found by a structural scan of the top-level object ([`members`]) and only those
/// the dispatcher uses are read: strings are sliced from the body (serde unescapes those with
/// escapes), the header is scanned the same way, and the raw ones (`event`, `ts`, `action`) are
/// decoded, and so validated, only by whoever uses them: the event's model, for instance, reads
/// `event` in one pass instead of two. Members nobody reads are not validated.
#[derive(Default)]
pub(crate) struct Wire<'a> {
    pub(crate) encrypt: Option<Cow<'a, str>>,
    pub(crate) schema: Option<Cow<'a, str>>,
    pub(crate) header: Option<Header<'a>>,
    /// The raw JSON of the `event` member (not yet validated).
    pub(crate) event: Option<&'a str>,
    pub(crate) uuid: Option<Cow<'a, str>>,
    pub(crate) token: Option<Cow<'a, str>>,
    /// The raw JSON of the `ts` member (not yet validated).
    pub(crate) ts: Option<&'a str>,
    pub(crate) kind: Option<Cow<'a, str>>,
    pub(crate) challenge: Option<Cow<'a, str>>,
    /// The raw JSON of the `action` member (not yet validated).
    pub(crate) action: Option<&'a str>,
    pub(crate) tenant_key: Option<Cow<'a, str>>,
}

/// The `header` of a schema 2.0 envelope.
#[derive(Default)]
pub(crate) struct Header<'a> {
    pub(crate) event_id: Option<Cow<'a, str>>,
    pub(crate) event_type: Cow<'a, str>,
    /// The raw JSON of `create_time` (a string or number of Unix ms; not yet validated).
    pub(crate) create_time: Option<&'a str>,
    pub(crate) token: Option<Cow<'a, str>>,
    pub(crate) app_id: Option<Cow<'a, str>>,
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
    let mut w = Wire::default();
    let mut header = None;
    fill(
        text,
        [
            ("encrypt", Slot::Text(&mut w.encrypt)),
            ("schema", Slot::Text(&mut w.schema)),
            ("header", Slot::Raw(&mut header)),
            ("event", Slot::Raw(&mut w.event)),
            ("uuid", Slot::Text(&mut w.uuid)),
            ("token", Slot::Text(&mut w.token)),
            ("ts", Slot::Raw(&mut w.ts)),
            ("type", Slot::Text(&mut w.kind)),
            ("challenge", Slot::Text(&mut w.challenge)),
            ("action", Slot::Raw(&mut w.action)),
            ("tenant_key", Slot::Text(&mut w.tenant_key)),
        ],
    )
    .and_then(|()| {
        w.header = header.map(read_header).transpose()?;
        Ok(())
    })
    .map_err(|detail| EventError::malformed("the body is not a JSON envelope").with_detail(detail))?;
    Ok(w)
}

/// Reads the `header` object of a schema 2.0 envelope.
fn read_header(text: &str) -> Result<Header<'_>, &'static str> {
    let (mut h, mut event_type) = (Header::default(), None);
    fill(
        text,
        [
            ("event_id", Slot::Text(&mut h.event_id)),
            ("event_type", Slot::Text(&mut event_type)),
            ("create_time", Slot::Raw(&mut h.create_time)),
            ("token", Slot::Text(&mut h.token)),
            ("app_id", Slot::Text(&mut h.app_id)),
            ("tenant_key", Slot::Text(&mut h.tenant_key)),
        ],
    )?;
    h.event_type = event_type.ok_or("the header has no event_type")?;
    Ok(h)
}

/// Where a member of an object goes.
enum Slot<'w, 'a> {
    /// A string (or `null`), read now.
    Text(&'w mut Option<Cow<'a, str>>),
    /// Any value (`null` is none), kept as raw JSON for whoever reads it.
    Raw(&'w mut Option<&'a str>),
}

/// Reads the members of the object `text` into their slots by key; other members are skipped.
/// A key given twice is refused.
fn fill<'a, const N: usize>(text: &'a str, mut slots: [(&str, Slot<'_, 'a>); N]) -> Result<(), &'static str> {
    let mut seen = 0u64;
    for member in members(text) {
        let (key, value) = member?;
        let Some(at) = slots.iter().position(|(name, _)| *name == key) else { continue };
        if seen & (1 << at) != 0 {
            return Err("a member appears twice");
        }
        seen |= 1 << at;
        match &mut slots[at].1 {
            Slot::Text(slot) => **slot = string(value)?,
            Slot::Raw(slot) => **slot = (value != "null").then_some(value),
        }
    }
    Ok(())
}

/// A JSON string member (or `null`), borrowed from the body unless it has escapes.
fn string(value: &str) -> Result<Option<Cow<'_, str>>, &'static str> {
    if value == "null" {
        return Ok(None);
    }
    let inner =
        value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or("a member is not a string")?;
    if !inner.bytes().any(|b| b == b'\\' || b < 0x20) {
        return Ok(Some(Cow::Borrowed(inner)));
    }
    serde_json::from_str::<String>(value)
        .map(|s| Some(Cow::Owned(s)))
        .map_err(|_| "a string member is invalid")
}

/// The members of the JSON object `text` is, as (key, raw value) pairs, found by a structural
/// scan: strings, nesting and separators are followed; the values themselves are not validated
/// (whoever reads one does that, so e.g. `{"a":[}}` passes here). Text that is not structurally
/// one object gives an error; no input panics.
pub(crate) fn members(text: &str) -> Members<'_> {
    Members { text, pos: 0, state: MembersState::Start }
}

/// The iterator of [`members`].
pub(crate) struct Members<'a> {
    text: &'a str,
    pos: usize,
    state: MembersState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MembersState {
    Start,
    Next,
    Done,
}

impl<'a> Members<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_ws(&mut self) {
        let b = self.bytes();
        while self.pos < b.len() && matches!(b[self.pos], b' ' | b'\n' | b'\r' | b'\t') {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), &'static str> {
        self.skip_ws();
        if self.bytes().get(self.pos) != Some(&byte) {
            return Err(what);
        }
        self.pos += 1;
        Ok(())
    }

    /// One member at `pos` (after `{` or `,`).
    fn member(&mut self) -> Result<(Cow<'a, str>, &'a str), &'static str> {
        self.skip_ws();
        let start = self.pos;
        if self.bytes().get(start) != Some(&b'"') {
            return Err("an object key is not a string");
        }
        let end = skip_string(self.bytes(), start)?;
        let raw_key = self.text.get(start..end).ok_or("an object key is cut")?;
        // It starts with a quote, so it is never `null`.
        let key = string(raw_key)?.ok_or("an object key is not a string")?;
        self.pos = end;
        self.expect(b':', "an object key is not followed by a colon")?;
        self.skip_ws();
        let start = self.pos;
        self.pos = skip_value(self.bytes(), start)?;
        let value = self.text.get(start..self.pos).ok_or("a value is cut")?;
        Ok((key, value))
    }

    fn step(&mut self) -> Result<Option<(Cow<'a, str>, &'a str)>, &'static str> {
        match self.state {
            MembersState::Done => return Ok(None),
            MembersState::Start => {
                self.expect(b'{', "not a JSON object")?;
                self.skip_ws();
                if self.bytes().get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    self.end()?;
                    return Ok(None);
                }
            }
            MembersState::Next => {
                self.skip_ws();
                match self.bytes().get(self.pos) {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        self.end()?;
                        return Ok(None);
                    }
                    _ => return Err("object members are not separated by commas"),
                }
            }
        }
        let member = self.member()?;
        self.state = MembersState::Next;
        Ok(Some(member))
    }

    /// After the closing brace: only whitespace may follow.
    fn end(&mut self) -> Result<(), &'static str> {
        self.state = MembersState::Done;
        self.skip_ws();
        if self.pos == self.bytes().len() {
            Ok(())
        } else {
            Err("something follows the object")
        }
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = Result<(Cow<'a, str>, &'a str), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.step();
        if item.is_err() {
            self.state = MembersState::Done;
        }
        item.transpose()
    }
}

/// The end (one past the closing quote) of the JSON string starting at `start` (a quote).
///
/// Eight bytes are looked at a time for a quote or a backslash: most of an event's bytes are in
/// strings, and most strings are too short for a vectorised search to pay for its setup.
fn skip_string(b: &[u8], start: usize) -> Result<usize, &'static str> {
    const ONES: u64 = u64::MAX / 255;
    const HIGHS: u64 = ONES << 7;
    let has = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut i = start + 1;
    loop {
        while let Some(chunk) = b.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let word = u64::from_le_bytes(word);
            // The lowest flagged byte is always a true match: a borrow can only flag bytes above
            // (after) a true match, never before the first one.
            let found = has(word, b'"') | has(word, b'\\');
            if found != 0 {
                i += found.trailing_zeros() as usize / 8;
                break;
            }
            i += 8;
        }
        match b.get(i) {
            None => return Err("a string is not closed"),
            Some(b'"') => return Ok(i + 1),
            // A backslash escapes the byte after it (a `\uXXXX` escape's digits need no care).
            Some(b'\\') => i += 2,
            Some(_) => i += 1,
        }
    }
}

/// The end of the JSON value starting at `start`: a string, an object or array (nesting is
/// followed, strings skipped), or a scalar (up to the next separator).
fn skip_value(b: &[u8], start: usize) -> Result<usize, &'static str> {
    match b.get(start) {
        None => Err("a value is missing"),
        Some(b'"') => skip_string(b, start),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while let Some(&c) = b.get(i) {
                match c {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err("an object or array is not closed")
        }
        Some(b'}' | b']' | b',' | b':') => Err("a value is missing"),
        Some(_) => {
            let len = b[start..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(b.len() - start);
            Ok(start + len)
        }
    }
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
pub(crate) fn raw_text(text: &str) -> Option<Cow<'_, str>> {
    if text.starts_with('"') {
        string(text).ok().flatten()
    } else {
        Some(Cow::Borrowed(text))
    }
}

/// `header.create_time` (Unix ms, as text) in milliseconds.
pub(crate) fn millis(raw: &str) -> Option<u64> {
    raw_text(raw)?.trim().parse().ok()
}

/// A 1.0 `ts` (Unix seconds with a fraction, as text) in milliseconds.
pub(crate) fn seconds_to_millis(raw: &str) -> Option<u64> {
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

    /// The members as serde reads them, for comparison.
    fn serde_members(text: &str) -> Vec<(String, serde_json::Value)> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).unwrap();
        map.into_iter().collect()
    }

    fn scanned_members(text: &str) -> Vec<(String, serde_json::Value)> {
        members(text)
            .map(|m| {
                let (k, v) = m.unwrap();
                (k.into_owned(), serde_json::from_str(v).unwrap_or_else(|e| panic!("{v:?}: {e}")))
            })
            .collect()
    }

    #[test]
    fn members_split_objects_as_serde_reads_them() {
        for text in [
            "{}",
            " { } ",
            r#"{"a":1}"#,
            "{ \"a\" : -1.5e3 ,\n\t\"b\":[1,[2,{\"c\":\"}]\\\"{\"}],[]] , \"d\":{\"e\":{}}, \"f\":null,\"g\":true}",
            r#"{"k\u0041y":"v\"}","x":"\\","y":["]",{"z":"["}]}"#,
            r#"{"event":{"message":{"content":"{\"text\":\"{hi}\"}"}},"header":{"event_type":"x"},"schema":"2.0"}"#,
        ] {
            let mut expected = serde_members(text);
            let mut got = scanned_members(text);
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            got.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got, expected, "{text}");
        }
        let keys: Vec<_> = members(r#"{"k\u0041y":1,"b":2}"#).map(|m| m.unwrap().0.into_owned()).collect();
        assert_eq!(keys, ["kAy", "b"]);
    }

    #[test]
    fn members_refuse_what_is_not_one_object() {
        for text in [
            "",
            " ",
            "[]",
            "1",
            "\"s\"",
            "{",
            "}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":1}}",
            "{\"a\":1} x",
            "{\"a\":\"open}",
            "{\"a\":{\"b\":1}",
            "{\"a\":[1,2}",
            "{a:1}",
            "{\"a\\",
        ] {
            assert!(members(text).any(|m| m.is_err()), "{text:?}");
        }
    }

    #[test]
    fn duplicate_members_are_refused() {
        assert!(parse(br#"{"schema":"2.0","schema":"2.0","header":{"event_type":"x"},"event":{}}"#).is_err());
        assert!(parse(br#"{"other":1,"other":2,"type":"event_callback","event":{}}"#).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn members_never_panic(text in ".{0,200}") {
            let _ = members(&text).count();
            let _ = parse(text.as_bytes());
        }

        #[test]
        fn members_never_panic_near_json(text in r#"[{}\[\]":,\\a1 ]{0,40}"#) {
            let _ = members(&text).count();
        }
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
        let raw = |s: &'static str| s;
        assert_eq!(millis(raw("\"1700000000123\"")), Some(1_700_000_000_123));
        assert_eq!(millis(raw("1700000000123")), Some(1_700_000_000_123));
        assert_eq!(millis(raw("\"x\"")), None);
        assert_eq!(millis(raw("\"17\\u0030\"")), Some(170));
        assert_eq!(raw_text(raw("\"a\\\"b\"")).as_deref(), Some("a\"b"));
        assert_eq!(seconds_to_millis(raw("\"1502199207.7171419\"")), Some(1_502_199_207_717));
        assert_eq!(seconds_to_millis(raw("\"-1\"")), None);
        assert_eq!(seconds_to_millis(raw("\"NaN\"")), None);
    }
}
