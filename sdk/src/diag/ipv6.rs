//! Native IPv6: does this machine have a global IPv6 address, does the STUN server
//! answer over IPv6, does the server see the local address unchanged (no NAT66), and
//! how does the IPv6 firewall filter unsolicited inbound packets (RFC 5780 §4.4 with
//! CHANGE-REQUEST against the server's alternate address and port).
//!
//! Home routers (RFC 6092) normally filter inbound IPv6 like a port-restricted NAT
//! does (address-and-port-dependent), so native IPv6 still needs hole punching, but
//! never port prediction: the address and port are the local ones.
//!
//! ```no_run
//! use tsunagi::diag::ipv6::{self, Ipv6Options};
//! let findings = ipv6::probe(&Ipv6Options::new("[2001:db8::10]:3478".parse()?))?;
//! println!("IPv6 reachable: {}", findings.reachable);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::report::{Behaviour, Ipv6Report};
use crate::stun::{
    Attribute, AttributeType, Class, Message, MessageBuilder, Method, TransactionId,
};

/// How often a request is retransmitted while waiting for its response.
const RETRANSMIT: Duration = Duration::from_millis(200);

/// How the IPv6 probe is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Options {
    /// The STUN server's IPv6 address and port. Filtering is only measured when it
    /// implements RFC 5780 (it sends OTHER-ADDRESS).
    pub server: SocketAddr,
    /// How long one STUN transaction may take (requests are resent every 200 ms).
    pub timeout: Duration,
}

impl Ipv6Options {
    /// Options for `server` with a one-second transaction timeout.
    pub fn new(server: SocketAddr) -> Ipv6Options {
        Ipv6Options {
            server,
            timeout: Duration::from_secs(1),
        }
    }
}

/// What the IPv6 probe found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ipv6Findings {
    /// The local IPv6 address the system uses toward the server (`null`: no IPv6 route).
    pub local_address: Option<Ipv6Addr>,
    /// Whether that address is global unicast (not link-local, unique-local, loopback,
    /// multicast or IPv4-mapped). Documentation addresses (2001:db8::/32) count as
    /// global, so that the lab can use them.
    pub global: bool,
    /// Whether the STUN server answered over IPv6.
    pub reachable: bool,
    /// The address and port the server saw.
    pub mapped_address: Option<SocketAddr>,
    /// Whether the server saw another address or port than the local one (NAT66 or an
    /// IPv6 NPTv6/NAPT on the path); `null` when the server did not answer.
    pub translated: Option<bool>,
    /// The server's alternate address (RFC 5780 OTHER-ADDRESS), if it has one.
    pub server_other_address: Option<SocketAddr>,
    /// The filtering of unsolicited inbound IPv6 (RFC 4787 §5 terms); `null` when the
    /// server does not implement RFC 5780 or did not answer.
    pub filtering: Option<Behaviour>,
}

impl Ipv6Findings {
    /// The part of the findings that [`Report::ipv6`](super::Report::ipv6) holds.
    pub fn to_report(&self) -> Ipv6Report {
        Ipv6Report {
            reachable: Some(self.reachable),
            address: self.mapped_address.map(|a| a.ip()),
            filtering: self.filtering,
        }
    }
}

/// Why the IPv6 probe could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Ipv6Error {
    /// The server given is not an IPv6 address.
    #[error("the IPv6 probe needs the STUN server's IPv6 address, not {0}: pass its AAAA address")]
    NotIpv6(SocketAddr),
    /// No local UDP socket could be opened.
    #[error(
        "cannot open a UDP socket for the IPv6 probe: {0} (check that IPv6 is enabled in the kernel)"
    )]
    Socket(#[source] std::io::Error),
}

/// Whether `a` is a global unicast address (see [`Ipv6Findings::global`]).
pub fn is_global(a: Ipv6Addr) -> bool {
    let first = a.segments()[0];
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || first & 0xffc0 == 0xfe80 // link-local
        || first & 0xffc0 == 0xfec0 // site-local (deprecated)
        || first & 0xfe00 == 0xfc00 // unique local
        || a.to_ipv4_mapped().is_some()
        || a.segments()[..6] == [0; 6]) // IPv4-compatible (deprecated)
}

