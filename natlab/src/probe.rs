//! UDP probes: sockets inside namespaces and a reflector that tells a sender the
//! address it was seen from (the lab's own "what is my address" service).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Error;
use crate::netns::Netns;

const ASK: &[u8] = b"natlab?";
const ANSWER: &str = "natlab! ";

/// Opens a UDP socket bound to `bind` inside `ns`.
pub fn udp_socket(ns: &Netns, bind: SocketAddr) -> Result<UdpSocket, Error> {
    let name = ns.name().to_owned();
    ns.run(move || UdpSocket::bind(bind))?
        .map_err(|e| Error::Netns {
            name,
            reason: format!("cannot bind UDP {bind}: {e}"),
        })
}

/// A UDP service in a namespace that answers each `natlab?` datagram with the
/// sender's address as it arrived. Stops on drop.
#[derive(Debug)]
pub struct Reflector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reflector {
    /// Starts a reflector on `bind` inside `ns`.
    pub fn start(ns: &Netns, bind: SocketAddr) -> Result<Reflector, Error> {
        let sock = udp_socket(ns, bind)?;
        let addr = sock.local_addr().map_err(|e| io(ns, &e))?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| io(ns, &e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf)
                    && buf.get(..n) == Some(ASK)
                {
                    let _ = sock.send_to(format!("{ANSWER}{from}").as_bytes(), from);
                }
            }
        });
        Ok(Reflector {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asks a [`Reflector`] at `server` which address `sock` appears from. Retransmits
/// every 200 ms until `timeout`; `Ok(None)` if no answer came.
pub fn observed_address(
    sock: &UdpSocket,
    server: SocketAddr,
    timeout: Duration,
) -> Result<Option<SocketAddr>, Error> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 256];
    let err = |e: std::io::Error| Error::Netns {
        name: "probe".into(),
        reason: e.to_string(),
    };
    while Instant::now() < deadline {
        sock.send_to(ASK, server).map_err(err)?;
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(err)?;
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from != server {
                continue;
            }
            let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
            if let Some(addr) = text.strip_prefix(ANSWER).and_then(|a| a.parse().ok()) {
                return Ok(Some(addr));
            }
        }
    }
    Ok(None)
}

/// Waits up to `timeout` for one datagram on `sock`; returns its payload and sender.
pub fn receive(sock: &UdpSocket, timeout: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .ok()?;
    let mut buf = [0u8; 2048];
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    Some((buf.get(..n)?.to_vec(), from))
}

fn io(ns: &Netns, e: &std::io::Error) -> Error {
    Error::Netns {
        name: ns.name().to_owned(),
        reason: e.to_string(),
    }
}
