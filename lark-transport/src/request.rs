//! [`ApiRequest`]: method, path template with `:name` values, repeated query keys, headers,
//! a JSON or multipart body and [`AuthOptions`], turned into an `http::Request<Body>`.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method};
use lark_types::{AuthOptions, ConfigError, LarkError};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;

use crate::multipart::Multipart;
use crate::Body;

/// Characters left as they are in a path segment or query component: RFC 3986 unreserved.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `application/json; charset=utf-8`, the content type of JSON request bodies.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Percent-encodes one path segment value (`/`, spaces, unicode and everything else outside
/// RFC 3986's unreserved set are encoded).
pub fn encode_path_segment(value: &str) -> Cow<'_, str> {
    percent_encoding::utf8_percent_encode(value, UNRESERVED).into()
}

fn encode_query_component(value: &str) -> Cow<'_, str> {
    percent_encoding::utf8_percent_encode(value, UNRESERVED).into()
}

enum RequestBody {
    Empty,
    Json(Result<Bytes, String>),
    Multipart(Multipart),
    Raw { body: Body, content_type: Option<HeaderValue> },
}

/// A base URL parsed once: scheme, host and port, and an optional path prefix (a proxy's,
/// say) that every request path is appended to. Requests built against it with
/// [`ApiRequest::build_at`] parse only their own path and query.
///
/// ```
/// use lark_transport::BaseUrl;
///
/// let base = BaseUrl::parse("https://proxy.example/lark/").unwrap();
/// assert_eq!(base.as_str(), "https://proxy.example/lark");
/// assert!(BaseUrl::parse("open.feishu.cn").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The path prefix without a trailing `/` (empty for none).
    prefix: String,
    /// The URL as given, without a trailing `/`.
    text: String,
}

