//! Pagination: list APIs take `page_token` (and `page_size`) and reply `has_more` plus the next
//! token. [`Call::pages`] streams the replies page by page, [`Call::items`] every item; both stop
//! when `has_more` is `false`, yield an error once and stop, and honour an optional limit.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use lark_types::LarkError;

use crate::{Call, Client, RequestOptions, TypedRequest};

/// A request of a paginated API.
pub trait Paginated: TypedRequest + Clone {
    /// Sets the `page_token` of the next request.
    fn set_page_token(&mut self, token: String);

    /// The token of the page after `page`, or `None` when `page` is the last.
    fn next_page_token(page: &Self::Response) -> Option<String>;
}

/// A paginated request whose pages hold a list of items.
pub trait PaginatedItems: Paginated {
    /// One item.
    type Item: Send + 'static;

    /// The items of a page.
    fn items(page: Self::Response) -> Vec<Self::Item>;
}

/// The next page token from a reply's `has_more` and token fields: none when `has_more` is
/// `false`, or when the token is missing or empty (when the reply has no `has_more`, the token
/// alone decides).
pub fn next_page_token(has_more: Option<bool>, token: Option<&str>) -> Option<String> {
    match (has_more, token) {
        (Some(false), _) => None,
        (_, Some(t)) if !t.is_empty() => Some(t.to_owned()),
        _ => None,
    }
}

struct PageState<R> {
    client: Client,
    options: RequestOptions,
    next: Option<R>,
    last_token: Option<String>,
    pages_left: Option<usize>,
}

fn page_stream<R>(
    call: Call<R>,
    max_pages: Option<usize>,
) -> BoxStream<'static, Result<R::Response, LarkError>>
where
    R: Paginated,
{
    let (client, request, options) = call.into_parts();
    let state = PageState { client, options, next: Some(request), last_token: None, pages_left: max_pages };
    stream::unfold(state, |mut st| async move {
        if st.pages_left == Some(0) {
            return None;
        }
        let request = st.next.take()?;
        let again = request.clone();
        let page = Call::new(st.client.clone(), request).options(st.options.clone()).send().await;
        st.pages_left = st.pages_left.map(|n| n - 1);
        match page {
            Ok(page) => {
                match R::next_page_token(&page) {
                    // A token equal to the one just sent would loop forever: stop.
                    Some(token) if st.last_token.as_deref() != Some(token.as_str()) => {
                        let mut again = again;
                        again.set_page_token(token.clone());
                        st.last_token = Some(token);
                        st.next = Some(again);
                    }
                    _ => st.next = None,
                }
                Some((Ok(page), st))
            }
            Err(e) => Some((Err(e), st)),
        }
    })
    .boxed()
}

/// The pages of a paginated call, as a [`Stream`]; see [`Call::pages`].
#[must_use = "streams do nothing unless polled"]
pub struct Pages<R: Paginated> {
    call: Option<(Call<R>, Option<usize>)>,
    inner: Option<BoxStream<'static, Result<R::Response, LarkError>>>,
}

impl<R: Paginated> fmt::Debug for Pages<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages").field("api", &R::META.id).field("started", &self.inner.is_some()).finish()
    }
}

impl<R: Paginated> Pages<R> {
    /// Fetches at most `pages` pages.
    pub fn limit(mut self, pages: usize) -> Self {
        if let Some((_, limit)) = &mut self.call {
            *limit = Some(pages);
        }
        self
    }
}

// `Pages` never pins what it holds: the request is moved out before use.
impl<R: Paginated> Unpin for Pages<R> {}

impl<R: Paginated> Stream for Pages<R> {
    type Item = Result<R::Response, LarkError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some((call, limit)) = this.call.take() {
            this.inner = Some(page_stream(call, limit));
        }
        match &mut this.inner {
            Some(inner) => inner.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

/// The items of a paginated call across its pages, as a [`Stream`]; see [`Call::items`].
#[must_use = "streams do nothing unless polled"]
pub struct Items<R: PaginatedItems> {
    call: Option<(Call<R>, Option<usize>)>,
    inner: Option<BoxStream<'static, Result<R::Item, LarkError>>>,
}

impl<R: PaginatedItems> fmt::Debug for Items<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Items").field("api", &R::META.id).field("started", &self.inner.is_some()).finish()
    }
}

impl<R: PaginatedItems> Items<R> {
    /// Yields at most `items` items (and fetches no page past the one holding the last).
    pub fn limit(mut self, items: usize) -> Self {
        if let Some((_, limit)) = &mut self.call {
            *limit = Some(items);
        }
        self
    }
}

// `Items` never pins what it holds: the request is moved out before use.
impl<R: PaginatedItems> Unpin for Items<R> {}

impl<R: PaginatedItems> Stream for Items<R> {
    type Item = Result<R::Item, LarkError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some((call, limit)) = this.call.take() {
            let items = page_stream(call, None).flat_map(|page| match page {
                Ok(page) => stream::iter(R::items(page).into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => stream::iter(vec![Err(e)]),
            });
            this.inner = Some(match limit {
                Some(n) => items.take(n).boxed(),
                None => items.boxed(),
            });
        }
        match &mut this.inner {
            Some(inner) => inner.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

impl<R: Paginated> Call<R> {
    /// The replies page by page: the first page is this call's request; each next one sets the
    /// previous reply's page token. Ends after the page with `has_more == false` (or without a
    /// next token); an error is yielded once and ends the stream.
    pub fn pages(self) -> Pages<R> {
        Pages { call: Some((self, None)), inner: None }
    }
}

impl<R: PaginatedItems> Call<R> {
    /// Every item across the pages (see [`pages`](Self::pages) for when it ends).
    ///
    /// ```no_run
    /// # #[cfg(feature = "im")]
    /// # async fn demo(client: lark_services::Client) -> Result<(), lark_services::LarkError> {
    /// use futures_util::TryStreamExt;
    /// use lark_services::im::v1::ListChatRequest;
    ///
    /// // The first 120 chats the bot is in, 50 per page.
    /// let chats: Vec<_> =
    ///     client.im().v1().chat().list(ListChatRequest::new().page_size(50)).items().limit(120).try_collect().await?;
    /// # let _ = chats; Ok(()) }
    /// ```
    pub fn items(self) -> Items<R> {
        Items { call: Some((self, None)), inner: None }
    }
}
