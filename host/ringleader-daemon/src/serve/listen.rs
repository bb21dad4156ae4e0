//! The API's connections: accepted with a cap, given timeouts, served by hyper (HTTP/1.1,
//! with TLS when configured). What a client that opens connections and sends nothing,
//! or sends slowly, can cost the daemon is bounded here; `docs/operations.md` ("The
//! daemon under bad clients") says what the operator sees.
//!
//! - A connection must send a whole request header within `header_timeout` of being
//!   accepted (TLS handshake included), or it is closed.
//! - A kept-alive connection waiting for its next request (its header included) is
//!   closed after `idle_timeout` (hyper's header-read timer, which runs from the moment
//!   it waits for a request).
//! - A request body that stops arriving for `body_timeout` fails (408 where the body
//!   is read).
//! - At most `cap` connections are open: the smaller of `--max-connections` and what
//!   the file limit allows after [`reserve`] descriptors kept for the data directory
//!   and plugins. A connection beyond the cap closes the oldest connection that has no
//!   request in flight (idle, or not yet sent a whole header) to make room, so that
//!   `/healthz` and operators stay reachable however many idle sockets are held; when
//!   every connection is busy it is answered `503` (`ringleader.error/v1`) and closed.
//!   Either is logged once per burst ([`QUIET`]).
//! - A request hyper cannot read (a malformed request line or header, a header over
//!   [`MAX_HEADER`]) gets hyper's own answer, 400 or 431, which
//!   has no body: [`JsonErrors`] gives it a `ringleader.error/v1` body like every
//!   other error of the API.

use axum::Router;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};

/// The connection limits, from `serve`'s options.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

/// How long after one report of a full house (or of failing accepts) the next may be
/// logged: one line per burst, with the counts since the last.
const QUIET: Duration = Duration::from_secs(10);

/// Most bytes of a request's header (request line included) the daemon reads: a larger
/// header is answered 431.
pub const MAX_HEADER: usize = 64 << 10;

/// How long a stopping daemon waits for requests in flight to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// How long the accept loop pauses when accepting fails (out of file descriptors):
/// retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// File descriptors kept below the file limit for everything but connections: the
/// data directory's databases (a few per rollout), plugin files, the TLS files,
/// clients of the plugins' capabilities. A quarter of the limit, and at least 64.
pub fn reserve(file_limit: u64) -> u64 {
    (file_limit / 4).max(64)
}

/// The fewest connections the cap goes down to, however low the file limit.
const MIN_CAP: usize = 8;

/// The connection cap for `max_connections` under this process's file limit; the file
/// limit when it lowered the cap.
pub fn cap(max_connections: usize) -> (usize, Option<u64>) {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match soft {
        Some(limit) => {
            let room = usize::try_from(limit.saturating_sub(reserve(limit))).unwrap_or(usize::MAX);
            if room < max_connections {
                (room.max(MIN_CAP), Some(limit))
            } else {
                (max_connections, None)
            }
        }
        None => (max_connections, None),
    }
}

/// An open connection, as the cap sees it.
#[derive(Debug)]
struct Open {
    /// Requests in flight (their responses included, until sent).
    busy: Arc<AtomicUsize>,
    /// Told to close: to make room for a new connection.
    close: Arc<Notify>,
}

/// Counts of what the cap did since it was last logged.
#[derive(Debug, Default)]
struct Burst {
    logged: Option<Instant>,
    evicted: u64,
    refused: u64,
    accept_errors: u64,
}

#[derive(Debug)]
struct Registry {
    /// By the order they were accepted in: the first is the oldest.
    open: Mutex<BTreeMap<u64, Open>>,
    cap: usize,
    /// `--max-connections`, and the file limit when it lowered the cap: for the logs.
    max_connections: usize,
    file_limit: Option<u64>,
    burst: Mutex<Burst>,
}

/// What to do with a new connection.
enum Admit {
    Serve(Arc<AtomicUsize>, Arc<Notify>),
    Refuse,
}

impl Registry {
    fn admit(&self, id: u64) -> Admit {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.cap {
            let idle = open
                .iter()
                .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id);
            match idle.and_then(|id| open.remove(&id)) {
                Some(victim) => {
                    victim.close.notify_one();
                    self.note(|b| b.evicted += 1);
                }
                None => {
                    drop(open);
                    self.note(|b| b.refused += 1);
                    return Admit::Refuse;
                }
            }
        }
        let busy = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        open.insert(
            id,
            Open {
                busy: busy.clone(),
                close: close.clone(),
            },
        );
        Admit::Serve(busy, close)
    }

    fn leave(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Counts what happened, and logs the counts when the last report is [`QUIET`] old.
    fn note(&self, count: impl FnOnce(&mut Burst)) {
        let mut burst = self.burst.lock().unwrap_or_else(|e| e.into_inner());
        count(&mut burst);
        if burst.logged.is_some_and(|at| at.elapsed() < QUIET) {
            return;
        }
        let why = match self.file_limit {
            Some(limit) => format!(
                "the file limit {limit} (ulimit -n) leaves room for {} of --max-connections {}; raise the limit (systemd LimitNOFILE=) to accept more",
                self.cap, self.max_connections
            ),
            None => format!("--max-connections {}", self.max_connections),
        };
        if burst.evicted + burst.refused > 0 {
            tracing::warn!(
                "connection limit reached: {} connections open ({why}); since the last report closed {} idle connections to make room and refused {} (every connection busy, answered 503)",
                self.cap,
                burst.evicted,
                burst.refused
            );
        }
        if burst.accept_errors > 0 {
            tracing::error!(
                "cannot accept connections: out of file descriptors ({} failed accepts since the last report); lower --max-connections or raise the file limit (ulimit -n, systemd LimitNOFILE=)",
                burst.accept_errors
            );
        }
        *burst = Burst {
            logged: Some(Instant::now()),
            ..Burst::default()
        };
    }
}

