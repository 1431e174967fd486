//! Typed calls: what a generated request knows about its API ([`ApiMeta`], [`TypedRequest`]),
//! how it becomes a raw request ([`Outgoing`], [`UploadFile`]) and the future-builder that
//! sends it ([`Call`]).

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Method;
use lark_transport::{ApiRequest, Download, Multipart};
use lark_types::{
    AccessTokenType, AccessTokenTypes, ConfigError, LarkError, SecretString, TransportError,
    TransportErrorKind,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::AsyncRead;

use crate::{Client, RequestOptions};

/// What the API list says about one API: its id, HTTP method, path template, accepted tokens
/// and documentation page.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiMeta {
    /// `project.version.resource.method`, e.g. `im.v1.message.create`.
    pub id: &'static str,
    /// The HTTP method.
    pub method: Method,
    /// The path template, `/open-apis/...` with `:name` segments.
    pub path: &'static str,
    /// The token types the API accepts.
    pub access_tokens: &'static [AccessTokenType],
    /// The official documentation page.
    pub doc_url: &'static str,
}

impl ApiMeta {
    /// Describes an API (for requests of APIs the generated code lacks).
    pub const fn new(
        id: &'static str,
        method: Method,
        path: &'static str,
        access_tokens: &'static [AccessTokenType],
        doc_url: &'static str,
    ) -> Self {
        ApiMeta { id, method, path, access_tokens, doc_url }
    }

    /// The accepted token types as a set.
    pub fn token_types(&self) -> AccessTokenTypes {
        AccessTokenTypes::from_types(self.access_tokens)
    }
}

/// A typed request of one API: the generated `*Request` types implement it.
///
/// Implement it yourself for an API newer than the generated code:
///
/// ```
/// use lark_services::{ApiMeta, JsonReply, Outgoing, TypedRequest};
/// use lark_types::AccessTokenType;
///
/// struct GetWidget {
///     widget_id: String,
/// }
///
/// impl TypedRequest for GetWidget {
///     type Response = serde_json::Value;
///     type Reply = JsonReply;
///     const META: ApiMeta = ApiMeta::new(
///         "widget.v1.widget.get",
///         http::Method::GET,
///         "/open-apis/widget/v1/widgets/:widget_id",
///         &[AccessTokenType::Tenant],
///         "https://open.feishu.cn/document/",
///     );
///     fn into_outgoing(self) -> Outgoing {
///         Outgoing::new(Self::META).path("widget_id", self.widget_id)
///     }
/// }
/// // client.call(GetWidget { widget_id: "w1".into() }).await
/// ```
pub trait TypedRequest: Sized + Send + 'static {
    /// What the call returns: the reply's `data` (or a [`Download`]).
    type Response: Send + 'static;
    /// How the reply is read: [`JsonReply`] or [`FileReply`].
    type Reply: ReplyKind<Self::Response>;
    /// The API.
    const META: ApiMeta;

    /// The raw request: path values, query, body.
    fn into_outgoing(self) -> Outgoing;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::JsonReply {}
    impl Sealed for super::FileReply {}
}

/// How a reply becomes the response type: [`JsonReply`] or [`FileReply`].
pub trait ReplyKind<T>: sealed::Sealed {
    /// Sends `req` and reads the reply.
    fn receive(
        client: Client,
        req: ApiRequest,
        options: RequestOptions,
    ) -> impl Future<Output = Result<T, LarkError>> + Send;
}

/// The reply is the JSON envelope; its `data` is decoded (`Err` when `code != 0`).
#[derive(Debug)]
pub enum JsonReply {}

/// The reply is a file, streamed as a [`Download`].
#[derive(Debug)]
pub enum FileReply {}

impl<T: DeserializeOwned + Send + 'static> ReplyKind<T> for JsonReply {
    async fn receive(client: Client, req: ApiRequest, options: RequestOptions) -> Result<T, LarkError> {
        client.execute_json(req, options).await
    }
}

impl ReplyKind<Download> for FileReply {
    async fn receive(
        client: Client,
        req: ApiRequest,
        options: RequestOptions,
    ) -> Result<Download, LarkError> {
        client.execute_download(req, options).await
    }
}

