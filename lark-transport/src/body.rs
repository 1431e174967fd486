//! [`Body`]: the request and response body type of the lark-rs stack.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use lark_types::BoxError;

use crate::pool::Lease;

/// An HTTP body: empty, fully in memory (replayable, so retryable), or streamed (sent once).
pub struct Body {
    kind: Kind,
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Stream(UnsyncBoxBody<Bytes, BoxError>),
    /// A reply body straight from hyper, kept unboxed on the hot path.
    Incoming(Incoming),
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Body { kind: Kind::Empty }
    }

    /// A body of bytes held in memory.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Body::empty()
        } else {
            Body { kind: Kind::Full(Some(bytes)) }
        }
    }

    /// Wraps any `http_body::Body` (e.g. hyper's `Incoming`). The result cannot be replayed.
    /// Wrapping a `Body` returns it unchanged (no extra boxing).
    pub fn wrap<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        if let Some(own) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Body>>() {
            return own.take().unwrap_or_default();
        }
        match slot {
            Some(body) => Body { kind: Kind::Stream(body.map_err(Into::into).boxed_unsync()) },
            None => Body::empty(),
        }
    }

    /// A reply body from hyper (not replayable).
    pub fn incoming(body: hyper::body::Incoming) -> Self {
        Body { kind: Kind::Incoming(Incoming { body, lease: None }) }
    }

    /// A reply body from the pool's connection `lease`, which goes back to the pool once the
    /// body has been read to its end.
    pub(crate) fn leased(body: hyper::body::Incoming, lease: Lease) -> Self {
        let mut incoming = Incoming { body, lease: Some(lease) };
        incoming.release_at_end();
        Body { kind: Kind::Incoming(incoming) }
    }

    /// A body streamed from chunks. The result cannot be replayed.
    pub fn from_stream<S, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        use futures_util::TryStreamExt;
        let frames = stream.map_ok(Frame::data).map_err(Into::into);
        Body { kind: Kind::Stream(http_body_util::StreamBody::new(frames).boxed_unsync()) }
    }

    /// A copy of the body when it is in memory; `None` for a stream, which can be sent only once.
    pub fn try_clone(&self) -> Option<Body> {
        match &self.kind {
            Kind::Empty => Some(Body::empty()),
            Kind::Full(b) => Some(Body { kind: Kind::Full(b.clone()) }),
            Kind::Stream(_) | Kind::Incoming(_) => None,
        }
    }

    /// The bytes of an in-memory body, without consuming it.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Empty => Some(&[]),
            Kind::Full(b) => Some(b.as_deref().unwrap_or(&[])),
            Kind::Stream(_) | Kind::Incoming(_) => None,
        }
    }

    /// The bytes of an in-memory body, taken without waiting; a stream comes back as `Err`.
    #[allow(
        clippy::result_large_err,
        reason = "a reply body carries its pooled connection inline; boxing it would cost an allocation per call"
    )]
    pub fn into_bytes(self) -> Result<Bytes, Body> {
        match self.kind {
            Kind::Empty => Ok(Bytes::new()),
            Kind::Full(b) => Ok(b.unwrap_or_default()),
            Kind::Stream(_) | Kind::Incoming(_) => Err(self),
        }
    }

    /// Reads the whole body into memory, failing with [`BodyTooLarge`] once it exceeds `limit` bytes.
    pub async fn collect_limited(self, limit: usize) -> Result<Bytes, BoxError> {
        match self.kind {
            Kind::Empty => Ok(Bytes::new()),
            Kind::Full(b) => Ok(b.unwrap_or_default()),
            Kind::Stream(s) => collect_frames(s, limit).await,
            Kind::Incoming(s) => collect_frames(s, limit).await,
        }
    }

    /// The body as a stream of chunks, for downloads.
    pub fn into_data_stream(self) -> impl Stream<Item = Result<Bytes, BoxError>> + Send {
        http_body_util::BodyDataStream::new(self)
    }
}

/// hyper's reply body, with the lease of the pooled connection it arrives on.
struct Incoming {
    body: hyper::body::Incoming,
    lease: Option<Lease>,
}

impl Incoming {
    /// Returns the connection to the pool once the body has ended.
    fn release_at_end(&mut self) {
        if self.body.is_end_stream() {
            self.release();
        }
    }

    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }
}

impl http_body::Body for Incoming {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) => this.release_at_end(),
            // A broken body: the connection is not reused.
            Poll::Ready(Some(Err(_))) => this.lease = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Reads frames into one buffer, failing with [`BodyTooLarge`] past `limit` bytes. A body of one