/// Serves `app` on `listener` (with TLS when `tls` is given) until `shutdown`
/// completes; then lets requests in flight finish for up to [`DRAIN`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let (cap, file_limit) = cap(limits.max_connections);
    if let Some(limit) = file_limit {
        tracing::warn!(
            "accepting at most {cap} connections: the file limit {limit} (ulimit -n) less {} kept for the data directory and plugins is under --max-connections {}",
            reserve(limit),
            limits.max_connections
        );
    }
    let registry = Arc::new(Registry {
        open: Mutex::new(BTreeMap::new()),
        cap,
        max_connections: limits.max_connections,
        file_limit,
        burst: Mutex::new(Burst::default()),
    });
    let (stop, stopping) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_out_of_files(&e) => {
                registry.note(|b| b.accept_errors += 1);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
            // The peer gave up before it was accepted, and the like.
            Err(e) => {
                tracing::debug!("accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let (busy, close) = match registry.admit(id) {
            Admit::Serve(busy, close) => (busy, close),
            Admit::Refuse => {
                refuse(&stream, tls.is_some());
                continue;
            }
        };
        let connection = Connection {
            app: app.clone(),
            peer,
            limits: limits.clone(),
            busy,
            close,
            stopping: stopping.clone(),
        };
        let registry = registry.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            match tls {
                None => connection.run(stream).await,
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config.get_inner());
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => connection.run(stream).await,
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                }
            }
            registry.leave(id);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "closing {} connections still busy after {DRAIN:?}",
            tasks.len()
        );
    }
    tasks.abort_all();
}

fn is_out_of_files(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
            || code == rustix::io::Errno::NOBUFS.raw_os_error()
            || code == rustix::io::Errno::NOMEM.raw_os_error()
    )
}