/// The local address the system would use to reach `server`, found by connecting a
/// UDP socket (nothing is sent). `None` when there is no IPv6 route.
pub fn local_address_toward(server: SocketAddr) -> Option<Ipv6Addr> {
    let sock = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).ok()?;
    sock.connect(server).ok()?;
    match sock.local_addr().ok()?.ip() {
        IpAddr::V6(a) if !a.is_unspecified() => Some(a),
        _ => None,
    }
}

/// Runs the IPv6 probe. Blocking; takes at most about three transaction timeouts.
/// Everything the network does (no route, no answer, filtering) is a finding, not an
/// error.
pub fn probe(options: &Ipv6Options) -> Result<Ipv6Findings, Ipv6Error> {
    let server = options.server;
    if !server.is_ipv6() {
        return Err(Ipv6Error::NotIpv6(server));
    }
    let mut f = Ipv6Findings {
        local_address: local_address_toward(server),
        ..Ipv6Findings::default()
    };
    f.global = f.local_address.is_some_and(is_global);
    let Some(local_ip) = f.local_address else {
        tracing::debug!(%server, "no IPv6 route to the STUN server");
        return Ok(f);
    };
    let sock = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).map_err(Ipv6Error::Socket)?;
    let local_port = sock.local_addr().map_err(Ipv6Error::Socket)?.port();
    let Some(first) = transact(&sock, server, None, options.timeout) else {
        tracing::debug!(%server, "no STUN answer over IPv6");
        return Ok(f);
    };
    f.reachable = true;
    f.mapped_address = first.mapped;
    f.translated = first
        .mapped
        .map(|m| m != SocketAddr::new(local_ip.into(), local_port));
    f.server_other_address = first.other;
    let Some(other) = first.other else {
        tracing::debug!(%server, "server has no RFC 5780 alternate address; IPv6 filtering unknown");
        return Ok(f);
    };
    // RFC 5780 §4.4 test II: answer from the other address and port.
    match transact(&sock, server, Some((true, true)), options.timeout) {
        Some(r) if r.origin.ip() == other.ip() => {
            f.filtering = Some(Behaviour::EndpointIndependent);
            return Ok(f);
        }
        Some(r) => {
            tracing::debug!(origin = %r.origin, "server ignored CHANGE-REQUEST; filtering unknown");
            return Ok(f);
        }
        None => {}
    }
    // Test III: answer from the same address, other port.
    f.filtering = match transact(&sock, server, Some((false, true)), options.timeout) {
        Some(r) if r.origin.ip() == server.ip() && r.origin.port() != server.port() => {
            Some(Behaviour::AddressDependent)
        }
        Some(r) => {
            tracing::debug!(origin = %r.origin, "server ignored CHANGE-REQUEST; filtering unknown");
            None
        }
        None => Some(Behaviour::AddressAndPortDependent),
    };
    tracing::debug!(?f, "IPv6 probe");
    Ok(f)
}

/// The parts of a Binding success response the probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BindingAnswer {
    /// XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS).
    mapped: Option<SocketAddr>,
    /// OTHER-ADDRESS.
    other: Option<SocketAddr>,
    /// Where the response came from.
    origin: SocketAddr,
}

/// A Binding request, with CHANGE-REQUEST (change IP, change port) if given.
fn binding_request(tid: TransactionId, change: Option<(bool, bool)>) -> Vec<u8> {
    let mut b = MessageBuilder::new(Class::Request, Method::BINDING, tid);
    if let Some((change_ip, change_port)) = change {
        // Adding a fixed-size attribute to an empty message cannot fail.
        let _ = b.add(&Attribute::ChangeRequest {
            change_ip,
            change_port,
        });
    }
    b.finish_with_fingerprint()
}

/// Reads a Binding success response for `tid` from `buf`, received from `origin`.
fn parse_answer(buf: &[u8], tid: TransactionId, origin: SocketAddr) -> Option<BindingAnswer> {
    let m = Message::decode(buf).ok()?;
    if m.transaction_id() != tid || m.class() != Class::SuccessResponse {
        return None;
    }
    let other = match m.get(AttributeType::OTHER_ADDRESS) {
        Some(Attribute::OtherAddress(a)) => Some(*a),
        _ => None,
    };
    Some(BindingAnswer {
        mapped: m.xor_mapped_address().or_else(|| m.mapped_address()),
        other,
        origin,
    })
}

