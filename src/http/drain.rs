//! Request bodies a handler leaves unread. A response sent while the client is still
//! writing its body (a 413 over the size limit, a 401 before the body is read) is lost to
//! most clients if the connection is then closed: the unread bytes make the kernel answer
//! with a reset, and a client still writing sees a broken pipe, not the response. So after
//! the response the rest of such a body is read and discarded, never kept, in a task of its
//! own, up to [`DRAIN_MAX`] bytes and for at most [`DRAIN_TIME`]; past either the
//! connection is closed anyway, and a body declared longer than that is not read at all.
//! A body fully read this way leaves the connection usable for the next request.
//!
//! A declared `Content-Length` over the limit is refused before any of the body is read:
//! the handler's first read fails as an over-long body does (`http_body_util`'s
//! `LengthLimitError`, which each adapter answers with its 413).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{Version, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Full, Limited};

use crate::scim::MAX_PAYLOAD;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The most bytes of a request body read and discarded after its response: a few times the
/// limit, so a client that sent somewhat too much reads its 413, while an endless body
/// costs no more than this (and [`DRAIN_TIME`]) before its connection is closed.
pub const DRAIN_MAX: u64 = 4 * MAX_PAYLOAD as u64;

/// How long after its response the rest of a request body is read at most.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The request body, shared by the handler reading it and the layer that drains the rest.
struct State {
    /// `None` once the drain took it.
    body: Option<Body>,
    /// Data bytes the handler read.
    read: u64,
    /// The body ended (or failed): nothing is left to drain.
    ended: bool,
    /// Declared longer than the limit: the handler's first read fails without reading.
    over_limit: bool,
    /// That failure was returned; the handler sees the body end after it.
    refused: bool,
}

#[derive(Clone)]
struct Shared(Arc<Mutex<State>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The body the handler reads.
struct Lent(Shared);

impl HttpBody for Lent {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut st = self.0.lock();
        if st.over_limit {
            if st.refused {
                return Poll::Ready(None);
            }
            st.refused = true;
            return Poll::Ready(Some(Err(length_limit_error())));
        }
        let Some(body) = st.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                st.read += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            Poll::Ready(Some(Err(_)) | None) => st.ended = true,
            Poll::Pending => {}
        }
        polled.map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        let st = self.0.lock();
        st.refused || st.ended || st.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let st = self.0.lock();
        match &st.body {
            Some(b) if !st.over_limit => b.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

/// `http_body_util::LengthLimitError`, the error extractors answer with 413, which only
/// `http_body_util` can make: what a `Limited` body of limit 0 says of its first byte.
fn length_limit_error() -> BoxError {
    let mut over = Limited::new(Full::new(Bytes::from_static(b" ")), 0);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(&mut over).poll_frame(&mut cx) {
        Poll::Ready(Some(Err(e))) => e,
        _ => BoxError::from("the request body is over the size limit"),
    }
}

/// The layer: lends the handler the body, then drains what it left (see the module).
pub async fn unread_bodies(req: Request, next: Next) -> Response {
    // HTTP/2 ends a stream without closing the connection; a body-less request has
    // nothing to leave.
    if req.version() == Version::HTTP_2 || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = req.into_parts();
    let hint = body.size_hint();
    let declared = hint.exact();
    let shared = Shared(Arc::new(Mutex::new(State {
        over_limit: hint.lower() > MAX_PAYLOAD as u64,
        body: Some(body),
        read: 0,
        ended: false,
        refused: false,
    })));
    let resp = next
        .run(Request::from_parts(parts, Body::new(Lent(shared.clone()))))
        .await;
    let rest = {
        let mut st = shared.lock();
        let left = declared.map(|n| n.saturating_sub(st.read));
        if st.ended
            || st.body.as_ref().is_none_or(Body::is_end_stream)
            // The client waits for `100 Continue` before sending: it has sent nothing.
            || (expects_continue && st.read == 0)
            // More than would be drained: closing now costs the client the same.
            || left.is_some_and(|n| n > DRAIN_MAX)
        {
            None
        } else {
            st.body.take()
        }
    };
    if let Some(body) = rest {
        tokio::spawn(drain(body));
    }
    resp
}

/// Reads `body` to its end, discarding it, within [`DRAIN_MAX`] bytes and [`DRAIN_TIME`].
/// Dropped before its end, the body closes its connection.
async fn drain(mut body: Body) {
    let mut left = DRAIN_MAX;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len() as u64);
            if n >= left {
                tracing::debug!("request body over the drain bound; closing");
                return;
            }
            left -= n;
        }
    })
    .await;
}
