//! `tsunagi-relay` on loopback with RFC 5780 (127.0.0.1 primary, 127.0.0.2
//! alternate), checked with our own codec and with coturn's tools.

// Test code: failing loudly, with the reason, is the point.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{Relay, binding_request, decode_response, exchange, receive, run_coturn_tool};
use tsunagi::stun::{Attribute, AttributeType, Class};

/// The relay with RFC 5780 on kernel-chosen ports, and its four addresses.
struct Rfc5780Relay {
    _relay: Relay,
    primary: SocketAddr,
    /// Primary IP, alternate port.
    pa: SocketAddr,
    /// Alternate IP, primary port.
    ap: SocketAddr,
    /// Alternate IP, alternate port.
    aa: SocketAddr,
}

fn start() -> Rfc5780Relay {
    let relay = Relay::start(&["--listen", "127.0.0.1:0", "--rfc5780-alt", "127.0.0.2:0"]);
    let a = &relay.addresses;
    assert_eq!(a.len(), 4, "four RFC 5780 sockets, got {a:?}");
    let primary = a[0];
    let alt_port = a[1].port();
    let ip2 = "127.0.0.2".parse().unwrap();
    let expect = |ip, port| SocketAddr::new(ip, port);
    let (pa, ap, aa) = (
        expect(primary.ip(), alt_port),
        expect(ip2, primary.port()),
        expect(ip2, alt_port),
    );
    for x in [pa, ap, aa] {
        assert!(a.contains(&x), "{x} not among {a:?}");
    }
    Rfc5780Relay {
        _relay: relay,
        primary,
        pa,
        ap,
        aa,
    }
}

fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

#[test]
fn binding_on_each_socket_reports_mapping_origin_and_other_address() {
    let r = start();
    let socket = client();
    let me = socket.local_addr().unwrap();
    for (local, other) in [
        (r.primary, r.aa),
        (r.pa, r.ap),
        (r.ap, r.pa),
        (r.aa, r.primary),
    ] {
        let (request, tid) = binding_request(&[], 1);
        let (bytes, from) = exchange(&socket, local, &request);
        let m = decode_response(&bytes, tid);
        assert_eq!(m.class(), Class::SuccessResponse);
        assert_eq!(from, local, "answered from the socket the request reached");
        assert_eq!(m.xor_mapped_address(), Some(me));
        assert_eq!(
            m.get(AttributeType::RESPONSE_ORIGIN),
            Some(&Attribute::ResponseOrigin(local))
        );
        assert_eq!(
            m.get(AttributeType::OTHER_ADDRESS),
            Some(&Attribute::OtherAddress(other))
        );
    }
}

#[test]
fn change_request_is_answered_from_the_changed_address() {
    let r = start();
    let socket = client();
    for (change_ip, change_port, source) in [
        (true, false, r.ap),
        (false, true, r.pa),
        (true, true, r.aa),
        (false, false, r.primary),
    ] {
        let change = Attribute::ChangeRequest {
            change_ip,
            change_port,
        };
        let (request, tid) = binding_request(&[change], 2);
        let (bytes, from) = exchange(&socket, r.primary, &request);
        let m = decode_response(&bytes, tid);
        assert_eq!(
            from, source,
            "change_ip={change_ip} change_port={change_port}"
        );
        assert_eq!(
            m.get(AttributeType::RESPONSE_ORIGIN),
            Some(&Attribute::ResponseOrigin(source))
        );
    }
}

#[test]
fn response_port_padding_and_errors() {
    let r = start();
    let socket = client();
    let me = socket.local_addr().unwrap();

    // RESPONSE-PORT: the answer goes to another port of the same IP.
    let other = client();
    let port = other.local_addr().unwrap().port();
    let (request, tid) = binding_request(&[Attribute::ResponsePort(port)], 3);
    socket.send_to(&request, r.primary).unwrap();
    let (bytes, _) = receive(&other).expect("response on the RESPONSE-PORT socket");
    assert_eq!(decode_response(&bytes, tid).xor_mapped_address(), Some(me));

    // PADDING: mirrored.
    let pad = vec![0u8; 1000];
    let (request, tid) = binding_request(&[Attribute::Padding(&pad)], 4);
    let (bytes, _) = exchange(&socket, r.primary, &request);
    let m = decode_response(&bytes, tid);
    assert!(
        matches!(m.get(AttributeType::PADDING), Some(Attribute::Padding(p)) if p.len() == 1000)
    );

    // Unknown comprehension-required attribute: 420 naming it.
    let unknown = Attribute::Unknown {
        typ: AttributeType(0x7ABC),
        value: b"?",
    };
    let (request, tid) = binding_request(&[unknown], 5);
    let (bytes, _) = exchange(&socket, r.primary, &request);
    let m = decode_response(&bytes, tid);
    assert_eq!(m.error_code().map(|e| e.code), Some(420));
    assert_eq!(
        m.get(AttributeType::UNKNOWN_ATTRIBUTES),
        Some(&Attribute::UnknownAttributes(vec![AttributeType(0x7ABC)]))
    );

    // Non-STUN is ignored; the server still answers afterwards.
    socket.send_to(b"\x16\x03\x01 not stun", r.primary).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        socket.recv_from(&mut [0u8; 64]).is_err(),
        "answered non-STUN"
    );
    let (request, tid) = binding_request(&[], 6);
    let (bytes, _) = exchange(&socket, r.primary, &request);
    decode_response(&bytes, tid);
}

/// The lines of a coturn tool's output that mention `what`, for error messages.
fn lines_with<'a>(output: &'a str, what: &str) -> Vec<&'a str> {
    output.lines().filter(|l| l.contains(what)).collect()
}

#[test]
fn coturn_stunclient_sees_rfc5780_server() {
    let r = start();
    let args = vec![
        "-p".to_string(),
        r.primary.port().to_string(),
        "127.0.0.1".to_string(),
    ];
    let out = run_coturn_tool("turnutils_stunclient", &args, Duration::from_secs(30));
    println!("{out}");
    assert!(
        out.contains("UDP reflexive addr: 127.0.0.1:"),
        "no reflexive address in:\n{out}"
    );
    let origin = format!("Response origin: : {}", r.primary);
    assert!(
        out.contains(&origin),
        "expected `{origin}`, got {:?}",
        lines_with(&out, "origin")
    );
    let other = format!("Other addr: : {}", r.aa);
    assert!(
        out.contains(&other),
        "expected `{other}`, got {:?}",
        lines_with(&out, "Other")
    );
    // Its CHANGE-REQUEST probe is answered from the alternate IP and port.
    let changed = format!("Response origin: : {}", r.aa);
    assert!(
        out.contains(&changed),
        "no answer from {}: {:?}",
        r.aa,
        lines_with(&out, "origin")
    );
}

#[test]
fn coturn_natdiscovery_finds_no_nat_on_loopback() {
    let r = start();
    let port = r.primary.port().to_string();
    for extra in [&[][..], &["-P"][..]] {
        let mut args: Vec<String> = vec!["-m".into(), "-f".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["-p".to_string(), port.clone(), "127.0.0.1".to_string()]);
        let out = run_coturn_tool("turnutils_natdiscovery", &args, Duration::from_secs(60));
        println!("{out}");
        // Loopback has no NAT: both behaviours are endpoint-independent.
        assert!(
            out.contains("NAT with Endpoint Independent Mapping!"),
            "mapping ({args:?}): {:?}",
            lines_with(&out, "NAT")
        );
        assert!(
            out.contains("NAT with Endpoint Independent Filtering!"),
            "filtering ({args:?}): {:?}",
            lines_with(&out, "NAT")
        );
    }
}
