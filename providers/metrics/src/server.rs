//! `/metrics` over HTTP on a loopback address, one background thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::Registry;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("refusing to serve metrics on non-loopback address {0} (set allow_non_loopback to expose it)")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// A running `/metrics` endpoint. Stops when dropped.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Listen on `addr` (port 0 picks a free port) and serve `registry`.
    pub fn start(addr: SocketAddr, registry: Arc<Registry>, allow_non_loopback: bool) -> Result<Self, ServerError> {
        if !addr.ip().is_loopback() && !allow_non_loopback {
            return Err(ServerError::NotLoopback(addr));
        }
        let server = tiny_http::Server::http(addr).map_err(|e| ServerError::Bind { addr, reason: e.to_string() })?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let worker = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || serve(&worker, &registry))
            .map_err(|e| ServerError::Bind { addr, reason: e.to_string() })?;
        tracing::info!(addr = %bound, "metrics endpoint listening");
        Ok(Self { server, addr: bound, thread: Some(thread) })
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
            tracing::debug!(error = %e, "metrics client went away");
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
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
    fn refuses_non_loopback_unless_allowed() {
        let reg = Arc::new(Registry::default());
        let err = MetricsServer::start("0.0.0.0:0".parse().unwrap(), reg, false).unwrap_err();
        assert!(matches!(err, ServerError::NotLoopback(_)));
    }
}
