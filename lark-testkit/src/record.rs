//! What the fake platform records for tests to inspect.

use bytes::Bytes;

/// A token endpoint whose requests [`FakePlatform::hits`](crate::FakePlatform::hits) counts.
///
/// A request counts as a hit when its path is the endpoint's path, whatever its method, body or
/// outcome (wrong secret, injected fault and so on): the counter says what reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /open-apis/auth/v3/app_access_token/internal` (self-built app token).
    AppAccessTokenInternal,
    /// `POST /open-apis/auth/v3/tenant_access_token/internal` (self-built tenant token).
    TenantAccessTokenInternal,
    /// `POST /open-apis/auth/v3/app_access_token` (marketplace app token).
    AppAccessToken,
    /// `POST /open-apis/auth/v3/tenant_access_token` (marketplace tenant token).
    TenantAccessToken,
    /// `POST /open-apis/auth/v3/app_ticket/resend`.
    AppTicketResend,
}

impl Endpoint {
    /// Every endpoint, in counter order.
    pub(crate) const ALL: [Endpoint; 5] = [
        Endpoint::AppAccessTokenInternal,
        Endpoint::TenantAccessTokenInternal,
        Endpoint::AppAccessToken,
        Endpoint::TenantAccessToken,
        Endpoint::AppTicketResend,
    ];

    /// The endpoint's path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::AppAccessTokenInternal => "/open-apis/auth/v3/app_access_token/internal",
            Endpoint::TenantAccessTokenInternal => "/open-apis/auth/v3/tenant_access_token/internal",
            Endpoint::AppAccessToken => "/open-apis/auth/v3/app_access_token",
            Endpoint::TenantAccessToken => "/open-apis/auth/v3/tenant_access_token",
            Endpoint::AppTicketResend => "/open-apis/auth/v3/app_ticket/resend",
        }
    }

    /// Index of the endpoint's counter.
    pub(crate) fn index(self) -> usize {
        match self {
            Endpoint::AppAccessTokenInternal => 0,
            Endpoint::TenantAccessTokenInternal => 1,
            Endpoint::AppAccessToken => 2,
            Endpoint::TenantAccessToken => 3,
            Endpoint::AppTicketResend => 4,
        }
    }

    /// The endpoint whose path is exactly `path`.
    pub(crate) fn from_path(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }
}

/// One request as the fake platform received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The request method.
    pub method: http::Method,
    /// The raw path, still percent-encoded, exactly as received.
    pub path: String,
    /// The raw query string (without `?`), if the request had one.
    pub query: Option<String>,
    /// The request headers.
    pub headers: http::HeaderMap,
    /// The request body, truncated to its first 1 MiB.
    pub body: Bytes,
    /// The tenant of the bearer token, when the request carried a valid tenant access token.
    pub tenant_key: Option<String>,
}

/// An accepted upload (`POST /open-apis/im/v1/images` or `/open-apis/im/v1/files`).
#[derive(Clone, Debug)]
pub struct Upload {
    /// The raw request path.
    pub path: String,
    /// The plain form fields, `(name, value)`, in order.
    pub fields: Vec<(String, String)>,
    /// The file parts, in order.
    pub files: Vec<UploadedFile>,
}

/// A file part of a multipart upload.
#[derive(Clone, Debug)]
pub struct UploadedFile {
    /// The form field name of the part (`image` or `file`).
    pub field: String,
    /// The `filename` of the part's `Content-Disposition`, if any.
    pub file_name: Option<String>,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The part's bytes.
    pub data: Bytes,
}
