//! A minimal TURN client over our codec, for driving `tsunagi-relay` with
//! well-formed and deliberately bad requests. Every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tsunagi::stun::{
    Attribute, AttributeType, Class, IntegrityKey, Message, MessageBuilder, Method, TransactionId,
};

use super::{RESPONSE, Relay};

/// The realm every TURN test server uses.
pub const REALM: &str = "tsunagi";

/// Starts a TURN relay on `listen` (port 0) for loopback peers with `extra`
/// flags, one worker (so counters are read once), OS-chosen relay ports.
pub fn start_turn(listen: &str, extra: &[&str]) -> Relay {
    let mut args = vec![
        "--listen",
        listen,
        "--allow-peer",
        "127.0.0.0/8",
        "--allow-peer",
        "::1/128",
        "--min-port",
        "0",
        "--max-port",
        "0",
        "--threads",
        "1",
        "--http",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Relay::start(&args)
}

/// One client socket talking TURN to one server.
pub struct TurnClient {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    pub key: IntegrityKey,
    pub nonce: String,
    seq: u32,
}

impl TurnClient {
    pub fn new(server: SocketAddr, user: &str, pass: &str) -> TurnClient {
        let bind = if server.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        };
        let socket = UdpSocket::bind(bind).expect("bind client");
        socket.set_read_timeout(Some(RESPONSE)).expect("timeout");
        TurnClient {
            socket,
            server,
            user: user.into(),
            key: IntegrityKey::long_term_md5(user, REALM, pass),
            nonce: String::new(),
            seq: 0,
        }
    }

    pub fn tid(&mut self) -> TransactionId {
        self.seq += 1;
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&self.seq.to_be_bytes());
        t[4..8].copy_from_slice(&std::process::id().to_be_bytes());
        TransactionId::new(t)
    }

    /// A request with `attrs`, signed unless the nonce is still unknown.
    pub fn build(&mut self, method: Method, attrs: &[Attribute<'_>]) -> Vec<u8> {
        let tid = self.tid();
        let mut b = MessageBuilder::new(Class::Request, method, tid);
        for a in attrs {
            b.add(a).expect("attribute");
        }
        if !self.nonce.is_empty() {
            b.add(&Attribute::Username(&self.user)).expect("username");
            b.add(&Attribute::Realm(REALM)).expect("realm");
            b.add(&Attribute::Nonce(&self.nonce)).expect("nonce");
            b.add_integrity(&self.key);
        }
        b.finish_with_fingerprint()
    }

    /// Sends `packet` and waits for the response to it (skipping other
    /// datagrams); `None` if none comes.
    pub fn exchange(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let tid = Message::decode(packet).ok().map(|m| m.transaction_id());
        for _ in 0..3 {
            self.socket.send_to(packet, self.server).expect("send");
            let deadline = Instant::now() + RESPONSE;
            while Instant::now() < deadline {
                let mut buf = vec![0u8; 2048];
                let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                    break;
                };
                buf.truncate(n);
                if let Ok(m) = Message::decode(&buf)
                    && Some(m.transaction_id()) == tid
                {
                    return Some(buf);
                }
            }
        }
        None
    }

    /// Sends a request, doing the 401/438 dance once; returns the response.
    pub fn request(&mut self, method: Method, attrs: &[Attribute<'_>]) -> Vec<u8> {
        for _ in 0..3 {
            let packet = self.build(method, attrs);
            let response = self.exchange(&packet).expect("a response");
            let m = Message::decode(&response).expect("response decodes");
            if matches!(m.error_code().map(|e| e.code), Some(401 | 438))
                && let Some(Attribute::Nonce(n)) = m.get(AttributeType::NONCE)
                && *n != self.nonce
            {
                self.nonce = n.to_string();
                continue;
            }
            return response;
        }
        panic!("the credentials dance did not settle");
    }

    /// Allocates; returns the relayed addresses (panics on an error response).
    pub fn allocate(&mut self, attrs: &[Attribute<'_>]) -> Vec<SocketAddr> {
        let mut all = vec![Attribute::RequestedTransport(17)];
        all.extend_from_slice(attrs);
        let response = self.request(Method::ALLOCATE, &all);
        let m = Message::decode(&response).expect("decodes");
        assert_eq!(
            m.class(),
            Class::SuccessResponse,
            "allocate: {:?}",
            m.error_code()
        );
        m.verify_integrity(&self.key).expect("response integrity");
        m.attributes()
            .iter()
            .filter_map(|a| match a {
                Attribute::XorRelayedAddress(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    /// Asks for a permission to `peer`; returns the error code (`None`: granted).
    pub fn create_permission(&mut self, peer: SocketAddr) -> Option<u16> {
        code(&self.request(
            Method::CREATE_PERMISSION,
            &[Attribute::XorPeerAddress(peer)],
        ))
    }

    /// Sends `data` toward `peer` in a Send indication.
    pub fn send_data(&self, peer: SocketAddr, data: &[u8]) {
        self.socket
            .send_to(&send_indication(peer, data), self.server)
            .expect("send indication");
    }

    /// Receives one datagram within `wait`.
    pub fn receive(&self, wait: Duration) -> Option<Vec<u8>> {
        self.socket.set_read_timeout(Some(wait)).ok()?;
        let mut buf = vec![0u8; 2048];
        let (n, _) = self.socket.recv_from(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

/// The error code of a response.
pub fn code(response: &[u8]) -> Option<u16> {
    Message::decode(response).ok()?.error_code().map(|e| e.code)
}

/// A Send indication.
pub fn send_indication(peer: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut b = MessageBuilder::new(Class::Indication, Method::SEND, TransactionId::new([5; 12]));
    b.add(&Attribute::XorPeerAddress(peer)).expect("peer");
    b.add(&Attribute::Data(data)).expect("data");
    b.finish()
}

/// A peer socket that must (or must not) receive something.
pub fn peer_socket(bind: &str) -> UdpSocket {
    let s = UdpSocket::bind(bind).expect("bind peer");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    s
}

/// Reads `/metrics` from the relay's HTTP endpoint and returns the value of
/// the first sample line starting with `prefix`.
pub fn metric(relay: &Relay, prefix: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let http = relay.http?;
    let mut stream = std::net::TcpStream::connect_timeout(&http, RESPONSE).ok()?;
    stream.set_read_timeout(Some(RESPONSE)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}
