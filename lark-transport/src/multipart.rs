//! `multipart/form-data` bodies for upload APIs: plain fields and file parts from bytes, a file
//! path or any async reader. A form of in-memory parts is replayable (so retryable); a form with
//! a streamed part is sent once.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use http::HeaderValue;
use lark_types::BoxError;
use tokio::io::AsyncRead;

use crate::Body;

enum PartData {
    Bytes(Bytes),
    Stream(BoxStream<'static, Result<Bytes, BoxError>>),
}

struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: PartData,
}

/// A `multipart/form-data` form.
pub struct Multipart {
    boundary: String,
    parts: Vec<Part>,
}

impl std::fmt::Debug for Multipart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.parts.iter().map(|p| p.name.as_str()).collect();
        f.debug_struct("Multipart").field("parts", &names).finish()
    }
}

impl Default for Multipart {
    fn default() -> Self {
        Self::new()
    }
}

/// Quotes a parameter value for a Content-Disposition header: CR and LF dropped, `"` and `\`
/// escaped (the platform's server, like browsers, reads UTF-8 names as they are).
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("%22"),
            '\\' => out.push_str("\\\\"),
            '\r' | '\n' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Multipart {
    /// An empty form with a random boundary.
    pub fn new() -> Self {
        Multipart {
            boundary: format!("lark-rs-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            parts: Vec::new(),
        }
    }

    /// Adds a plain text field.
    pub fn text(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parts.push(Part {
            name: name.into(),
            file_name: None,
            content_type: None,
            data: PartData::Bytes(Bytes::from(value.into())),
        });
        self
    }

    /// Adds a file part from bytes in memory (`application/octet-stream`).
    pub fn file(self, name: impl Into<String>, file_name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        self.file_with_type(name, file_name, "application/octet-stream", data)
    }

    /// Adds a file part from bytes in memory with a content type.
    pub fn file_with_type(
        mut self,
        name: impl Into<String>,
        file_name: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        self.parts.push(Part {
            name: name.into(),
            file_name: Some(file_name.into()),
            content_type: Some(content_type.into()),
            data: PartData::Bytes(data.into()),
        });
        self
    }

    /// Adds a file part streamed from any async reader; the form is then sent once, never retried.
    pub fn file_reader<R>(mut self, name: impl Into<String>, file_name: impl Into<String>, reader: R) -> Self
    where
        R: AsyncRead + Send + 'static,
    {
        let stream = tokio_util::io::ReaderStream::new(reader).map_err(BoxError::from);
        self.parts.push(Part {
            name: name.into(),
            file_name: Some(file_name.into()),
            content_type: Some("application/octet-stream".into()),
            data: PartData::Stream(stream.boxed()),
        });
        self
    }

    /// Adds a file part streamed from a file on disk; its file name is the path's last component.
    pub async fn file_path(self, name: impl Into<String>, path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref();
        let file = tokio::fs::File::open(path).await?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(self.file_reader(name, file_name, file))
    }

    /// Whether every part is in memory (the body is then replayable).
    pub fn is_replayable(&self) -> bool {
        self.parts.iter().all(|p| matches!(p.data, PartData::Bytes(_)))
    }

    /// The `Content-Type` header value (with the boundary) and the body.
    pub fn into_body(self) -> (HeaderValue, Body) {
        let content_type = HeaderValue::from_str(&format!("multipart/form-data; boundary={}", self.boundary))
            .expect("boundary is ASCII");
        let boundary = self.boundary;
        if self.parts.iter().all(|p| matches!(p.data, PartData::Bytes(_))) {
            let mut buf = BytesMut::new();
            for part in self.parts {
                buf.extend_from_slice(&part_head(&boundary, &part));
                if let PartData::Bytes(b) = part.data {
                    buf.extend_from_slice(&b);
                }
                buf.extend_from_slice(b"\r\n");
            }
            buf.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            return (content_type, Body::full(buf.freeze()));
        }
        let mut pieces: Vec<BoxStream<'static, Result<Bytes, BoxError>>> = Vec::new();
        for part in self.parts {
            pieces.push(stream::once(futures_util::future::ready(Ok(part_head(&boundary, &part)))).boxed());
            match part.data {
                PartData::Bytes(b) => pieces.push(stream::once(futures_util::future::ready(Ok(b))).boxed()),
                PartData::Stream(s) => pieces.push(s),
            }
            pieces.push(stream::once(futures_util::future::ready(Ok(Bytes::from_static(b"\r\n")))).boxed());
        }
        let tail = Bytes::from(format!("--{boundary}--\r\n"));
        pieces.push(stream::once(futures_util::future::ready(Ok(tail))).boxed());
        (content_type, Body::from_stream(stream::iter(pieces).flatten()))
    }
}

fn part_head(boundary: &str, part: &Part) -> Bytes {
    let mut head = format!("--{boundary}\r\nContent-Disposition: form-data; name={}", quote(&part.name));
    if let Some(f) = &part.file_name {
        head.push_str("; filename=");
        head.push_str(&quote(f));
    }
    head.push_str("\r\n");
    if let Some(ct) = &part.content_type {
        head.push_str("Content-Type: ");
        head.push_str(&ct.replace(['\r', '\n'], ""));
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    Bytes::from(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_form_layout() {
        let mut form =
            Multipart::new().text("image_type", "message").file("image", "a\"b.png", vec![1u8, 2, 3]);
        form.boundary = "B".into();
        assert!(form.is_replayable());
        let (ct, body) = form.into_body();
        assert_eq!(ct, "multipart/form-data; boundary=B");
        let bytes = body.collect_limited(1 << 20).await.unwrap();
        let expected = b"--B\r\nContent-Disposition: form-data; name=\"image_type\"\r\n\r\nmessage\r\n--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a%22b.png\"\r\nContent-Type: application/octet-stream\r\n\r\n\x01\x02\x03\r\n--B--\r\n";
        assert_eq!(&bytes[..], &expected[..]);
    }

    #[tokio::test]
    async fn streamed_form_matches_in_memory_form() {
        let data = vec![7u8; 200_000];
        let mut a = Multipart::new().text("k", "v").file("file", "f.bin", data.clone());
        a.boundary = "X".into();
        let mut b = Multipart::new().text("k", "v").file_reader("file", "f.bin", std::io::Cursor::new(data));
        b.boundary = "X".into();
        assert!(!b.is_replayable());
        let (_, a) = a.into_body();
        let (_, b) = b.into_body();
        assert!(b.try_clone().is_none());
        assert_eq!(a.collect_limited(1 << 20).await.unwrap(), b.collect_limited(1 << 20).await.unwrap());
    }
}