enum FormPart {
    Text(Cow<'static, str>, String),
    File(&'static str, UploadFile),
}

/// A request on its way out: the raw [`ApiRequest`] plus, for uploads, the form parts (files
/// are opened when the call is sent).
pub struct Outgoing {
    api: &'static str,
    req: ApiRequest,
    form: Option<Vec<FormPart>>,
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Option<Vec<&str>> = self.form.as_ref().map(|parts| {
            parts
                .iter()
                .map(|p| match p {
                    FormPart::Text(n, _) => n.as_ref(),
                    FormPart::File(n, _) => *n,
                })
                .collect()
        });
        f.debug_struct("Outgoing")
            .field("api", &self.api)
            .field("req", &self.req)
            .field("form_parts", &parts)
            .finish()
    }
}

impl Outgoing {
    /// A request for the API `meta`, accepting its token types.
    pub fn new(meta: ApiMeta) -> Self {
        let accepted = meta.token_types();
        let mut req = ApiRequest::new(meta.method, meta.path);
        req.auth_mut().accepted = accepted;
        Outgoing { api: meta.id, req, form: None }
    }

    /// Fills the `:name` segment of the path (percent-encoded when sent).
    pub fn path(mut self, name: &'static str, value: String) -> Self {
        self.req = self.req.path_param(name, value);
        self
    }

    /// Adds query `key` when `value` is set.
    pub fn query<V: ToString>(mut self, key: &'static str, value: Option<V>) -> Self {
        if let Some(v) = value {
            self.req = self.req.query(key, v);
        }
        self
    }

    /// Adds query `key` when `secret` is set: the plain secret goes on the wire (a
    /// [`SecretString`]'s `Display` is redacted, so [`query`](Self::query) would send that).
    pub fn query_secret(mut self, key: &'static str, secret: Option<SecretString>) -> Self {
        if let Some(s) = secret {
            self.req = self.req.query(key, s.expose_secret());
        }
        self
    }

    /// Adds query `key` once per value (`ids=a&ids=b`).
    pub fn query_all<V: ToString>(mut self, key: &'static str, values: Option<Vec<V>>) -> Self {
        for v in values.into_iter().flatten() {
            self.req = self.req.query(key, v);
        }
        self
    }

    /// Sets the JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.req = self.req.json(body);
        self
    }

    /// Makes the body `multipart/form-data`. Sending it fails unless a file part is added.
    pub fn multipart(mut self) -> Self {
        self.form.get_or_insert_with(Vec::new);
        self
    }

    /// Adds a plain form field when `value` is set.
    pub fn text<V: ToString>(mut self, name: &'static str, value: Option<V>) -> Self {
        if let Some(v) = value {
            self.form.get_or_insert_with(Vec::new).push(FormPart::Text(Cow::Borrowed(name), v.to_string()));
        }
        self
    }

    /// Adds plain form fields of any names (for uploads whose fields the API list does not give).
    pub fn form_fields(mut self, fields: Vec<(String, String)>) -> Self {
        let form = self.form.get_or_insert_with(Vec::new);
        form.extend(fields.into_iter().map(|(name, value)| FormPart::Text(Cow::Owned(name), value)));
        self
    }

    /// Adds a file part when `file` is set.
    pub fn file(mut self, name: &'static str, file: Option<UploadFile>) -> Self {
        if let Some(f) = file {
            self.form.get_or_insert_with(Vec::new).push(FormPart::File(name, f));
        }
        self
    }

    /// The raw request so far (without the form parts).
    pub fn request(&self) -> &ApiRequest {
        &self.req
    }

    /// The finished raw request: files given by path are opened now. An upload without a file
    /// part is an error (nothing is sent).
    pub async fn into_request(self) -> Result<ApiRequest, LarkError> {
        let Some(parts) = self.form else { return Ok(self.req) };
        if !parts.iter().any(|p| matches!(p, FormPart::File(..))) {
            return Err(LarkError::Config(ConfigError::new(format!(
                "`{}` uploads a file, but the request has no file part set",
                self.api
            ))));
        }
        let mut form = Multipart::new();
        for part in parts {
            form = match part {
                FormPart::Text(name, value) => form.text(name, value),
                FormPart::File(name, file) => file.add_to(form, name).await?,
            };
        }
        Ok(self.req.multipart(form))
    }
}

enum Source {
    Bytes(Bytes),
    Path(PathBuf),
    Reader(Pin<Box<dyn AsyncRead + Send>>),
}

/// A file to upload: bytes in memory, a file on disk, or any async reader.
///
/// ```
/// use lark_services::UploadFile;
///
/// let png = UploadFile::bytes("logo.png", vec![0x89, b'P', b'N', b'G']).content_type("image/png");
/// let report = UploadFile::path("/tmp/report.pdf"); // opened when the call is sent
/// let piped = UploadFile::reader("data.bin", tokio::io::empty());
/// # let _ = (png, report, piped);
/// ```
///
/// A form whose files are all in memory can be retried; one with a path or reader is sent once.
pub struct UploadFile {
    file_name: Option<String>,
    content_type: Option<String>,
    source: Source,
}

