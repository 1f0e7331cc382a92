//! Request bodies read with an explicit size limit and deadline, so that an oversized body is a
//! 413 problem, a body that trickles in a 408 problem, and malformed JSON a 400 problem that
//! names the line and column.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Default of [`BodyReadTimeout`] (`--body-read-timeout`): an 8 MiB events batch needs under
/// 1 MB/s to make it.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 10;

/// How long a whole request body may take to arrive, counted from when the handler starts
/// reading it. actix bounds only the request head (`client_request_timeout`); without this a
/// client sending 10 bytes a second holds a connection and a buffer for as long as it likes.
/// Registered as app data; a handler mounted without it gets the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyReadTimeout(pub Duration);

impl Default for BodyReadTimeout {
    fn default() -> Self {
        Self(Duration::from_secs(DEFAULT_BODY_READ_TIMEOUT_SECS))
    }
}

/// Most bytes reserved up front from a declared `Content-Length`: a client that declares a large
/// body and sends nothing holds at most this much per request; a larger body grows past it.
const MAX_BODY_PREALLOC_BYTES: usize = 1024 * 1024;

/// Reads the whole body, refusing more than `limit` bytes or a body that is not complete
/// within the [`BodyReadTimeout`].
pub async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let BodyReadTimeout(timeout) = req
        .app_data::<BodyReadTimeout>()
        .copied()
        .unwrap_or_default();
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<usize>().ok())
        .unwrap_or(0);
    let capacity = declared.min(limit).min(MAX_BODY_PREALLOC_BYTES);
    Deadline::new(timeout, read_all(payload, limit, capacity))
        .await
        .map_err(|TimedOut| {
            ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} s; send it at full speed (the limit \
                 is the server's --body-read-timeout)",
                timeout.as_secs_f64()
            ))
        })?
}

/// The body read took longer than its [`BodyReadTimeout`].
#[derive(Debug)]
struct TimedOut;

pin_project_lite::pin_project! {
    /// `tokio::time::timeout(timeout, read)` with the same deadline (counted from when the
    /// reading starts), whose first poll wakes no one. actix polls a handler as soon as the
    /// request's head is decoded, before it feeds the body that arrived with it, and polls it
    /// again in the same pass once fed. Had the first poll left the task's waker with the
    /// body (or woken the task itself, to be sure of a second poll), the feeding would wake
    /// the task, and actix would run a whole pass more for nothing once the handler waits for
    /// the store: a read of the socket, two decodes of an empty buffer and a poll of every
    /// layer, ~8,000 instructions per POST, one event per POST's largest part beyond the bare
    /// handler's (`benches/load/results/single18-2026-12-02-s18.md`). So the first poll reads
    /// with a waker that wakes no one, and arms the timer instead (~500): a body that never
    /// arrives still times out, and a body already there (a pipelined request's, which may
    /// get no second poll in that pass) is read at once. Any later byte on the connection
    /// wakes actix, which polls the handler again, and from the second poll on the read keeps
    /// the task's waker.
    struct Deadline<F> {
        #[pin]
        read: F,
        // `None` past `Instant`'s range: no deadline, as `tokio::time::timeout` does.
        deadline: Option<tokio::time::Instant>,
        #[pin]
        timer: Option<tokio::time::Sleep>,
        polled: bool,
    }
}

impl<F: Future> Deadline<F> {
    fn new(timeout: Duration, read: F) -> Self {
        Self {
            read,
            deadline: tokio::time::Instant::now().checked_add(timeout),
            timer: None,
            polled: false,
        }
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let first = !std::mem::replace(this.polled, true);
        // Without a deadline there is no timer to stand in for the task's waker.
        let read = if first && this.deadline.is_some() {
            this.read
                .poll(&mut Context::from_waker(std::task::Waker::noop()))
        } else {
            this.read.poll(cx)
        };
        if let Poll::Ready(read) = read {
            return Poll::Ready(Ok(read));
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep_until(deadline)));
        }
        match this.timer.as_pin_mut() {
            Some(timer) => timer.poll(cx).map(|()| Err(TimedOut)),
            None => Poll::Pending,
        }
    }
}