impl BaseUrl {
    /// Parses `scheme://host[:port][/prefix]` (a trailing `/` is dropped). A URL without a scheme
    /// or host, or with a query or a fragment, is a [`ConfigError`].
    pub fn parse(url: &str) -> Result<BaseUrl, ConfigError> {
        let text = url.trim_end_matches('/');
        if text.contains('#') {
            return Err(ConfigError::new(format!("base URL `{text}` has a fragment")));
        }
        let uri: http::Uri =
            text.parse().map_err(|e| ConfigError::new(format!("base URL `{text}` is not a URL: {e}")))?;
        let parts = uri.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            return Err(ConfigError::new(format!("base URL `{text}` has no scheme or host")));
        };
        let prefix = match &parts.path_and_query {
            Some(pq) if pq.query().is_some() => {
                return Err(ConfigError::new(format!("base URL `{text}` has a query")))
            }
            Some(pq) => pq.path().trim_end_matches('/').to_owned(),
            None => String::new(),
        };
        Ok(BaseUrl { scheme, authority, prefix, text: text.to_owned() })
    }

    /// The URL, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scheme, lower case (`https`).
    pub fn scheme(&self) -> &str {
        self.scheme.as_str()
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A request to one open-platform API, built up and then turned into an `http::Request<Body>`.
///
/// ```
/// use lark_transport::ApiRequest;
/// use http::Method;
///
/// let req = ApiRequest::new(Method::GET, "/open-apis/contact/v3/users/:user_id")
///     .path_param("user_id", "ou 1/2")
///     .query("user_id_type", "open_id")
///     .build("https://open.feishu.cn")
///     .unwrap();
/// assert_eq!(req.uri().path(), "/open-apis/contact/v3/users/ou%201%2F2");
/// assert_eq!(req.uri().query(), Some("user_id_type=open_id"));
/// ```
pub struct ApiRequest {
    method: Method,
    path: Cow<'static, str>,
    path_params: Vec<(Cow<'static, str>, String)>,
    query: Vec<(Cow<'static, str>, String)>,
    headers: Vec<(Cow<'static, str>, String)>,
    body: RequestBody,
    auth: AuthOptions,
}

impl std::fmt::Debug for ApiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("path_params", &self.path_params)
            .field("query", &self.query)
            .field("header_names", &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl ApiRequest {
    /// A request for `path`, an `/open-apis/...` template whose `:name` segments are filled by
    /// [`path_param`](Self::path_param).
    pub fn new(method: Method, path: impl Into<Cow<'static, str>>) -> Self {
        ApiRequest {
            method,
            path: path.into(),
            path_params: Vec::new(),
            query: Vec::new(),
            headers: Vec::new(),
            body: RequestBody::Empty,
            auth: AuthOptions::accepting(lark_types::AccessTokenTypes::TENANT),
        }
    }

    /// Fills the `:name` segment of the path; the value is percent-encoded.
    pub fn path_param(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.path_params.push((name.into(), value.into()));
        self
    }

    /// Adds a query parameter; a key may be added several times (`ids=a&ids=b`).
    pub fn query(mut self, key: impl Into<Cow<'static, str>>, value: impl ToString) -> Self {
        self.query.push((key.into(), value.to_string()));
        self
    }

    /// Adds a query parameter when `value` is `Some`.
    pub fn query_opt<V: ToString>(self, key: impl Into<Cow<'static, str>>, value: Option<V>) -> Self {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }

    /// Adds a header. Invalid names or values are reported by [`build`](Self::build).
    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body (`Content-Type: application/json; charset=utf-8`).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.body = RequestBody::Json(serde_json::to_vec(body).map(Bytes::from).map_err(|e| e.to_string()));
        self
    }

    /// Sets a JSON body from bytes that already hold JSON.
    pub fn json_bytes(mut self, body: impl Into<Bytes>) -> Self {
        self.body = RequestBody::Json(Ok(body.into()));
        self
    }

    /// Sets a `multipart/form-data` body.
    pub fn multipart(mut self, form: Multipart) -> Self {
        self.body = RequestBody::Multipart(form);
        self
    }

    /// Sets any body with an optional content type.
    pub fn body(mut self, body: Body, content_type: Option<HeaderValue>) -> Self {
        self.body = RequestBody::Raw { body, content_type };
        self
    }

    /// Sets what the API accepts and what the caller supplied for authorization.
    pub fn auth(mut self, auth: AuthOptions) -> Self {
        self.auth = auth;
        self
    }

    /// Mutable access to the authorization options.
    pub fn auth_mut(&mut self) -> &mut AuthOptions {
        &mut self.auth
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path template.
    pub fn path_template(&self) -> &str {
        &self.path
    }

    /// The path with `:name` segments replaced by their encoded values.
    pub fn render_path(&self) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(self.path.len() + 16);
        self.render_path_into(&mut out)?;
        Ok(out)
    }

    /// [`render_path`](Self::render_path), appended to `out`.
    fn render_path_into(&self, out: &mut String) -> Result<(), ConfigError> {
        if self.path_params.is_empty() && !self.path.contains(':') {
            out.push_str(&self.path);
            return Ok(());
        }
        let mut used = 0usize;
        for (i, segment) in self.path.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            match segment.strip_prefix(':') {
                Some(name) => {
                    let value = self.path_params.iter().find(|(n, _)| n == name).map(|(_, v)| v).ok_or_else(
                        || ConfigError::new(format!("missing path value `{name}` for {}", self.path)),
                    )?;
                    if value.is_empty() {
                        return Err(ConfigError::new(format!(
                            "path value `{name}` for {} is empty",
                            self.path
                        )));
                    }
                    used += 1;
                    out.push_str(&encode_path_segment(value));
                }
                None => out.push_str(segment),
            }
        }
        if used != self.path_params.len() {
            let unknown: Vec<_> = self
                .path_params
                .iter()
                .filter(|(n, _)| !self.path.split('/').any(|s| s.strip_prefix(':') == Some(n)))
                .map(|(n, _)| n.as_ref())
                .collect();
            return Err(ConfigError::new(format!(
                "path {} has no placeholder for {}",
                self.path,
                unknown.join(", ")
            )));
        }
        Ok(())
    }

    /// Builds the `http::Request` against `base_url` (e.g. `https://open.feishu.cn`), with the
    /// [`AuthOptions`] attached as an extension. A caller that builds many requests against one
    /// base parses it once with [`BaseUrl::parse`] and uses [`build_at`](Self::build_at).
    pub fn build(self, base_url: &str) -> Result<http::Request<Body>, LarkError> {
        self.build_at(&BaseUrl::parse(base_url)?)
    }

    /// Builds the `http::Request` against a parsed base URL, with the [`AuthOptions`] attached
    /// as an extension. Only the request's own path and query are parsed.
    pub fn build_at(self, base: &BaseUrl) -> Result<http::Request<Body>, LarkError> {
        let mut target = String::with_capacity(base.prefix.len() + self.path.len() + 32);
        target.push_str(&base.prefix);
        if !self.path.starts_with('/') {
            target.push('/');
        }
        self.render_path_into(&mut target)?;
        for (i, (k, v)) in self.query.iter().enumerate() {
            target.push(if i == 0 { '?' } else { '&' });
            target.push_str(&encode_query_component(k));
            target.push('=');
            target.push_str(&encode_query_component(v));
        }
        let path_and_query = http::uri::PathAndQuery::from_maybe_shared(Bytes::from(target))
            .map_err(|e| ConfigError::new(format!("invalid request path: {e}")))?;
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(base.scheme.clone());
        parts.authority = Some(base.authority.clone());
        parts.path_and_query = Some(path_and_query);
        let uri = http::Uri::from_parts(parts)
            .map_err(|e| ConfigError::new(format!("invalid request URL: {e}")))?;

        // Parts are set in place on the request, not moved through `http::request::Builder`.
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigError::new(format!("invalid header name `{name}`")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| ConfigError::new(format!("invalid value for header `{name}`")))?;
            headers.append(name, value);
        }
        let body = match self.body {
            RequestBody::Empty => Body::empty(),
            RequestBody::Json(Ok(bytes)) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
                Body::full(bytes)
            }
            RequestBody::Json(Err(e)) => {
                return Err(ConfigError::new(format!("request body could not be serialized: {e}")).into())
            }
            RequestBody::Multipart(form) => {
                let (content_type, body) = form.into_body();
                headers.insert(CONTENT_TYPE, content_type);
                body
            }
            RequestBody::Raw { body, content_type } => {
                if let Some(ct) = content_type {
                    headers.insert(CONTENT_TYPE, ct);
                }
                body
            }
        };
        let mut req = http::Request::new(body);
        *req.method_mut() = self.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        // No extension means "a tenant token" to the auth layer: skip it in that common case, which
        // saves an allocation here and in every copy the retry layer makes.
        if self.auth != AuthOptions::accepting(lark_types::AccessTokenTypes::TENANT) {
            req.extensions_mut().insert(self.auth);
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_with_a_prefix_a_port_or_a_trailing_slash() {
        let at = |base: &str, path: &str| {
            let base = BaseUrl::parse(base).unwrap();
            ApiRequest::new(Method::GET, path.to_owned())
                .query("q", "a b")
                .build_at(&base)
                .unwrap()
                .uri()
                .to_string()
        };
        assert_eq!(
            at("https://open.feishu.cn", "/open-apis/x"),
            "https://open.feishu.cn/open-apis/x?q=a%20b"
        );
        assert_eq!(at("http://127.0.0.1:8080/", "/open-apis/x"), "http://127.0.0.1:8080/open-apis/x?q=a%20b");
        assert_eq!(
            at("https://proxy.example/lark/", "/open-apis/x"),
            "https://proxy.example/lark/open-apis/x?q=a%20b"
        );
        // A path without its leading slash lands under the base (string concatenation used to glue
        // it to the host, giving another authority).
        assert_eq!(at("http://h:1", "open-apis/x"), "http://h:1/open-apis/x?q=a%20b");
        // `build` with the text gives the same request as `build_at` with the parsed base.
        let text = ApiRequest::new(Method::GET, "/open-apis/x").build("https://proxy.example/lark/").unwrap();
        let parsed = BaseUrl::parse("https://proxy.example/lark/").unwrap();
        assert_eq!(text.uri(), ApiRequest::new(Method::GET, "/open-apis/x").build_at(&parsed).unwrap().uri());
        assert_eq!(text.uri(), "https://proxy.example/lark/open-apis/x");
        // IPv6 hosts, user info and upper-case schemes pass through as `http::Uri` reads them.
        assert_eq!(at("HTTP://[::1]:8080", "/x"), "http://[::1]:8080/x?q=a%20b");
        assert_eq!(at("https://u@h/p", "/x"), "https://u@h/p/x?q=a%20b");
        assert_eq!(BaseUrl::parse("https://h/p/").unwrap().as_str(), "https://h/p");
        assert_eq!(BaseUrl::parse("HTTPS://h").unwrap().scheme(), "https");
        for bad in ["open.feishu.cn", "/open-apis", "https://h/?a=1", "https://h/lark#x", "http://", ""] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
        let e = ApiRequest::new(Method::GET, "/open-apis/x y").build("https://h").unwrap_err();
        assert!(e.to_string().contains("invalid request path"), "{e}");
    }

    #[test]
    fn path_values_are_encoded() {
        let req = ApiRequest::new(Method::GET, "/open-apis/x/:a/y/:b")
            .path_param("a", "a/b c")
            .path_param("b", "飞书~.-_")
            .build("http://127.0.0.1:1/")
            .unwrap();
        assert_eq!(req.uri().path(), "/open-apis/x/a%2Fb%20c/y/%E9%A3%9E%E4%B9%A6~.-_");
    }

    #[test]
    fn missing_unknown_and_empty_path_values_are_config_errors() {
        let e = ApiRequest::new(Method::GET, "/x/:a").build("http://h").unwrap_err();
        assert!(e.to_string().contains("missing path value `a`"), "{e}");
        let e = ApiRequest::new(Method::GET, "/x/:a")
            .path_param("a", "1")
            .path_param("zz", "2")
            .build("http://h")
            .unwrap_err();
        assert!(e.to_string().contains("zz"), "{e}");
        let e = ApiRequest::new(Method::GET, "/x/:a").path_param("a", "").build("http://h").unwrap_err();
        assert!(matches!(e, LarkError::Config(_)));
    }

    #[test]
    fn query_keys_repeat_and_are_encoded() {
        let req = ApiRequest::new(Method::GET, "/q")
            .query("user_ids", "a b")
            .query("user_ids", "c&d")
            .query_opt("none", None::<u32>)
            .query_opt("page_size", Some(20))
            .build("http://h")
            .unwrap();
        assert_eq!(req.uri().query(), Some("user_ids=a%20b&user_ids=c%26d&page_size=20"));
    }

    #[test]
    fn json_body_and_headers() {
        let req = ApiRequest::new(Method::POST, "/j")
            .json(&serde_json::json!({"k": "v"}))
            .header("x-request-id", "r1")
            .build("http://h")
            .unwrap();
        assert_eq!(req.headers()[CONTENT_TYPE], JSON_CONTENT_TYPE);
        assert_eq!(req.headers()["x-request-id"], "r1");
        assert_eq!(req.body().as_bytes().unwrap(), br#"{"k":"v"}"#);
        assert!(req.extensions().get::<AuthOptions>().is_none(), "the default (tenant) is left implicit");
        let req = ApiRequest::new(Method::GET, "/j")
            .auth(AuthOptions::accepting(lark_types::AccessTokenTypes::APP))
            .build("http://h")
            .unwrap();
        assert_eq!(
            req.extensions().get::<AuthOptions>().unwrap().accepted,
            lark_types::AccessTokenTypes::APP
        );
        let e = ApiRequest::new(Method::GET, "/j").header("bad header", "v").build("http://h").unwrap_err();
        assert!(matches!(e, LarkError::Config(_)));
    }
}