/// One Binding transaction on `sock`, resent every [`RETRANSMIT`] until `timeout`.
/// Responses may come from any address (CHANGE-REQUEST answers from the other one).
fn transact(
    sock: &UdpSocket,
    server: SocketAddr,
    change: Option<(bool, bool)>,
    timeout: Duration,
) -> Option<BindingAnswer> {
    let tid = TransactionId::new(random_bytes());
    let request = binding_request(tid, change);
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Err(e) = sock.send_to(&request, server) {
            tracing::debug!(%server, error = %e, "cannot send a STUN request over IPv6");
            return None;
        }
        let round = Instant::now() + left.min(RETRANSMIT);
        while let Some(wait) = round.checked_duration_since(Instant::now()) {
            sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .ok()?;
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            if let Some(a) = parse_answer(buf.get(..n)?, tid, from) {
                return Some(a);
            }
        }
    }
    None
}

/// `N` random bytes (transaction IDs, nonces), or time-derived ones if the system's
/// random source fails (only unpredictability is lost; answers are still matched).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (dst, src) in b.iter_mut().zip(nanos.to_le_bytes().into_iter().cycle()) {
            *dst = src;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_addresses() {
        for (a, global) in [
            ("2001:db8:1::10", true),
            ("2400:4050::1", true),
            ("fe80::1", false),
            ("fd00::1", false),
            ("::1", false),
            ("::", false),
            ("ff02::1", false),
            ("::ffff:192.0.2.1", false),
            ("::192.0.2.1", false),
        ] {
            assert_eq!(is_global(a.parse().unwrap()), global, "{a}");
        }
    }

    #[test]
    fn an_ipv4_server_is_refused() {
        let r = probe(&Ipv6Options::new("192.0.2.1:3478".parse().unwrap()));
        assert!(matches!(r, Err(Ipv6Error::NotIpv6(_))));
    }

    #[test]
    fn change_request_is_encoded() {
        let tid = TransactionId::new([3; 12]);
        let req = binding_request(tid, Some((true, false)));
        let m = Message::decode(&req).unwrap();
        assert!(matches!(
            m.get(AttributeType::CHANGE_REQUEST),
            Some(Attribute::ChangeRequest {
                change_ip: true,
                change_port: false
            })
        ));
        assert!(m.verify_fingerprint().is_ok());
    }

    #[test]
    fn answers_are_matched_by_transaction() {
        let tid = TransactionId::new([9; 12]);
        let mapped: SocketAddr = "[2001:db8:1::10]:5000".parse().unwrap();
        let other: SocketAddr = "[2001:db8::11]:3479".parse().unwrap();
        let mut b = MessageBuilder::new(Class::SuccessResponse, Method::BINDING, tid);
        b.add(&Attribute::XorMappedAddress(mapped)).unwrap();
        b.add(&Attribute::OtherAddress(other)).unwrap();
        let resp = b.finish();
        let origin: SocketAddr = "[2001:db8::10]:3478".parse().unwrap();
        let a = parse_answer(&resp, tid, origin).unwrap();
        assert_eq!(
            (a.mapped, a.other, a.origin),
            (Some(mapped), Some(other), origin)
        );
        assert!(parse_answer(&resp, TransactionId::new([8; 12]), origin).is_none());
        for n in 0..resp.len() {
            assert!(parse_answer(&resp[..n], tid, origin).is_none());
        }
        let request = binding_request(tid, None);
        assert!(parse_answer(&request, tid, origin).is_none());
        let f = Ipv6Findings {
            reachable: true,
            mapped_address: Some(mapped),
            filtering: Some(Behaviour::AddressAndPortDependent),
            ..Ipv6Findings::default()
        };
        let r = f.to_report();
        assert_eq!(r.address, Some(mapped.ip()));
        assert_eq!(r.reachable, Some(true));
    }

    #[test]
    fn a_silent_server_is_unreachable_not_an_error() {
        let quiet = match UdpSocket::bind("[::1]:0") {
            Ok(s) => s,
            Err(_) => return, // no IPv6 on this machine
        };
        let mut o = Ipv6Options::new(quiet.local_addr().unwrap());
        o.timeout = Duration::from_millis(100);
        let f = probe(&o).unwrap();
        assert_eq!(f.local_address, Some(Ipv6Addr::LOCALHOST));
        assert!(!f.global && !f.reachable && f.filtering.is_none());
    }
}