/// `capacity`: the declared `Content-Length` (at most `limit`), so that a large body is one
/// allocation of its size rather than a doubling series of copies. Only a hint: the limit is
/// checked against the bytes that arrive.
async fn read_all(
    mut payload: web::Payload,
    limit: usize,
    capacity: usize,
) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::with_capacity(capacity);
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the body exceeds {limit} bytes; split it into smaller requests"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Query parameters the handlers read as text, so that a bad value gets an error naming
/// the parameter (serde's query errors do not). `hint` says what a good value looks like.
pub fn query_param<T: std::str::FromStr>(
    name: &str,
    raw: Option<&str>,
    hint: &str,
) -> Result<Option<T>, ApiError> {
    raw.map(|text| {
        text.parse::<T>().map_err(|_| {
            ApiError::BadRequest(format!("query parameter `{name}` is {text:?}; {hint}"))
        })
    })
    .transpose()
}

/// Hint for a `level` query parameter.
pub const LEVEL_HINT: &str = "use a number between 0 and 1, e.g. 0.9";

/// Hint for a `revision` query parameter.
pub const REVISION_HINT: &str = "use a revision number, e.g. 1";

/// Decodes a JSON document; the error names the field path and the line and column.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::BadRequest(format!("invalid JSON body: {}", e.inner()))
        } else {
            ApiError::BadRequest(format!("invalid JSON body: `{path}`: {}", e.inner()))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use actix_web::FromRequest;
    use actix_web::test::TestRequest;

    use super::*;

    /// Counts its wake-ups.
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A future pending on its first `pending` polls, then ready. Like a body that is fed
    /// while the handler waits, each pending poll wakes the waker it was polled with.
    struct ReadyAfter {
        pending: usize,
    }

    impl Future for ReadyAfter {
        type Output = &'static str;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if self.pending == 0 {
                return Poll::Ready("body");
            }
            self.pending -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[actix_web::test]
    async fn the_first_poll_wakes_no_one_and_arms_the_timer_and_later_polls_keep_the_waker() {
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);

        let before = tokio::time::Instant::now();
        let mut read = std::pin::pin!(Deadline::new(
            Duration::from_secs(10),
            ReadyAfter { pending: 2 }
        ));
        let started = tokio::time::Instant::now();
        assert!(read.as_mut().poll(&mut cx).is_pending());
        // The body's wake-up went to no one: the task is not polled again for nothing.
        assert_eq!(
            wakes.0.load(Ordering::Relaxed),
            0,
            "the first poll woke the task"
        );
        // Armed at once, at the deadline counted from the start: a body that never comes
        // times out even if nothing polls the handler again.
        let deadline = read.timer.as_ref().map(|timer| timer.deadline());
        assert!(deadline.is_some(), "no timer after the first pending poll");
        assert!(deadline >= Some(before + Duration::from_secs(10)));
        assert!(deadline <= Some(started + Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(read.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            wakes.0.load(Ordering::Relaxed),
            1,
            "the second poll reads with the task's waker"
        );
        assert_eq!(read.timer.as_ref().map(|timer| timer.deadline()), deadline);
        assert!(matches!(
            read.as_mut().poll(&mut cx),
            Poll::Ready(Ok("body"))
        ));

        // A body already there is read on the first poll.
        let mut there = std::pin::pin!(Deadline::new(
            Duration::from_secs(10),
            ReadyAfter { pending: 0 }
        ));
        assert!(matches!(
            there.as_mut().poll(&mut cx),
            Poll::Ready(Ok("body"))
        ));
        assert!(there.timer.is_none(), "a timer for a body read at once");
    }

    #[actix_web::test]
    async fn a_body_that_never_arrives_times_out() {
        let req = TestRequest::post()
            .app_data(BodyReadTimeout(Duration::from_millis(50)))
            .to_http_request();
        let never: actix_web::dev::Payload =
            actix_web::dev::Payload::from(Box::pin(futures_util::stream::pending())
                as std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>>);
        let mut never = never;
        let payload = web::Payload::from_request(&req, &mut never)
            .await
            .expect("a payload extractor never fails");
        // Bounded, so that a read that is never woken fails instead of hanging. The bound's
        // own timer would wake it at 5 s and let it time out then: it must do so by itself.
        let started = std::time::Instant::now();
        let read = tokio::time::timeout(Duration::from_secs(5), read_limited(&req, payload, 1024))
            .await
            .expect("the body read timed out by itself");
        assert!(matches!(read, Err(ApiError::RequestTimeout(_))), "{read:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "timed out only when woken from outside, after {:?}",
            started.elapsed()
        );
    }
}
