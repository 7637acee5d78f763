//! The HTTP listener: our own accept loop over hyper, so that no client can hold a connection
//! for free.
//!
//! Two limits apply to every connection:
//! - **Header read timeout**: a request's head (request line and headers) must arrive within it,
//!   counted from the moment the server waits for it; this also bounds a keep-alive connection
//!   waiting for its next request. A client trickling its headers is cut here.
//! - **Idle timeout**: a watchdog closes a connection on which nothing moved for that long while
//!   the server was waiting on the client (no byte read or written, and no handler at work). A
//!   stalled upload body or a client that stopped reading a download is cut; an upload or a
//!   download that keeps moving, however long, is not, and neither is a slow handler.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::{Service, ServiceExt};

use dossier_model::options::Options;

/// How long a connection may take to send a request's head, and stay idle: the listener's view
/// of the process's [`Options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The whole head of a request must arrive within this ([`Options::header_read_timeout_secs`]).
    pub header_read_timeout: Duration,
    /// A connection with no activity for this long is closed ([`Options::idle_timeout_secs`]).
    pub idle_timeout: Duration,
}

impl From<&Options> for ConnectionSettings {
    fn from(options: &Options) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(options.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(options.idle_timeout_secs),
        }
    }
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self::from(&Options::default())
    }
}

/// Serves `app` on `listener` until `stop` resolves, then lets the requests in flight finish.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    settings: ConnectionSettings,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => serve_connection(stream, app.clone(), settings, &graceful),
                Err(error) => accept_failed(error).await,
            },
            () = &mut stop => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A failed accept never stops the server: a connection reset before it was accepted is
/// skipped, anything else (out of file descriptors) is logged and retried after a pause.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        tracing::error!(%error, "accepting a connection failed; retrying in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn serve_connection<S>(stream: TcpStream, app: S, settings: ConnectionSettings, graceful: &GracefulShutdown)
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedIo {
        inner: stream,
        activity: activity.clone(),
    });
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let work = Work::start(watched.clone());
        let request = request.map(|body| {
            Body::new(WatchedBody {
                inner: body,
                work: work.clone(),
            })
        });
        let app = app.clone();
        // Made before the future, so a future dropped unpolled still ends its work.
        let running = HandlerRunning(work);
        async move {
            let _running = running;
            app.oneshot(request).await
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .serve_connection(io, service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        tokio::select! {
            served = connection => if let Err(error) = served {
                tracing::debug!(%error, "connection ended with an error");
            },
            () = activity.idle_for(settings.idle_timeout) => {
                tracing::debug!(timeout = ?settings.idle_timeout, "closing an idle connection");
            }
        }
    });
}

/// What the watchdog of one connection looks at.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Requests whose handler is at work (not waiting for the client's body).
    working: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            working: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Resolves once the connection has been idle for `timeout`: nothing read or written, and
    /// no handler at work, for that long.
    async fn idle_for(&self, timeout: Duration) {
        let timeout_ms = timeout.as_millis() as u64;
        loop {
            if self.working.load(Ordering::Relaxed) > 0 {
                // A handler at work is the server's doing, not the client's: the clock restarts.
                self.touch();
            }
            let quiet = self.now_ms().saturating_sub(self.last_io_ms.load(Ordering::Relaxed));
            if quiet >= timeout_ms {
                return;
            }
            // Wake at the earliest moment the timeout could be reached, but look at least every
            // second, so a handler ending is noticed.
            let wait = (timeout_ms - quiet).min(1000);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// One request's part in [`Activity::working`]: its handler runs and is not waiting for body.
struct Work {
    activity: Arc<Activity>,
    /// (handler running, handler waiting for the request body)
    state: Mutex<(bool, bool)>,
}

impl Work {
    fn start(activity: Arc<Activity>) -> Arc<Self> {
        activity.working.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            activity,
            state: Mutex::new((true, false)),
        })
    }

    fn update(&self, change: impl FnOnce(&mut (bool, bool))) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let counted = |(running, waiting): (bool, bool)| running && !waiting;
        let before = counted(*state);
        change(&mut state);
        match (before, counted(*state)) {
            (false, true) => {
                self.activity.working.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.activity.working.fetch_sub(1, Ordering::Relaxed);
                self.activity.touch();
            }
            _ => {}
        }
    }
}

/// Ends the handler's [`Work`] when its response is ready (or the request is dropped).
struct HandlerRunning(Arc<Work>);

impl Drop for HandlerRunning {
    fn drop(&mut self) {
        self.0.update(|state| state.0 = false);
    }
}

/// The request body: a read that waits on the client is not work of the server.
struct WatchedBody {
    inner: Incoming,
    work: Arc<Work>,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let waiting = polled.is_pending();
        self.work.update(|state| state.1 = waiting);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket: every byte that moves is activity.
struct WatchedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl WatchedIo {
    fn moved<T>(&self, polled: Poll<std::io::Result<T>>, bytes: impl FnOnce(&T) -> usize) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Ok(value)) = &polled
            && bytes(value) > 0
        {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.moved(polled, |()| read)
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.moved(polled, |n| *n)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.moved(polled, |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
