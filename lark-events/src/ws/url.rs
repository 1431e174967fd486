//! The connection URL from the bootstrap call: where to dial, the `service_id` for pings, and
//! a redacted form for logs (`access_key` and `ticket` are secrets).

use std::fmt;

use http::Uri;
use percent_encoding::percent_decode_str;

/// Query parameters that may be shown; every other value is redacted.
const SHOWN: [&str; 4] = ["device_id", "service_id", "fpid", "aid"];

/// A parsed connection URL. Its `Debug` and `Display` are redacted.
#[derive(Clone)]
pub(crate) struct ConnectUrl {
    uri: Uri,
    secure: bool,
    host: String,
    port: u16,
    service_id: i32,
    device_id: Option<String>,
}

/// Why a connection URL is unusable.
#[derive(Debug)]
pub(crate) struct BadUrl(&'static str);

impl fmt::Display for BadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the connection URL is unusable: {}", self.0)
    }
}

impl std::error::Error for BadUrl {}

impl ConnectUrl {
    /// Parses a `ws://` or `wss://` URL.
    pub(crate) fn parse(url: &str) -> Result<ConnectUrl, BadUrl> {
        let uri: Uri = url.parse().map_err(|_| BadUrl("not a URL"))?;
        let secure = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(BadUrl("the scheme is not ws or wss")),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or(BadUrl("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let mut service_id = 0;
        let mut device_id = None;
        for (key, value) in query_pairs(uri.query().unwrap_or_default()) {
            match &*key {
                "service_id" => {
                    service_id = value.parse().map_err(|_| BadUrl("service_id is not a number"))?
                }
                "device_id" => device_id = Some(value),
                _ => {}
            }
        }
        Ok(ConnectUrl { uri, secure, host, port, service_id, device_id })
    }

    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    pub(crate) fn secure(&self) -> bool {
        self.secure
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The `service` of pings.
    pub(crate) fn service_id(&self) -> i32 {
        self.service_id
    }

    /// The connection's id.
    pub(crate) fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }
}

impl fmt::Display for ConnectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.uri))
    }
}

impl fmt::Debug for ConnectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectUrl({self})")
    }
}

/// `key=value` pairs of a query, percent-decoded.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        (decode(k), decode(v))
    })
}

/// The URL with every query value but the harmless ones replaced by `<redacted>`.
pub(crate) fn redact(uri: &Uri) -> String {
    let mut out = format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("?"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    );
    if let Some(query) = uri.query() {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.push_str(k);
            out.push('=');
            out.push_str(if SHOWN.contains(&k) { v } else { "<redacted>" });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "wss://msg-frontier.feishu.cn/ws/v2?fpid=493&aid=552564&device_id=7311&access_key=s3cr3t-key&service_id=33554678&ticket=s3cr3t-ticket";

    #[test]
    fn parses_the_platform_url() {
        let u = ConnectUrl::parse(URL).unwrap();
        assert!(u.secure());
        assert_eq!(
            (u.host(), u.port(), u.service_id(), u.device_id()),
            ("msg-frontier.feishu.cn", 443, 33554678, Some("7311"))
        );
        let plain = ConnectUrl::parse("ws://127.0.0.1:9000/ws?service_id=-5").unwrap();
        assert_eq!(
            (plain.secure(), plain.port(), plain.service_id(), plain.device_id()),
            (false, 9000, -5, None)
        );
    }

    #[test]
    fn secrets_never_show() {
        let u = ConnectUrl::parse(URL).unwrap();
        for shown in [format!("{u}"), format!("{u:?}")] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("device_id=7311") && shown.contains("service_id=33554678"), "{shown}");
            assert!(
                shown.contains("access_key=<redacted>") && shown.contains("ticket=<redacted>"),
                "{shown}"
            );
        }
    }

    #[test]
    fn unusable_urls_are_errors() {
        for bad in ["", "http://host/ws", "wss:///nohost", "ws://h/ws?service_id=abc", "not a url at all"] {
            assert!(ConnectUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
