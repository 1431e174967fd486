//! The frames of the long connection: one binary WebSocket message is one protobuf (proto2)
//! `pbbp2.Frame`; data frames are acknowledged with a JSON payload.
//!
//! ```text
//! message Header { required string key = 1; required string value = 2; }
//! message Frame  { required uint64 SeqID = 1; required uint64 LogID = 2; required int32 service = 3;
//!                  required int32 method = 4; repeated Header headers = 5;
//!                  optional string payload_encoding = 6; optional string payload_type = 7;
//!                  optional bytes payload = 8; optional string LogIDNew = 9; }
//! ```
//!
//! Required fields are always encoded, even when zero; optional fields only when set.

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use lark_types::BoxError;

/// `method` of a control frame (ping, pong).
pub const METHOD_CONTROL: i32 = 0;
/// `method` of a data frame (events, callbacks, and their acks).
pub const METHOD_DATA: i32 = 1;

/// Header: what the frame carries (`event`, `card`, `ping`, `pong`).
pub const HEADER_TYPE: &str = "type";
/// Header: the message id; all fragments of one message share it.
pub const HEADER_MESSAGE_ID: &str = "message_id";
/// Header: how many fragments the message has (1 when not fragmented).
pub const HEADER_SUM: &str = "sum";
/// Header: the 0-based index of this fragment.
pub const HEADER_SEQ: &str = "seq";
/// Header: the trace id of the delivery.
pub const HEADER_TRACE_ID: &str = "trace_id";
/// Header: when the platform sent the message (Unix milliseconds).
pub const HEADER_TIMESTAMP: &str = "timestamp";
/// Header added to acks: how long the handler took, in milliseconds.
pub const HEADER_BIZ_RT: &str = "biz_rt";

/// `type` of a data frame carrying an event (card callbacks arrive as events too).
pub const TYPE_EVENT: &str = "event";
/// `type` of a data frame carrying a card callback.
pub const TYPE_CARD: &str = "card";
/// `type` of the client's ping.
pub const TYPE_PING: &str = "ping";
/// `type` of the platform's pong, which may carry a [`ClientConfig`].
pub const TYPE_PONG: &str = "pong";

/// A header of a [`Frame`]: `key` = `value`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Header {
    /// The key, such as [`HEADER_TYPE`].
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

impl Header {
    /// A header `key` = `value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Header {
        Header { key: key.into(), value: value.into() }
    }
}

/// One frame of the long connection (`pbbp2.Frame`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Frame {
    /// `SeqID`.
    #[prost(uint64, required, tag = "1")]
    pub seq_id: u64,
    /// `LogID`.
    #[prost(uint64, required, tag = "2")]
    pub log_id: u64,
    /// `service`: the `service_id` of the connection URL.
    #[prost(int32, required, tag = "3")]
    pub service: i32,
    /// `method`: [`METHOD_CONTROL`] or [`METHOD_DATA`].
    #[prost(int32, required, tag = "4")]
    pub method: i32,
    /// `headers`, in order.
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<Header>,
    /// `payload_encoding`.
    #[prost(string, optional, tag = "6")]
    pub payload_encoding: Option<String>,
    /// `payload_type`.
    #[prost(string, optional, tag = "7")]
    pub payload_type: Option<String>,
    /// `payload`: the plain event JSON (or a fragment of it), an ack, or a pong's config.
    #[prost(bytes = "bytes", optional, tag = "8")]
    pub payload: Option<Bytes>,
    /// `LogIDNew`.
    #[prost(string, optional, tag = "9")]
    pub log_id_new: Option<String>,
}

impl Frame {
    /// The client's ping: `{SeqID: 0, LogID: 0, service, method: 0, headers: [type=ping]}`.
    pub fn ping(service: i32) -> Frame {
        Frame {
            service,
            method: METHOD_CONTROL,
            headers: vec![Header::new(HEADER_TYPE, TYPE_PING)],
            ..Frame::default()
        }
    }