impl fmt::Debug for UploadFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Bytes(b) => format!("{} bytes", b.len()),
            Source::Path(p) => format!("path {}", p.display()),
            Source::Reader(_) => "reader".to_owned(),
        };
        f.debug_struct("UploadFile")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("source", &source)
            .finish()
    }
}

impl UploadFile {
    /// A file from bytes in memory.
    pub fn bytes(file_name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        UploadFile {
            file_name: Some(file_name.into()),
            content_type: None,
            source: Source::Bytes(data.into()),
        }
    }

    /// A file on disk, opened when the call is sent; its name is the path's last component
    /// unless [`file_name`](Self::file_name) sets one.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        UploadFile { file_name: None, content_type: None, source: Source::Path(path.into()) }
    }

    /// A file streamed from an async reader.
    pub fn reader(file_name: impl Into<String>, reader: impl AsyncRead + Send + 'static) -> Self {
        UploadFile {
            file_name: Some(file_name.into()),
            content_type: None,
            source: Source::Reader(Box::pin(reader)),
        }
    }

    /// Sets the file name sent with the part.
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = Some(name.into());
        self
    }

    /// Sets the part's content type (default `application/octet-stream`; honoured for files
    /// in memory).
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    async fn add_to(self, form: Multipart, name: &'static str) -> Result<Multipart, LarkError> {
        match self.source {
            Source::Bytes(data) => {
                let file_name = self.file_name.unwrap_or_default();
                Ok(match self.content_type {
                    Some(ct) => form.file_with_type(name, file_name, ct, data),
                    None => form.file(name, file_name, data),
                })
            }
            Source::Reader(reader) => Ok(form.file_reader(name, self.file_name.unwrap_or_default(), reader)),
            Source::Path(path) => {
                let file = tokio::fs::File::open(&path).await.map_err(|e| {
                    LarkError::Transport(TransportError::new(
                        TransportErrorKind::Io,
                        format!("cannot open upload file {}: {e}", path.display()),
                    ))
                })?;
                let file_name = self.file_name.unwrap_or_else(|| {
                    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                });
                Ok(form.file_reader(name, file_name, file))
            }
        }
    }
}

/// A typed call being prepared: per-call options, then `.await` (or [`send`](Self::send)).
///
/// ```no_run
/// # #[cfg(feature = "im")]
/// # async fn demo(client: lark_services::Client) -> Result<(), lark_services::LarkError> {
/// use lark_services::im::v1::CreateMessageRequest;
///
/// let sent = client
///     .im()
///     .v1()
///     .message()
///     .create(
///         CreateMessageRequest::new()
///             .receive_id_type("open_id")
///             .receive_id("ou_1")
///             .msg_type("text")
///             .content(r#"{"text":"hi"}"#),
///     )
///     .tenant_key("tenant-1")
///     .await?;
/// println!("{:?}", sent.message_id);
/// # Ok(()) }
/// ```
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<R> {
    client: Client,
    request: R,
    options: RequestOptions,
}

impl<R: fmt::Debug> fmt::Debug for Call<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call").field("request", &self.request).field("options", &self.options).finish()
    }
}

impl<R: TypedRequest> Call<R> {
    /// A call of `request` through `client`.
    pub fn new(client: Client, request: R) -> Self {
        Call { client, request, options: RequestOptions::default() }
    }

    per_call_option_setters!();

    /// Replaces all per-call options.
    pub fn options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// The request.
    pub fn request(&self) -> &R {
        &self.request
    }

    /// The request, to change it.
    pub fn request_mut(&mut self) -> &mut R {
        &mut self.request
    }

    /// The client, request and options.
    pub fn into_parts(self) -> (Client, R, RequestOptions) {
        (self.client, self.request, self.options)
    }

    /// Sends the call (what `.await` does).
    pub fn send(self) -> BoxFuture<'static, Result<R::Response, LarkError>> {
        let Call { client, request, options } = self;
        Box::pin(async move {
            let req = request.into_outgoing().into_request().await?;
            R::Reply::receive(client, req, options).await
        })
    }
}

impl<R: TypedRequest> IntoFuture for Call<R> {
    type Output = Result<R::Response, LarkError>;
    type IntoFuture = BoxFuture<'static, Result<R::Response, LarkError>>;

    fn into_future(self) -> Self::IntoFuture {
        self.send()
    }
}

impl Client {
    /// A typed call of any [`TypedRequest`] (the generated accessors, such as
    /// `client.im().v1().message().create(..)`, do the same).
    pub fn call<R: TypedRequest>(&self, request: R) -> Call<R> {
        Call::new(self.clone(), request)
    }
}