/// `ringleader.error/v1` of `error`, as compact JSON with its keys sorted (as these
/// answers have always been written).
fn error_body(error: &str) -> String {
    serde_json::to_value(ringleader_api::error::ErrorV1::new(error, None))
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// Answers a connection beyond the cap, when every open one is busy: a 503 in
/// `ringleader.error/v1` (plain HTTP; under TLS the connection is just closed), written
/// without waiting (it fits the socket's buffer), then closed.
fn refuse(stream: &tokio::net::TcpStream, tls: bool) {
    if tls {
        return;
    }
    let body = error_body(
        "the daemon has as many connections open as it accepts, all busy; try again in a moment (operators: `ringleader serve --max-connections`, docs/operations.md)",
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// One accepted connection.
struct Connection {
    app: Router,
    peer: SocketAddr,
    limits: Limits,
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
    stopping: watch::Receiver<bool>,
}

/// Counts a request in flight until its response has been sent (or dropped).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connection {
    async fn run<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let started = Arc::new(AtomicBool::new(false));
        let service = {
            let (app, peer, busy, started) = (
                self.app.clone(),
                self.peer,
                self.busy.clone(),
                started.clone(),
            );
            let body_timeout = self.limits.body_timeout;
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                started.store(true, Ordering::Release);
                busy.fetch_add(1, Ordering::AcqRel);
                let in_flight = InFlight(busy.clone());
                let mut request = request.map(|body| {
                    axum::body::Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body))
                });
                request.extensions_mut().insert(ConnectInfo(peer));
                let answer = tower_service::Service::call(&mut app.clone(), request);
                async move {
                    let response = answer.await?;
                    // Busy until the body (an event stream, say) is sent or dropped.
                    Ok::<_, std::convert::Infallible>(response.map(|body| {
                        axum::body::Body::new(body.map_frame(move |frame| {
                            let _ = &in_flight;
                            frame
                        }))
                    }))
                }
            })
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.limits.idle_timeout)
            .max_header_size(MAX_HEADER);
        let connection = http.serve_connection(TokioIo::new(JsonErrors::new(io)), service);
        tokio::pin!(connection);
        let first_request = tokio::time::sleep(self.limits.header_timeout);
        tokio::pin!(first_request);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!("connection from {}: {e}", self.peer);
                    }
                    return;
                }
                () = &mut first_request, if !started.load(Ordering::Acquire) => {
                    if !started.load(Ordering::Acquire) {
                        tracing::debug!(
                            "closing the connection from {}: no request header within {:?}",
                            self.peer, self.limits.header_timeout
                        );
                        return;
                    }
                }
                () = self.close.notified(), if !closing => {
                    if self.busy.load(Ordering::Acquire) == 0 {
                        tracing::debug!("closing the idle connection from {} to make room", self.peer);
                        return;
                    }
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                Ok(()) = self.stopping.changed(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A connection's writing side that gives hyper's own error answers a body.
///
/// hyper answers a request it cannot parse by itself, before any service sees it, with
/// a head only: `HTTP/1.1 400 Bad Request`, `connection: close`, `content-length: 0`.
/// Written with vectored writes off, that head comes as one write; this replaces it
/// with the same status and a `ringleader.error/v1` body saying what was wrong. The
/// API's own answers always have a body, so nothing else matches.
struct JsonErrors<I> {
    inner: I,
    /// A replacement answer not yet written in full.
    pending: Vec<u8>,
}

impl<I> JsonErrors<I> {
    fn new(inner: I) -> JsonErrors<I> {
        JsonErrors {
            inner,
            pending: Vec::new(),
        }
    }
}

/// The answer to send instead of `head`, when `head` is hyper's body-less answer to a
/// request it could not read.
fn with_body(head: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(head).ok()?;
    let rest = head.strip_prefix("HTTP/1.1 ")?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let lower = head.to_ascii_lowercase();
    if !head.ends_with("\r\n\r\n")
        || !lower.contains("\r\ncontent-length: 0\r\n")
        || !lower.contains("\r\nconnection: close\r\n")
    {
        return None;
    }
    let error = match status {
        400 => "the request could not be read as HTTP/1.1: a malformed request line or header (the API speaks HTTP/1.1; its routes are in docs/api/openapi.yaml)".to_string(),
        // Only with a header limit over hyper's longest path (65,534 bytes).
        414 => "the request's path is too long for the daemon to read".to_string(),
        431 => format!("the request's header is larger than the {} KiB the daemon reads", MAX_HEADER >> 10),
        _ => return None,
    };
    let body = error_body(&error);
    let status_line = head.split("\r\n").next()?;
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<I: AsyncWrite + Unpin> JsonErrors<I> {
    /// Writes what is pending of a replacement answer.
    fn drain(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        while !self.pending.is_empty() {
            match std::pin::Pin::new(&mut self.inner).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    self.pending.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for JsonErrors<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonErrors<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        if let Some(answer) = with_body(buf) {
            self.pending = answer;
            // Taken whole: what is pending is written before anything else.
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // One write per head, so that hyper's answer is seen whole (see the type's doc).
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(cap: usize) -> Registry {
        Registry {
            open: Mutex::new(BTreeMap::new()),
            cap,
            max_connections: cap,
            file_limit: None,
            burst: Mutex::new(Burst::default()),
        }
    }

    #[test]
    fn past_the_cap_the_oldest_idle_connection_makes_room_and_none_idle_is_a_refusal() {
        let registry = registry(2);
        let Admit::Serve(first, _) = registry.admit(1) else {
            panic!("room for the first")
        };
        let Admit::Serve(second, _) = registry.admit(2) else {
            panic!("room for the second")
        };
        // The first is busy: the second, idle, makes room.
        first.fetch_add(1, Ordering::AcqRel);
        assert!(matches!(registry.admit(3), Admit::Serve(..)));
        let open: Vec<u64> = registry.open.lock().unwrap().keys().copied().collect();
        assert_eq!(open, [1, 3]);
        drop(second);
        // Every one busy: refused, and nothing closed.
        for open in registry.open.lock().unwrap().values() {
            open.busy.fetch_add(1, Ordering::AcqRel);
        }
        assert!(matches!(registry.admit(4), Admit::Refuse));
        assert_eq!(registry.open.lock().unwrap().len(), 2);
        // Counted for the next report; logged once per burst.
        assert_eq!(registry.burst.lock().unwrap().refused, 1);
    }

    #[test]
    fn only_hypers_bodiless_answers_to_unreadable_requests_get_a_body() {
        let hyper = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 01:26:30 GMT\r\n\r\n";
        let answer = String::from_utf8(with_body(hyper).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["schema"], "ringleader.error/v1");
        let too_large = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(
            String::from_utf8(with_body(too_large).unwrap())
                .unwrap()
                .contains("64 KiB")
        );
        // The API's own answers, and heads followed by a body, are left alone.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n";
        assert!(with_body(ours).is_none());
        let kept_alive = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert!(with_body(kept_alive).is_none());
        assert!(
            with_body(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                .is_none()
        );
        assert!(with_body(b"{\"schema\"").is_none());
    }

    #[test]
    fn the_cap_leaves_room_below_the_file_limit() {
        assert_eq!(reserve(256), 64);
        assert_eq!(reserve(1024), 256);
        assert_eq!(reserve(100), 64);
    }
}