    /// Encodes the frame (the body of one binary WebSocket message).
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(self.encode_to_vec())
    }

    /// Decodes one binary WebSocket message; anything that is not a frame is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Frame, FrameError> {
        Frame::decode(bytes).map_err(|e| FrameError::new("not a pbbp2 frame").with_source(e))
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.key == key).map(|h| h.value.as_str())
    }

    /// Sets the header `key` (replacing the first one with that key, or appending one).
    pub fn set_header(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.headers.iter_mut().find(|h| h.key == key) {
            Some(h) => h.value = value,
            None => self.headers.push(Header::new(key, value)),
        }
    }

    /// The `type` header, or `""`.
    pub fn kind(&self) -> &str {
        self.header(HEADER_TYPE).unwrap_or_default()
    }

    /// The ack of this data frame: the same frame (SeqID, LogID, service, method, headers) plus
    /// header `biz_rt`, with `ack` as its payload.
    pub fn to_ack(&self, ack: &Ack, biz_rt_ms: u64) -> Frame {
        let mut frame = Frame { payload: None, ..self.clone() };
        frame.set_header(HEADER_BIZ_RT, biz_rt_ms.to_string());
        frame.payload = Some(ack.to_json());
        frame
    }
}

/// The payload of an ack: `{"code":200|500,"headers":null,"data":<base64 of the answer, or
/// null>}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// 200 when the delivery was handled, 500 when it failed (the platform delivers it again).
    pub code: u16,
    /// The handler's JSON answer (a card callback's reply), if any.
    pub data: Option<Bytes>,
}

#[derive(Serialize)]
struct AckOut<'a> {
    code: u16,
    headers: Option<()>,
    data: Option<&'a str>,
}

#[derive(Deserialize)]
struct AckIn {
    code: u16,
    #[serde(default)]
    data: Option<String>,
}

impl Ack {
    /// A successful ack with no answer.
    pub const OK: Ack = Ack { code: 200, data: None };
    /// A failed ack: the platform delivers the message again.
    pub const FAILED: Ack = Ack { code: 500, data: None };

    /// The JSON payload.
    pub fn to_json(&self) -> Bytes {
        let data = self.data.as_ref().map(|d| base64::engine::general_purpose::STANDARD.encode(d));
        let out = AckOut { code: self.code, headers: None, data: data.as_deref() };
        // Serialising this struct cannot fail: only integers, null and strings.
        Bytes::from(serde_json::to_vec(&out).unwrap_or_default())
    }

    /// Reads an ack payload (what the platform, or lark-testkit, receives).
    pub fn from_json(json: &[u8]) -> Result<Ack, FrameError> {
        let raw: AckIn = serde_json::from_slice(json)
            .map_err(|e| FrameError::new("the ack payload is not ack JSON").with_source(e))?;
        let data = match raw.data {
            None => None,
            Some(b64) => Some(Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| FrameError::new("the ack's data is not base64").with_source(e))?,
            )),
        };
        Ok(Ack { code: raw.code, data })
    }
}

/// Connection settings the platform sends (bootstrap reply and pongs), in seconds.
///
/// Absent fields leave the current setting as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// How many reconnect attempts in a row before giving up; negative means no limit.
    #[serde(rename = "ReconnectCount", default, skip_serializing_if = "Option::is_none")]
    pub reconnect_count: Option<i64>,
    /// Seconds between reconnect attempts.
    #[serde(rename = "ReconnectInterval", default, skip_serializing_if = "Option::is_none")]
    pub reconnect_interval: Option<i64>,
    /// The first reconnect attempt waits a random time below this many seconds.
    #[serde(rename = "ReconnectNonce", default, skip_serializing_if = "Option::is_none")]
    pub reconnect_nonce: Option<i64>,
    /// Seconds between pings.
    #[serde(rename = "PingInterval", default, skip_serializing_if = "Option::is_none")]
    pub ping_interval: Option<i64>,
}

/// Bytes that are not a frame, an ack, or a config.
#[derive(Debug)]
pub struct FrameError {
    what: &'static str,
    source: Option<BoxError>,
}

