//! Pagination: list APIs take a page token (`page_token`, or a cursor such as `cursor_id`) and
//! reply `has_more` plus the next token. [`Call::pages`] streams the replies page by page,
//! [`Call::items`] every item; both stop when `has_more` is `false`, yield an error once and stop,
//! and honour an optional limit. A reply that breaks the rules (`has_more` without a next token,
//! a token seen before) ends the stream with a [`LarkError::Decode`] rather than quietly: the
//! list would otherwise look complete, or loop forever.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use lark_types::{DecodeError, LarkError};

use crate::{Call, Client, RequestOptions, TypedRequest};

/// What a page says about the page after it; see [`next_page`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextPage {
    /// This page is the last.
    Last,
    /// The token that fetches the next page.
    Token(String),
    /// `has_more` is `true` but the reply has no (or an empty) next token: the rest of the list
    /// cannot be fetched.
    MissingToken,
}

/// A request of a paginated API.
pub trait Paginated: TypedRequest + Clone {
    /// Sets the page token (or cursor) of the next request.
    fn set_page_token(&mut self, token: String);

    /// What `page` says about the page after it.
    fn next_page(page: &Self::Response) -> NextPage;
}

/// A paginated request whose pages hold a list of items.
pub trait PaginatedItems: Paginated {
    /// One item.
    type Item: Send + 'static;

    /// The items of a page.
    fn items(page: Self::Response) -> Vec<Self::Item>;
}

/// The next page from a reply's `has_more` and next-token fields (`None` when the reply lacks
/// the field): [`NextPage::Last`] when `has_more` is `false`; the token when there is a
/// non-empty one; [`NextPage::MissingToken`] when `has_more` is `true` without one; and when the
/// reply has no `has_more`, the token alone decides.
pub fn next_page(has_more: Option<bool>, token: Option<&str>) -> NextPage {
    match (has_more, token.filter(|t| !t.is_empty())) {
        (Some(false), _) => NextPage::Last,
        (_, Some(t)) => NextPage::Token(t.to_owned()),
        (Some(true), None) => NextPage::MissingToken,
        (None, None) => NextPage::Last,
    }
}

/// How many tokens a stream remembers to notice a loop (`A → B → A`); past it, the oldest go.
const SEEN_TOKENS: usize = 4096;

/// The page tokens a stream has sent, the most recent [`SEEN_TOKENS`] of them.
#[derive(Default)]
struct SeenTokens {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenTokens {
    /// Records `token`; `false` when it was seen before.
    fn insert(&mut self, token: &str) -> bool {
        if self.set.contains(token) {
            return false;
        }
        if self.order.len() == SEEN_TOKENS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(token.to_owned());
        self.order.push_back(token.to_owned());
        true
    }
}

struct PageState<R> {
    client: Client,
    options: RequestOptions,
    next: Option<R>,
    seen: SeenTokens,
    /// Pages fetched so far.
    fetched: usize,
    pages_left: Option<usize>,
    /// An error to yield after the page that revealed it.
    failure: Option<LarkError>,
}

fn broken<R: Paginated>(page: usize, what: String) -> LarkError {
    LarkError::Decode(DecodeError::new(
        200,
        format!("`{}` pagination: page {page} {what}; the stream stops here", R::META.id),
    ))
}

/// A token shortened for an error message.
fn shown(token: &str) -> String {
    let mut s: String = token.chars().take(64).collect();
    if s.len() < token.len() {
        s.push_str("...");
    }
    format!("{s:?}")
}

fn page_stream<R>(
    call: Call<R>,
    max_pages: Option<usize>,
) -> BoxStream<'static, Result<R::Response, LarkError>>
where
    R: Paginated,
{
    let (client, request, options) = call.into_parts();
    let state = PageState {
        client,
        options,
        next: Some(request),
        seen: SeenTokens::default(),
        fetched: 0,
        pages_left: max_pages,
        failure: None,
    };
    stream::unfold(state, |mut st| async move {
        if st.pages_left == Some(0) {
            return None;
        }
        if let Some(e) = st.failure.take() {
            return Some((Err(e), st));
        }
        let request = st.next.take()?;
        let again = request.clone();
        let page = Call::new(st.client.clone(), request).options(st.options.clone()).send().await;
        st.pages_left = st.pages_left.map(|n| n.saturating_sub(1));
        st.fetched += 1;
        match page {
            Ok(page) => {
                match R::next_page(&page) {
                    NextPage::Last => {}
                    NextPage::Token(token) => {
                        if st.seen.insert(&token) {
                            let mut again = again;
                            again.set_page_token(token);
                            st.next = Some(again);
                        } else {
                            // Fetching it again would loop (`A → B → A`) or repeat pages.
                            let what = format!("repeats the page token {} of an earlier page", shown(&token));
                            st.failure = Some(broken::<R>(st.fetched, what));
                        }
                    }
                    NextPage::MissingToken => {
                        let what = "says `has_more: true` but gives no next page token".to_owned();
                        st.failure = Some(broken::<R>(st.fetched, what));
                    }
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
    /// previous reply's page token. Ends after the page with `has_more == false` (or, when the
    /// reply has no `has_more`, without a next token). An error is yielded once and ends the
    /// stream; so does a reply that says `has_more` without a next token, or a token seen before
    /// (a [`LarkError::Decode`], after that page).
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
