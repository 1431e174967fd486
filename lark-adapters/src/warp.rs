//! warp: [`routes`] serves the dispatcher on `POST /webhook/event` and `POST /webhook/card`.

use bytes::{Buf, Bytes};
use http_body_util::StreamBody;
use lark_events::EventDispatcher;
use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

/// A filter serving `dispatcher` on `POST /webhook/event` and `POST /webhook/card`; combine it
/// with your own filters with `.or(..)`.
///
/// ```no_run
/// # async fn demo(dispatcher: lark_events::EventDispatcher) {
/// warp::serve(lark_adapters::warp::routes(dispatcher)).run(([127, 0, 0, 1], 8089)).await;
/// # }
/// ```
pub fn routes(dispatcher: EventDispatcher) -> BoxedFilter<(impl Reply,)> {
    warp::post()
        .and(warp::path("webhook"))
        .and(warp::path("event").or(warp::path("card")).unify())
        .and(warp::path::end())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(move |headers, stream| {
            let dispatcher = dispatcher.clone();
            async move {
                use futures_util::StreamExt;
                // Chunks are handed over as they arrive; the dispatcher enforces its limit.
                let frames = StreamExt::map(stream, |chunk: Result<_, warp::Error>| {
                    chunk.map(|mut buf| {
                        let len = Buf::remaining(&buf);
                        let bytes: Bytes = Buf::copy_to_bytes(&mut buf, len);
                        http_body::Frame::data(bytes)
                    })
                });
                let mut req = http::Request::new(StreamBody::new(frames));
                *req.headers_mut() = headers;
                dispatcher.handle_request(req).await
            }
        })
        .boxed()
}