impl FrameError {
    pub(crate) fn new(what: &'static str) -> FrameError {
        FrameError { what, source: None }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> FrameError {
        self.source = Some(source.into());
        self
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ping for service 7, computed by hand:
    /// field 1 (varint) 0, field 2 (varint) 0, field 3 (varint) 7, field 4 (varint) 0,
    /// field 5 (length 12): { field 1 "type", field 2 "ping" }.
    const PING_7: &[u8] = &[
        0x08, 0x00, // SeqID = 0 (required: encoded although zero)
        0x10, 0x00, // LogID = 0
        0x18, 0x07, // service = 7
        0x20, 0x00, // method = 0
        0x2a, 0x0c, // headers, 12 bytes
        0x0a, 0x04, b't', b'y', b'p', b'e', // key = "type"
        0x12, 0x04, b'p', b'i', b'n', b'g', // value = "ping"
    ];

    #[test]
    fn ping_encodes_to_hand_computed_bytes() {
        assert_eq!(&Frame::ping(7).to_bytes()[..], PING_7);
        let decoded = Frame::from_bytes(PING_7).unwrap();
        assert_eq!(decoded, Frame::ping(7));
        assert_eq!(decoded.kind(), TYPE_PING);
        assert_eq!(decoded.payload, None);
    }

    #[test]
    fn a_data_frame_with_every_field_round_trips_through_hand_computed_bytes() {
        let frame = Frame {
            seq_id: 300,
            log_id: 1,
            service: -1,
            method: METHOD_DATA,
            headers: vec![Header::new("sum", "2")],
            payload_encoding: Some("x".into()),
            payload_type: Some("y".into()),
            payload: Some(Bytes::from_static(b"{}")),
            log_id_new: Some("z".into()),
        };
        let mut expected = vec![
            0x08, 0xac, 0x02, // SeqID = 300 (varint 0b10_0101100)
            0x10, 0x01, // LogID = 1
            0x18, // service = -1: int32 negatives are 10-byte sign-extended varints
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, //
            0x20, 0x01, // method = 1
            0x2a, 0x08, 0x0a, 0x03, b's', b'u', b'm', 0x12, 0x01, b'2', // headers: sum = 2
            0x32, 0x01, b'x', // payload_encoding
            0x3a, 0x01, b'y', // payload_type
            0x42, 0x02, b'{', b'}', // payload
        ];
        expected.extend_from_slice(&[0x4a, 0x01, b'z']); // LogIDNew
        assert_eq!(&frame.to_bytes()[..], &expected[..]);
        assert_eq!(Frame::from_bytes(&expected).unwrap(), frame);
    }

    #[test]
    fn unknown_fields_are_skipped_and_garbage_is_a_typed_error() {
        let mut with_unknown = PING_7.to_vec();
        with_unknown.extend_from_slice(&[0x50, 0x05]); // field 10 (varint) 5
        assert_eq!(Frame::from_bytes(&with_unknown).unwrap(), Frame::ping(7));

        for garbage in [&[0xff][..], &[0x0a, 0x05, b'a'], &[0x2a, 0x7f, 0x00], b"{\"json\": true}"] {
            let e = Frame::from_bytes(garbage).unwrap_err();
            assert_eq!(e.to_string(), "not a pbbp2 frame");
            assert!(std::error::Error::source(&e).is_some());
        }
    }

    #[test]
    fn the_ack_is_the_same_frame_with_biz_rt_and_a_json_payload() {
        let event = Frame {
            seq_id: 9,
            log_id: 8,
            service: 33,
            method: METHOD_DATA,
            headers: vec![
                Header::new(HEADER_TYPE, TYPE_EVENT),
                Header::new(HEADER_MESSAGE_ID, "m1"),
                Header::new(HEADER_TRACE_ID, "t1"),
            ],
            payload: Some(Bytes::from_static(b"{\"schema\":\"2.0\"}")),
            ..Frame::default()
        };
        let ack = event.to_ack(&Ack { code: 200, data: Some(Bytes::from_static(b"{}")) }, 12);
        assert_eq!((ack.seq_id, ack.log_id, ack.service, ack.method), (9, 8, 33, METHOD_DATA));
        assert_eq!(&ack.headers[..3], &event.headers[..]);
        assert_eq!(ack.headers[3], Header::new(HEADER_BIZ_RT, "12"));
        let payload = ack.payload.unwrap();
        // base64("{}") = "e30="
        assert_eq!(&payload[..], br#"{"code":200,"headers":null,"data":"e30="}"#);
        assert_eq!(
            Ack::from_json(&payload).unwrap(),
            Ack { code: 200, data: Some(Bytes::from_static(b"{}")) }
        );
        assert_eq!(&Ack::FAILED.to_json()[..], br#"{"code":500,"headers":null,"data":null}"#);
        assert!(Ack::from_json(b"{\"code\":200,\"data\":\"%%%\"}").is_err());
    }

    #[test]
    fn client_config_uses_the_platform_names_and_skips_absent_fields() {
        let c: ClientConfig =
            serde_json::from_str(r#"{"ReconnectCount":-1,"ReconnectInterval":120,"PingInterval":90}"#)
                .unwrap();
        assert_eq!(
            c,
            ClientConfig {
                reconnect_count: Some(-1),
                reconnect_interval: Some(120),
                reconnect_nonce: None,
                ping_interval: Some(90)
            }
        );
        assert_eq!(
            serde_json::to_string(&ClientConfig { ping_interval: Some(5), ..ClientConfig::default() })
                .unwrap(),
            r#"{"PingInterval":5}"#
        );
    }
}
