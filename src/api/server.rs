//! The API's HTTP/1.1 server: accepting connections, how long each may take, and the answers the
//! HTTP layer gives on its own.
//!
//! This module owns:
//! * **the connection cap**: at most `api.maxConnections` connections are open at once; further
//!   ones are not accepted until one closes (they wait in the listen backlog, where the kernel
//!   holds them, or time out there);
//! * **the clocks of a connection**, which is always in one of three phases: *idle* (waiting for
//!   a request, from its opening and after each answer: closed after `api.idleTimeout` without a
//!   byte either way), *head* (a request's first byte arrived: its head must be complete within
//!   `api.headerReadTimeout`, else the connection is closed) and *busy* (the request is being
//!   answered: no clock, the handlers bound themselves);
//! * **the bodies of hyper's own answers**: a request hyper cannot read gets 400, a URI over
//!   hyper's limit (65,534 bytes) 414, a head over [`MAX_HEAD_BYTES`] 431, each written by hyper
//!   with an empty body before any route sees the request. [`ConnIo`] gives them the reference's
//!   XML failed answer instead, so that every error the API gives is XML;
//! * **graceful shutdown**: once the token is cancelled no connection is accepted, requests
//!   being answered are answered (without keep-alive), connections that are idle or still
//!   sending a head are closed at once, and the server's future returns when every connection
//!   has closed.
//!
//! It does not route or answer requests: that is [`super::router`]'s.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::xml::{self, keys};
use crate::config::ApiSettings;

/// The most a request head (request line and headers) may take; beyond it hyper answers 431.
/// It is also about the most a connection buffers while reading a head, so the cap on
/// connections bounds that memory (1,024 × 128 KiB by default). Large enough for hyper's own URI limit to be reached
/// (and answered 414) before this one.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;

/// What bounds the server, from the `api` settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: NonZeroUsize,
}

impl Limits {
    pub fn new(api: &ApiSettings) -> Self {
        Limits {
            header_read_timeout: api.header_read_timeout,
            idle_timeout: api.idle_timeout,
            max_connections: api.max_connections,
        }
    }
}