/// chunk is returned without copying.
async fn collect_frames<B>(mut body: B, limit: usize) -> Result<Bytes, BoxError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut collected = Collected::new(limit);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        if let Ok(data) = frame.into_data() {
            collected.push(data)?;
        }
    }
    Ok(collected.finish())
}

/// Data frames gathered into one buffer, at most `limit` bytes. A body of one chunk is kept
/// as it came, without copying.
pub(crate) struct Collected {
    first: Option<Bytes>,
    buf: bytes::BytesMut,
    limit: usize,
}

impl Collected {
    pub(crate) fn new(limit: usize) -> Self {
        Collected { first: None, buf: bytes::BytesMut::new(), limit }
    }

    /// Adds a chunk; fails once the total exceeds the limit.
    pub(crate) fn push(&mut self, data: Bytes) -> Result<(), BodyTooLarge> {
        let total = self.buf.len() + self.first.as_ref().map_or(0, Bytes::len) + data.len();
        if total > self.limit {
            return Err(BodyTooLarge { limit: self.limit });
        }
        match self.first.take() {
            None if self.buf.is_empty() => self.first = Some(data),
            None => self.buf.extend_from_slice(&data),
            Some(f) => {
                self.buf.extend_from_slice(&f);
                self.buf.extend_from_slice(&data);
            }
        }
        Ok(())
    }

    /// The bytes gathered.
    pub(crate) fn finish(self) -> Bytes {
        self.first.unwrap_or_else(|| self.buf.freeze())
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Empty => f.write_str("Body::Empty"),
            Kind::Full(b) => write!(f, "Body::Full({} bytes)", b.as_ref().map_or(0, Bytes::len)),
            Kind::Stream(_) | Kind::Incoming(_) => f.write_str("Body::Stream"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::full(b)
    }
}
impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Body::full(b)
    }
}
impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::full(s)
    }
}
impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body::full(Bytes::from_static(s.as_bytes()))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(s) => Pin::new(s).poll_frame(cx),
            Kind::Incoming(s) => Pin::new(s).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Stream(s) => s.is_end_stream(),
            Kind::Incoming(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(s) => s.size_hint(),
            Kind::Incoming(s) => s.size_hint(),
        }
    }
}

/// A body was larger than the limit allowed for reading it into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTooLarge {
    /// The limit, in bytes.
    pub limit: usize,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "body larger than {} bytes", self.limit)
    }
}

impl std::error::Error for BodyTooLarge {}

/// A request body type that can be copied for a retry when it is replayable.
///
/// Implemented for [`Body`] and the common in-memory body types, so the auth layer can retry once
/// after a token refresh on any tower HTTP client.
pub trait ReplayBody: Sized {
    /// A copy of the body, or `None` when it can be sent only once.
    fn try_replay(&self) -> Option<Self>;
}

impl ReplayBody for Body {
    fn try_replay(&self) -> Option<Self> {
        self.try_clone()
    }
}

impl ReplayBody for http_body_util::Full<Bytes> {
    fn try_replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl ReplayBody for http_body_util::Empty<Bytes> {
    fn try_replay(&self) -> Option<Self> {
        Some(*self)
    }
}

impl ReplayBody for String {
    fn try_replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl ReplayBody for Bytes {
    fn try_replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

/// Copies a request (method, URI, version, headers, extensions) when its body is replayable.
pub fn try_clone_request<B: ReplayBody>(req: &http::Request<B>) -> Option<http::Request<B>> {
    let body = req.body().try_replay()?;
    let mut out = http::Request::new(body);
    *out.method_mut() = req.method().clone();
    *out.uri_mut() = req.uri().clone();
    *out.version_mut() = req.version();
    *out.headers_mut() = req.headers().clone();
    *out.extensions_mut() = req.extensions().clone();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_bodies_replay_streams_do_not() {
        let b = Body::full("abc");
        let c = b.try_clone().unwrap();
        assert_eq!(c.collect_limited(10).await.unwrap(), "abc");
        let s = Body::from_stream(futures_util::stream::iter(vec![Ok::<_, BoxError>(Bytes::from("x"))]));
        assert!(s.try_clone().is_none());
        assert_eq!(s.collect_limited(10).await.unwrap(), "x");
    }

    #[tokio::test]
    async fn collect_limited_enforces_limit() {
        let s = Body::from_stream(futures_util::stream::iter(vec![Ok::<_, BoxError>(Bytes::from(vec![
            0u8;
            100
        ]))]));
        assert!(s.collect_limited(10).await.is_err());
    }
}
