//! `/metrics` over HTTP on a loopback address, served by hyper on one background thread.
//!
//! The endpoint is bounded against clients that misbehave, whether slow or hostile:
//! - a client must send its request head within [`ServeLimits::header_read_timeout`], so
//!   connections that send nothing (or a byte now and then) do not pile up;
//! - a connection lives at most [`ServeLimits::connection_deadline`], so a client that asks and
//!   then reads slowly, or not at all, is cut off; it never holds up other scrapes, which are
//!   served concurrently;
//! - at most [`ServeLimits::max_connections`] are open at once; a connection over that is
//!   closed at once;
//! - one request per connection (no keep-alive), so an idle scraper holds nothing.
//!
//! An accept error (e.g. out of file descriptors) is logged and accepting goes on after a
//! short pause.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::Registry;

/// The pause after a failed accept before the next one.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// At most one log line of accept errors per this long.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long a client may take to send its request, how long a connection may last, and how
/// many may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// From the connection's start to the end of its request head.
    pub header_read_timeout: Duration,
    /// From the connection's start to the end of its response.
    pub connection_deadline: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self { header_read_timeout: Duration::from_secs(10), connection_deadline: Duration::from_secs(60), max_connections: 64 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("refusing to serve metrics on non-loopback address {0} (set allow_non_loopback to expose it)")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("metrics endpoint limits: {0}")]
    Limits(&'static str),
}

/// A running `/metrics` endpoint. Stops when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// A non-blocking listener on `addr`.
fn listen(addr: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    let bind = |e: &dyn std::fmt::Display| ServerError::Bind { addr, reason: e.to_string() };
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).map_err(|e| bind(&e))?;
    socket.set_reuse_address(true).map_err(|e| bind(&e))?;
    socket.bind(&addr.into()).map_err(|e| bind(&e))?;
    socket.listen(128).map_err(|e| bind(&e))?;
    socket.set_nonblocking(true).map_err(|e| bind(&e))?;
    Ok(std::net::TcpListener::from(socket))
}

impl MetricsServer {
    /// Listen on `addr` (port 0 picks a free port) and serve `registry`.
    pub fn start(addr: SocketAddr, registry: Arc<Registry>, allow_non_loopback: bool) -> Result<Self, ServerError> {
        Self::start_with(addr, registry, allow_non_loopback, ServeLimits::default())
    }

    /// As [`Self::start`], with other limits.
    pub fn start_with(
        addr: SocketAddr,
        registry: Arc<Registry>,
        allow_non_loopback: bool,
        limits: ServeLimits,
    ) -> Result<Self, ServerError> {
        if !addr.ip().is_loopback() && !allow_non_loopback {
            return Err(ServerError::NotLoopback(addr));
        }
        if limits.max_connections == 0 {
            return Err(ServerError::Limits("max_connections must be at least 1"));
        }
        if limits.header_read_timeout.is_zero() || limits.connection_deadline.is_zero() {
            return Err(ServerError::Limits("timeouts must be above zero"));
        }
        let fail = |e: &dyn std::fmt::Display| ServerError::Bind { addr, reason: e.to_string() };
        let listener = listen(addr)?;
        let bound = listener.local_addr().map_err(|e| fail(&e))?;
        // The runtime is built, used and dropped on the server's own thread: dropping one in a
        // caller that is itself async (the wasmCloud provider's init) would panic.
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let listener = {
                    let _entered = runtime.enter();
                    tokio::net::TcpListener::from_std(listener)
                };
                match listener {
                    Ok(listener) => {
                        let _ = ready_tx.send(Ok(()));
                        runtime.block_on(serve(listener, registry, limits, stopped));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| fail(&e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                let _ = thread.join();
                return Err(ServerError::Bind { addr, reason });
            }
            Err(_) => {
                let _ = thread.join();
                return Err(ServerError::Bind { addr, reason: "the endpoint's thread ended before serving".into() });
            }
        }
        tracing::info!(addr = %bound, "metrics endpoint listening");
        Ok(Self { addr: bound, stop: Some(stop), thread: Some(thread) })
    }

    /// The address actually bound.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of the exposition.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

/// Accepts connections until `stopped` fires (or its sender is gone); the connections still
/// open then are dropped with the runtime.
async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    limits: ServeLimits,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    // accept errors repeat every pause while their cause lasts (out of descriptors): logged at
    // most once per ACCEPT_LOG_EVERY, with how many there were
    let mut accept_errors = 0_u64;
    let mut logged_at: Option<tokio::time::Instant> = None;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(false);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_errors += 1;
                    if logged_at.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY) {
                        tracing::warn!(error = %e, errors = accept_errors, "metrics endpoint cannot accept connections");
                        logged_at = Some(tokio::time::Instant::now());
                        accept_errors = 0;
                    }
                    tokio::select! {
                        _ = &mut stopped => return,
                        () = tokio::time::sleep(ACCEPT_PAUSE) => {}
                    }
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "metrics endpoint has all its connections open; closing a new one");
            drop(stream);
            continue;
        };
        let registry = Arc::clone(&registry);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |request| {
                let response = respond(&registry, &request);
                async move { Ok::<_, Infallible>(response) }
            }),
        );
        tokio::spawn(async move {
            match tokio::time::timeout(limits.connection_deadline, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics client connection ended with an error"),
                Err(_) => tracing::debug!(%peer, "metrics client not done within the connection deadline; closed"),
            }
            drop(permit);
        });
    }
}

