//! `/metrics` over HTTP on a loopback address, one background thread.
//!
//! A scrape is answered on that thread, so a client that asks and then does not read would
//! stall it once the page outgrows the socket buffers: every connection gets a write timeout
//! ([`WRITE_TIMEOUT`]), set on the listening socket, which accepted sockets inherit. If the
//! listener stops accepting (tiny_http ends its accept loop at the first error, e.g. out of
//! file descriptors), the endpoint logs it and listens again on the same address.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Registry;

/// How long one write of a response may block before the client is given up (per write: a
/// client that reads a little every few seconds still holds the endpoint for as long as it
/// takes to read the page).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause before listening again after the listener stopped.
const RELISTEN_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("refusing to serve metrics on non-loopback address {0} (set allow_non_loopback to expose it)")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// A running `/metrics` endpoint. Stops when dropped.
pub struct MetricsServer {
    /// The listener in use (replaced when it had to listen again).
    server: Arc<Mutex<Arc<tiny_http::Server>>>,
    stopping: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// A listener on `addr` whose accepted connections time out writes after `write_timeout`.
fn listen(addr: SocketAddr, write_timeout: Duration) -> Result<tiny_http::Server, ServerError> {
    let bind = |e: &dyn std::fmt::Display| ServerError::Bind { addr, reason: e.to_string() };
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).map_err(|e| bind(&e))?;
    socket.set_reuse_address(true).map_err(|e| bind(&e))?;
    // (a read timeout here would end accept() itself; tiny_http reads on threads of its own)
    socket.set_write_timeout(Some(write_timeout)).map_err(|e| bind(&e))?;
    socket.bind(&addr.into()).map_err(|e| bind(&e))?;
    socket.listen(128).map_err(|e| bind(&e))?;
    tiny_http::Server::from_listener(std::net::TcpListener::from(socket), None).map_err(|e| bind(&e))
}

impl MetricsServer {
    /// Listen on `addr` (port 0 picks a free port) and serve `registry`.
    pub fn start(addr: SocketAddr, registry: Arc<Registry>, allow_non_loopback: bool) -> Result<Self, ServerError> {
        Self::start_with(addr, registry, allow_non_loopback, WRITE_TIMEOUT)
    }

    /// As [`Self::start`], with another write timeout.
    pub fn start_with(
        addr: SocketAddr,
        registry: Arc<Registry>,
        allow_non_loopback: bool,
        write_timeout: Duration,
    ) -> Result<Self, ServerError> {
        if !addr.ip().is_loopback() && !allow_non_loopback {
            return Err(ServerError::NotLoopback(addr));
        }
        let server = listen(addr, write_timeout)?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(Mutex::new(Arc::new(server)));
        let stopping = Arc::new(AtomicBool::new(false));
        let (current, stop) = (Arc::clone(&server), Arc::clone(&stopping));
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || run(&current, &stop, &registry, bound, write_timeout))
            .map_err(|e| ServerError::Bind { addr, reason: e.to_string() })?;
        tracing::info!(addr = %bound, "metrics endpoint listening");
        Ok(Self { server, stopping, addr: bound, thread: Some(thread) })
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

/// Serves until stopped, listening again whenever the listener ends on its own.
fn run(current: &Mutex<Arc<tiny_http::Server>>, stopping: &AtomicBool, registry: &Registry, addr: SocketAddr, write_timeout: Duration) {
    loop {
        let server = Arc::clone(&current.lock().unwrap_or_else(PoisonError::into_inner));
        serve(&server, registry);
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        tracing::error!(%addr, "metrics endpoint stopped accepting connections; listening again");
        drop(server);
        loop {
            std::thread::sleep(RELISTEN_PAUSE);
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            match listen(addr, write_timeout) {
                Ok(s) => {
                    *current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(s);
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "metrics endpoint cannot listen yet"),
            }
        }
        // a stop that came while listening again unblocked the old listener, not this one
        if stopping.load(Ordering::SeqCst) {
            return;
        }
    }
}

fn serve(server: &tiny_http::Server, registry: &Registry) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or("").to_owned();
        let response = match (request.method(), path.as_str()) {
            (tiny_http::Method::Get, "/metrics") => {
                let body = registry.render_prometheus();
                let mut r = tiny_http::Response::from_string(body);
                if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4; charset=utf-8") {
                    r = r.with_header(h);
                }
                r
            }
            (tiny_http::Method::Get, "/healthz") => tiny_http::Response::from_string("ok"),
            _ => tiny_http::Response::from_string("not found").with_status_code(404),
        };
        if let Err(e) = request.respond(response) {
            tracing::debug!(error = %e, "metrics client went away or did not read in time");
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.server.lock().unwrap_or_else(PoisonError::into_inner).unblock();
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
            s.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
            let _ = write!(s, "GET /metrics HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            s.read_to_string(&mut buf).is_ok() && buf.contains("hits_total")
        });
        assert!(!answered);
    }

    #[test]
    fn a_client_that_does_not_read_holds_the_endpoint_only_until_the_write_timeout() {
        // a page far larger than loopback's socket buffers
        let reg = Arc::new(Registry::default());
        let value = "v".repeat(1000);
        for name in ["a_total", "b_total", "c_total"] {
            for i in 0..9_000 {
                reg.counter_add(name, &[("id".to_owned(), format!("{i}{value}"))], &[], 1.0).unwrap();
            }
        }
        let server =
            MetricsServer::start_with("127.0.0.1:0".parse().unwrap(), Arc::clone(&reg), false, std::time::Duration::from_millis(300))
                .unwrap();
        let addr = server.addr();
        let mut stuck = std::net::TcpStream::connect(addr).unwrap();
        write!(stuck, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        // the next scrape is answered although the first client never reads
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
        write!(s, "GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.ends_with("ok"), "{out}");
        drop(stuck);
        drop(server);
    }

    #[test]
    fn refuses_non_loopback_unless_allowed() {
        let reg = Arc::new(Registry::default());
        let err = MetricsServer::start("0.0.0.0:0".parse().unwrap(), reg, false).unwrap_err();
        assert!(matches!(err, ServerError::NotLoopback(_)));
    }
}
