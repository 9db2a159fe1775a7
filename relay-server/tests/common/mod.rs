//! Shared by the integration tests: start `tsunagi-relay`, talk STUN to it, and
//! run coturn's tools against it. Every wait is bounded.

#![allow(dead_code)] // each test file uses a different part

pub mod turn;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tsunagi::stun::{Attribute, Class, Message, MessageBuilder, Method, TransactionId};

/// How long the server may take to bind and print `ready`.
const STARTUP: Duration = Duration::from_secs(20);
/// How long one STUN response may take on loopback.
pub const RESPONSE: Duration = Duration::from_secs(2);

/// Seconds since the Unix epoch, for REST credentials.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// A running `tsunagi-relay`, killed on drop.
pub struct Relay {
    pub child: Child,
    /// The addresses it printed as `listening udp ADDRESS`, in order.
    pub addresses: Vec<SocketAddr>,
    /// The address it printed as `listening http ADDRESS`, with `--http`.
    pub http: Option<SocketAddr>,
}

impl Relay {
    /// Starts the binary with `args` and waits for its `ready` line.
    pub fn start(args: &[&str]) -> Relay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tsunagi-relay"))
            .args(args)
            .args(["--log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tsunagi-relay");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Own the child before waiting, so a failed wait still kills it.
        let mut relay = Relay {
            child,
            addresses: Vec::new(),
            http: None,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "ready" => break,
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("listening http ") {
                        relay.http = Some(a.parse().expect("address in listening line"));
                    }
                    if let Some(a) = line.strip_prefix("listening udp ") {
                        relay
                            .addresses
                            .push(a.parse().expect("address in listening line"));
                    }
                }
                Err(_) => {
                    let status = relay.child.try_wait().ok().flatten();
                    panic!(
                        "tsunagi-relay {args:?} did not print `ready` in {STARTUP:?} (exit: {status:?})"
                    );
                }
            }
        }
        relay
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Binding request with `attrs` and FINGERPRINT; returns it and its transaction ID.
pub fn binding_request(attrs: &[Attribute<'_>], seed: u8) -> (Vec<u8>, TransactionId) {
    let mut tid = [seed; 12];
    tid[0] = std::process::id() as u8;
    let tid = TransactionId::new(tid);
    let mut b = MessageBuilder::new(Class::Request, Method::BINDING, tid);
    for a in attrs {
        b.add(a).expect("encodable attribute");
    }
    (b.finish_with_fingerprint(), tid)
}

/// Receives one datagram (bounded by [`RESPONSE`]); `None` on timeout.
pub fn receive(socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    socket
        .set_read_timeout(Some(RESPONSE))
        .expect("set timeout");
    let mut buf = vec![0u8; 4096];
    let (len, from) = socket.recv_from(&mut buf).ok()?;
    buf.truncate(len);
    Some((buf, from))
}

/// Sends `request` to `server` and returns the response and where it came from,
/// retrying twice (UDP) before giving up.
pub fn exchange(socket: &UdpSocket, server: SocketAddr, request: &[u8]) -> (Vec<u8>, SocketAddr) {
    for _ in 0..3 {
        socket.send_to(request, server).expect("send");
        if let Some(received) = receive(socket) {
            return received;
        }
    }
    panic!("no response from {server} after 3 tries");
}

/// Decodes a response and checks it answers `tid` with a valid FINGERPRINT.
pub fn decode_response(bytes: &[u8], tid: TransactionId) -> Message<'_> {
    let m = Message::decode(bytes).expect("response decodes");
    assert_eq!(m.transaction_id(), tid);
    m.verify_fingerprint().expect("response FINGERPRINT valid");
    m
}

/// Runs one of coturn's tools with a time limit and returns stdout + stderr.
/// A missing tool fails the test: coturn is a declared test dependency.
pub fn run_coturn_tool(program: &str, args: &[String], limit: Duration) -> String {
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{program} is not installed: install coturn (`apt-get install coturn`; \
             scripts/test.sh does it) to run the interoperability tests"
        ),
        Err(e) => panic!("cannot run {program}: {e}"),
    };
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    })
    .collect();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait for tool").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    readers
        .into_iter()
        .map(|r| r.join().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}
