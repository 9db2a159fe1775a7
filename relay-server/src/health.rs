//! A small HTTP/1.1 endpoint for operators: `GET /metrics` (Prometheus text)
//! and `GET /healthz` (`200 ok` while every worker is running, else `503`).
//!
//! One thread, one connection at a time, bounded reads and timeouts: it serves
//! a scraper and a load balancer's probe, not the public. Bind it to loopback
//! or a management network (`--http 127.0.0.1:9090`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::metrics::Registry;

/// Largest request head read; anything longer is answered 431.
const MAX_REQUEST: usize = 8 * 1024;
/// Per-connection read and write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The TCP address could not be bound.
    #[error("cannot listen for HTTP on {address}: {source} (choose another --http address)")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The thread could not be started.
    #[error("cannot start the HTTP thread: {0}")]
    Thread(io::Error),
}

/// Whether the relay is healthy, as `/healthz` reports it. Shared with the driver.
#[derive(Debug, Default)]
pub struct Health {
    failed: AtomicBool,
    stopping: AtomicBool,
}

impl Health {
    /// Marks the relay as unhealthy (a worker died).
    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Marks the relay as shutting down (load balancers should stop sending).
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// `None` when healthy, else why not.
    pub fn problem(&self) -> Option<&'static str> {
        if self.failed.load(Ordering::Relaxed) {
            Some("a worker thread stopped")
        } else if self.stopping.load(Ordering::Relaxed) {
            Some("shutting down")
        } else {
            None
        }
    }
}

/// The running endpoint; [`HttpEndpoint::stop`] ends its thread.
#[derive(Debug)]
pub struct HttpEndpoint {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl HttpEndpoint {
    /// Binds `address` and serves until stopped.
    pub fn start(
        address: SocketAddr,
        registry: Arc<Registry>,
        health: Arc<Health>,
    ) -> Result<HttpEndpoint, HealthError> {
        let err = |source| HealthError::Bind { address, source };
        let listener = TcpListener::bind(address).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        let bound = listener.local_addr().map_err(err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || accept_loop(&listener, &registry, &health, &flag))
            .map_err(HealthError::Thread)?;
        Ok(HttpEndpoint {
            address: bound,
            stop,
            thread,
        })
    }

    /// The bound address (port resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting and waits for the thread (at most one request's timeout).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.thread.join().is_err() {
            tracing::error!("the HTTP thread panicked");
        }
    }
}

fn accept_loop(listener: &TcpListener, registry: &Registry, health: &Health, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = serve(stream, registry, health) {
                    tracing::debug!(%peer, error = %e, "HTTP request failed");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                tracing::debug!(error = %e, "HTTP accept failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn serve(mut stream: TcpStream, registry: &Registry, health: &Health) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
                true,
            );
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let request_line = head
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim().to_string())
        .unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let body_wanted = method != "HEAD";
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "only GET and HEAD\n",
            body_wanted,
        );
    }
    match path {
        "/metrics" => respond(
            &mut stream,
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            &registry.render(),
            body_wanted,
        ),
        "/healthz" | "/health" => match health.problem() {
            None => respond(&mut stream, "200 OK", "text/plain", "ok\n", body_wanted),
            Some(problem) => respond(
                &mut stream,
                "503 Service Unavailable",
                "text/plain",
                &format!("{problem}\n"),
                body_wanted,
            ),
        },
        _ => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n",
            body_wanted,
        ),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    with_body: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}
