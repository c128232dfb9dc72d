//! The HTTP/1.1 server loop: accepts connections up to a cap and bounds
//! how long a client may hold one without doing its part, so slow or idle
//! clients cannot exhaust the server's file descriptors.
//!
//! Per connection, one of three clocks runs at a time:
//!
//! - **header** ([`ConnectionLimits::header_read`]): from the connection's
//!   opening, or from the first byte of a later request, until its headers
//!   are complete;
//! - **body** ([`ConnectionLimits::body_read`]): from the headers until the
//!   request body has arrived (a late body answers 408 and closes);
//! - **idle** ([`ConnectionLimits::idle`]): between a finished response and
//!   the next request's first byte on a kept-alive connection, and while a
//!   response cannot be written because the client does not read it.
//!
//! hyper's own `header_read_timeout` is not used: its clock starts whenever
//! hyper waits for a request head, which includes the idle wait between
//! kept-alive requests, so it cannot tell a slow header from an idle client.
//! Only HTTP/1.1 is served: browsers reach Stagehand over HTTP/1.1 or
//! through a proxy, and never speak cleartext HTTP/2.

use crate::config::ConnectionLimits;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting and waits for in-flight requests to finish (idle connections
/// close at once; a slow one at the latest when its clock runs out).
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Clamped: Semaphore::new panics past MAX_PERMITS.
    let cap = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(cap));
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        // At the cap, further connections wait in the listen backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let io = TokioIo::new(GuardedStream::new(stream, &limits, activity.clone()));
        let service = connection_service(router.clone(), peer, limits.body_read, activity);
        let connection = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// As `axum::serve` does: a refused or reset connection is the client's
/// business; anything else (out of file descriptors) is logged and waited
/// out, since connections closing will free some.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The router for one connection: the peer's address as `ConnectInfo`, the
/// body clock on the request, and the connection's activity kept up to
/// date until the response has been written.
fn connection_service(
    router: Router,
    peer: SocketAddr,
    body_read: Duration,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let busy = Busy::start(activity.clone());
        let timed_out = Arc::new(AtomicBool::new(false));
        let mut req = req.map(|body| DeadlineBody::new(body, body_read, timed_out.clone()));
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let Ok(res) = router.oneshot(req).await;
            let res = if timed_out.load(Ordering::Acquire) {
                request_timeout()
            } else {
                res
            };
            Ok(res.map(|body| {
                Body::new(TrackedBody {
                    inner: body,
                    _busy: busy,
                })
            }))
        }
    })
}

/// The answer to a body that did not arrive in time; the connection closes
/// after it (what is left of the body is never read).
fn request_timeout() -> Response<Body> {
    let mut res = Response::new(Body::from("The request body took too long to arrive.\n"));
    *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let h = res.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// What the connection's requests are doing, shared by its stream (which
/// runs the header and idle clocks) and its service (which knows when a
/// request starts and when its response has been written).
#[derive(Debug, Default)]
struct Activity {
    /// Requests whose response has not been written yet.
    busy: AtomicUsize,
    /// Responses written (or abandoned) so far.
    finished: AtomicU64,
    /// The connection's reader, parked while a request was busy: woken
    /// when it finishes, so the idle clock starts even if the client is
    /// silent (hyper may have asked for the next request before the last
    /// response body was dropped).
    reader: AtomicWaker,
}

/// One request in progress, from its complete headers until its response
/// body is dropped by hyper (written, or the connection gone).
#[derive(Debug)]
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::AcqRel);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.reader.wake();
    }
}

/// A response body that keeps its request counted as busy until hyper is
/// done with it.
struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body clock: a request body that has not fully arrived `limit` after
/// the headers fails, and says so in `timed_out`.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration, timed_out: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            deadline: Instant::now() + limit,
            sleep: None,
            timed_out,
        }
    }
}

/// The error a late request body fails with.
#[derive(Debug)]
struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body took too long to arrive")
    }
}

impl std::error::Error for BodyTimedOut {}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        this.timed_out.store(true, Ordering::Release);
        Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Which read clock runs on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers (the header clock).
    Header,
    /// Kept alive between requests (the idle clock).
    Idle,
    /// A request is being served: its body has its own clock.
    Busy,
}

/// A TCP stream with the header and idle clocks on reads, and the idle
/// clock on writes that make no progress. A clock that runs out fails the
/// read or write with `TimedOut`, and hyper closes the connection.
struct GuardedStream {
    inner: TcpStream,
    header_read: Duration,
    idle: Duration,
    activity: Arc<Activity>,
    /// `Activity::finished` when the phase was last brought up to date.
    seen_finished: u64,
    phase: Phase,
    read_clock: Pin<Box<Sleep>>,
    write_clock: Option<Pin<Box<Sleep>>>,
}

impl GuardedStream {
    fn new(inner: TcpStream, limits: &ConnectionLimits, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            header_read: limits.header_read,
            idle: limits.idle,
            activity,
            seen_finished: 0,
            // A new connection owes us its first request's headers.
            phase: Phase::Header,
            read_clock: Box::pin(tokio::time::sleep(limits.header_read)),
            write_clock: None,
        }
    }

    /// Follows the requests: busy while one is served; idle from the moment
    /// the last response has been written.
    fn sync_phase(&mut self) {
        let busy = self.activity.busy.load(Ordering::Acquire);
        let finished = self.activity.finished.load(Ordering::Acquire);
        if busy > 0 {
            self.phase = Phase::Busy;
        } else if self.phase == Phase::Busy || finished != self.seen_finished {
            self.phase = Phase::Idle;
            let until = Instant::now() + self.idle;
            self.read_clock.as_mut().reset(until);
        }
        self.seen_finished = finished;
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.sync_phase();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.phase == Phase::Idle {
                    // The first byte of the next request: its header clock.
                    this.phase = Phase::Header;
                    let until = Instant::now() + this.header_read;
                    this.read_clock.as_mut().reset(until);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.phase == Phase::Busy {
                    this.activity.reader.register(cx.waker());
                    // It may have finished in between.
                    if this.activity.busy.load(Ordering::Acquire) == 0 {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                }
                if this.read_clock.as_mut().poll(cx).is_ready() {
                    let what = match this.phase {
                        Phase::Idle => "idle connection timed out",
                        _ => "request headers took too long to arrive",
                    };
                    return Poll::Ready(Err(timed_out(what)));
                }
                Poll::Pending
            }
        }
    }
}

impl GuardedStream {
    /// Runs the idle clock on a write that cannot make progress.
    fn write_progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.write_clock = None;
            return result;
        }
        let idle = self.idle;
        let clock = self
            .write_clock
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        if clock.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(timed_out("the client stopped reading")));
        }
        Poll::Pending
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.write_progress(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.write_progress(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.write_progress(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