/// Accepts connections on `listener` and serves `router` on each until `shutdown`; returns once
/// every connection has closed.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.get()));
    let connections = TaskTracker::new();
    loop {
        // A slot first: beyond the cap, connections stay in the backlog, not in memory here.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = shutdown.cancelled() => break,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // A connection that failed before it was accepted concerns no one else; running
                // out of file descriptors passes when connections close: wait a little.
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionRefused
                ) {
                    tracing::warn!(error = %e, "cannot accept an API connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = serve_connection(stream, peer, router.clone(), limits, shutdown.clone());
        connections.spawn(async move {
            connection.await;
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Where a connection is in its life; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Head,
    Busy,
}

/// The phase and when it began (or, when idle, when a byte last moved).
type Activity = watch::Sender<(Phase, Instant)>;

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let (activity, mut phase) = watch::channel((Phase::Idle, Instant::now()));
    let activity = Arc::new(activity);
    let io = TokioIo::new(ConnIo::new(stream, activity.clone()));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let (router, activity) = (router.clone(), activity.clone());
        activity.send_replace((Phase::Busy, Instant::now()));
        async move {
            let answer = router.oneshot(request).await;
            activity.send_replace((Phase::Idle, Instant::now()));
            answer
        }
    });
    // The buffer bounds a head still arriving, the header size one that arrived in a few large
    // reads (the buffer may then have grown past its bound before being checked).
    let connection = http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let (now, since) = *phase.borrow_and_update();
        if draining && now != Phase::Busy {
            // Stopping: only a request being answered is worth waiting for.
            return;
        }
        let deadline = match now {
            Phase::Idle => Some(since + limits.idle_timeout),
            Phase::Head => Some(since + limits.header_read_timeout),
            Phase::Busy => None,
        };
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(client = %peer, error = %e, "API connection ended with an error");
                }
                return;
            }
            changed = phase.changed() => {
                // The connection holds the sender: it cannot go while the connection runs.
                if changed.is_err() {
                    return;
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                // The deadline of the phase we slept in, unless the phase moved meanwhile.
                if *phase.borrow() == (now, since) {
                    tracing::debug!(client = %peer, phase = ?now, "closing an API connection: too slow");
                    return;
                }
            }
            _ = shutdown.cancelled(), if !draining => {
                // No keep-alive after the answer under way, if any; the loop closes the rest.
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A connection's socket as hyper sees it: it tells the connection's clock when a request
/// begins and when bytes move, and gives hyper's own error answers their XML body.
struct ConnIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// Bytes accepted from hyper but not yet written to the socket (a rewritten answer).
    pending: Vec<u8>,
    written: usize,
}

impl ConnIo {
    fn new(stream: TcpStream, activity: Arc<Activity>) -> Self {
        ConnIo {
            stream,
            activity,
            pending: Vec::new(),
            written: 0,
        }
    }

    /// A byte moved: an idle connection starts a request (`reading`) or stays alive.
    fn moved(&self, reading: bool) {
        self.activity
            .send_if_modified(|(phase, since)| match phase {
                Phase::Idle if reading => {
                    *phase = Phase::Head;
                    *since = Instant::now();
                    true
                }
                Phase::Idle => {
                    *since = Instant::now();
                    true
                }
                _ => false,
            });
    }

    /// Writes what is pending; ready once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = match Pin::new(&mut self.stream).poll_write(cx, &self.pending[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            self.written += n;
            self.moved(false);
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.moved(true);
        }
        read
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_empty()
            && let Some(answer) = with_xml_body(buf)
        {
            // Taken whole: hyper writes its error answer and then closes the connection.
            self.pending = answer;
            return match self.poll_pending(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved(false);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.stream).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.stream).poll_shutdown(cx),
            other => other,
        }
    }
}

/// When `written` is one of hyper's own error answers (400, 414, 431: only hyper gives these,
/// no route does), the same answer with the reference's XML failed body; else `None`. hyper
/// writes such an answer's head whole, in one write, with an empty body.
fn with_xml_body(written: &[u8]) -> Option<Vec<u8>> {
    let pair = match written.get(..13)? {
        b"HTTP/1.1 400 " => keys::BAD_REQUEST,
        b"HTTP/1.1 414 " => keys::URI_TOO_LONG,
        b"HTTP/1.1 431 " => keys::HEADERS_TOO_LARGE,
        _ => return None,
    };
    let end = written.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&written[..end]).ok()?;
    let body = xml::failed(pair);
    let mut answer = String::with_capacity(head.len() + body.len() + 96);
    for line in head.split("\r\n") {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("content-type")
        {
            continue;
        }
        answer.push_str(line);
        answer.push_str("\r\n");
    }
    answer.push_str("content-type: text/xml; charset=utf-8\r\n");
    answer.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    let mut bytes = answer.into_bytes();
    bytes.extend_from_slice(&written[end + 4..]);
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_error_answers_get_the_xml_body() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 11:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(with_xml_body(hyper).unwrap()).unwrap();
        let body = xml::failed(keys::HEADERS_TOO_LARGE);
        assert_eq!(
            answer,
            format!(
                "HTTP/1.1 431 Request Header Fields Too Large\r\ndate: Wed, 02 Dec 2026 11:00:00 GMT\r\ncontent-type: text/xml; charset=utf-8\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        );
        assert!(
            with_xml_body(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                .is_some_and(|a| a.ends_with(xml::failed(keys::BAD_REQUEST).as_bytes()))
        );
        // Anything else is left alone: the routes' own answers, a body, a head cut short.
        for other in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\n\r\n",
            b"<response><returncode>FAILED</returncode></response>",
            b"HTTP/1.1 400 Bad Request\r\ncontent-le",
        ] {
            assert!(with_xml_body(other).is_none());
        }
    }
}