/// The response to one request: the exposition, a health answer, or an error status.
fn respond<B>(registry: &Registry, request: &Request<B>) -> Response<Full<Bytes>> {
    let page = match request.uri().path() {
        "/metrics" => None,
        "/healthz" => Some("ok"),
        _ => return status(StatusCode::NOT_FOUND, "not found"),
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        response.headers_mut().insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match page {
        Some(text) => status(StatusCode::OK, text),
        None => {
            let mut response = Response::new(Full::new(Bytes::from(registry.render_prometheus())));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
    }
}

fn status(code: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = code;
    response
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn http_get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_exposition_on_loopback_and_stops() {
        let reg = Arc::new(Registry::default());
        reg.counter_add("hits_total", &[], &[], 5.0).unwrap();
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&reg), false).unwrap();
        let addr = server.addr();
        assert_ne!(addr.port(), 0);
        let body = http_get(addr, "/metrics");
        assert!(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("text/plain; version=0.0.4"));
        assert!(body.contains("\nhits_total 5\n"), "{body}");
        assert!(http_get(addr, "/nope").contains(" 404 "));
        drop(server);
        // After drop nothing answers: the connection is refused, or accepted by the closing
        // listener and then closed without a response.
        let answered = std::net::TcpStream::connect(addr).is_ok_and(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = write!(s, "GET /metrics HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            s.read_to_string(&mut buf).is_ok() && buf.contains("hits_total")
        });
        assert!(!answered);
    }

    fn quick(header_read_timeout_ms: u64, connection_deadline_ms: u64, max_connections: usize) -> ServeLimits {
        ServeLimits {
            header_read_timeout: Duration::from_millis(header_read_timeout_ms),
            connection_deadline: Duration::from_millis(connection_deadline_ms),
            max_connections,
        }
    }

    /// Reads until the server closes the connection (or 10 s pass, which fails the read).
    fn read_until_closed(s: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            // a reset after unread data also means the server closed it
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(out),
            Err(e) => Err(e),
        }
    }

    #[test]
    fn a_client_that_does_not_read_holds_up_no_one_and_is_cut_at_the_deadline() {
        // a page far larger than loopback's socket buffers
        let reg = Arc::new(Registry::default());
        let value = "v".repeat(1000);
        for name in ["a_total", "b_total", "c_total"] {
            for i in 0..9_000 {
                reg.counter_add(name, &[("id".to_owned(), format!("{i}{value}"))], &[], 1.0).unwrap();
            }
        }
        let page = reg.render_prometheus().len();
        let server = MetricsServer::start_with("127.0.0.1:0".parse().unwrap(), Arc::clone(&reg), false, quick(5_000, 1_000, 8)).unwrap();
        let addr = server.addr();
        let mut stuck = std::net::TcpStream::connect(addr).unwrap();
        write!(stuck, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        // the next scrape is answered although the first client does not read
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let out = String::from_utf8(read_until_closed(&mut s).unwrap()).unwrap();
        assert!(out.ends_with("ok"), "{out}");
        // past the deadline the first client finds its page cut short
        std::thread::sleep(Duration::from_millis(1_500));
        let got = read_until_closed(&mut stuck).unwrap();
        assert!(got.len() < page, "{} of {page} bytes", got.len());
        drop(server);
    }

    #[test]
    fn connections_that_send_no_request_are_closed_after_the_header_timeout() {
        let reg = Arc::new(Registry::default());
        let server = MetricsServer::start_with("127.0.0.1:0".parse().unwrap(), reg, false, quick(300, 60_000, 8)).unwrap();
        let addr = server.addr();
        // one sends nothing, one sends its request a byte at a time too slowly
        let mut silent = std::net::TcpStream::connect(addr).unwrap();
        let mut dribbling = std::net::TcpStream::connect(addr).unwrap();
        for b in b"GET /metrics HTTP/1.0\r\n" {
            if dribbling.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // both closed by the server: a read still open after 10 s (far short of the 60 s
        // connection deadline) is an error here
        let dribbled = read_until_closed(&mut dribbling).unwrap();
        assert!(!String::from_utf8_lossy(&dribbled).contains(" 200 "), "{}", String::from_utf8_lossy(&dribbled));
        read_until_closed(&mut silent).unwrap();
        drop(server);
    }

    #[test]
    fn a_connection_over_the_limit_is_closed_and_scrapes_resume_when_others_end() {
        let reg = Arc::new(Registry::default());
        reg.counter_add("hits_total", &[], &[], 1.0).unwrap();
        let server = MetricsServer::start_with("127.0.0.1:0".parse().unwrap(), reg, false, quick(500, 60_000, 2)).unwrap();
        let addr = server.addr();
        let idle: Vec<_> = (0..2).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        let mut over = std::net::TcpStream::connect(addr).unwrap();
        let _ = write!(over, "GET /metrics HTTP/1.0\r\n\r\n");
        assert!(read_until_closed(&mut over).unwrap().is_empty(), "answered over the limit");
        // the idle ones time out, and the endpoint answers again
        std::thread::sleep(Duration::from_millis(800));
        let body = http_get(addr, "/metrics");
        assert!(body.contains("\nhits_total 1\n"), "{body}");
        drop(idle);
        drop(server);
    }

    #[test]
    fn answers_head_and_refuses_other_methods() {
        let reg = Arc::new(Registry::default());
        reg.counter_add("hits_total", &[], &[], 1.0).unwrap();
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), reg, false).unwrap();
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        write!(s, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let head = String::from_utf8(read_until_closed(&mut s).unwrap()).unwrap();
        assert!(head.starts_with("HTTP/1.1 200") && !head.contains("hits_total"), "{head}");
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        write!(s, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").unwrap();
        let post = String::from_utf8(read_until_closed(&mut s).unwrap()).unwrap();
        assert!(post.starts_with("HTTP/1.1 405") && post.to_ascii_lowercase().contains("allow: get, head"), "{post}");
    }

    #[test]
    fn an_address_in_use_is_an_error_also_when_started_from_async_code() {
        let reg = Arc::new(Registry::default());
        let first = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&reg), false).unwrap();
        let taken = first.addr();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // (the wasmCloud provider starts its endpoint inside its async init)
        let err = rt.block_on(async { MetricsServer::start(taken, reg, false) }).unwrap_err();
        assert!(matches!(err, ServerError::Bind { .. }), "{err}");
    }

    #[test]
    fn refuses_limits_that_would_serve_nothing() {
        let reg = Arc::new(Registry::default());
        let at = "127.0.0.1:0".parse().unwrap();
        assert!(matches!(MetricsServer::start_with(at, Arc::clone(&reg), false, quick(1, 1, 0)), Err(ServerError::Limits(_))));
        assert!(matches!(MetricsServer::start_with(at, reg, false, quick(0, 1, 1)), Err(ServerError::Limits(_))));
    }

    #[test]
    fn refuses_non_loopback_unless_allowed() {
        let reg = Arc::new(Registry::default());
        let err = MetricsServer::start("0.0.0.0:0".parse().unwrap(), reg, false).unwrap_err();
        assert!(matches!(err, ServerError::NotLoopback(_)));
    }
}
