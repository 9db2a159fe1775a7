//! `tsunagi-relay` on ::1 with a single address (no RFC 5780), checked with our
//! codec and with coturn's `turnutils_stunclient`.

// Test code: failing loudly, with the reason, is the point.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{Relay, binding_request, decode_response, exchange, run_coturn_tool};
use tsunagi::stun::{Attribute, AttributeType, Class};

#[test]
fn ipv6_binding_and_no_rfc5780() {
    let relay = Relay::start(&["--listen", "[::1]:0"]);
    let server = relay.addresses[0];
    assert!(server.is_ipv6());
    let socket = UdpSocket::bind("[::1]:0").unwrap();
    let me = socket.local_addr().unwrap();

    let (request, tid) = binding_request(&[], 1);
    let (bytes, from) = exchange(&socket, server, &request);
    let m = decode_response(&bytes, tid);
    assert_eq!(from, server);
    assert_eq!(m.class(), Class::SuccessResponse);
    assert_eq!(m.xor_mapped_address(), Some(me));
    assert!(m.get(AttributeType::OTHER_ADDRESS).is_none());

    // No alternate address: a change cannot be made, so CHANGE-REQUEST is unknown.
    let change = Attribute::ChangeRequest {
        change_ip: true,
        change_port: true,
    };
    let (request, tid) = binding_request(&[change], 2);
    let (bytes, _) = exchange(&socket, server, &request);
    let m = decode_response(&bytes, tid);
    assert_eq!(m.error_code().map(|e| e.code), Some(420));

    let args = vec![
        "-p".to_string(),
        server.port().to_string(),
        "::1".to_string(),
    ];
    let out = run_coturn_tool("turnutils_stunclient", &args, Duration::from_secs(30));
    println!("{out}");
    assert!(
        out.contains("IPv6. UDP reflexive addr: ::1:"),
        "no IPv6 reflexive address in:\n{out}"
    );
}

#[test]
fn dual_stack_listen_addresses() {
    let relay = Relay::start(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
    assert_eq!(relay.addresses.len(), 2);
    for server in relay.addresses.clone() {
        let bind = if server.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        let socket = UdpSocket::bind(bind).unwrap();
        let (request, tid) = binding_request(&[], 3);
        let (bytes, from) = exchange(&socket, server, &request);
        assert_eq!(from, server);
        let m = decode_response(&bytes, tid);
        assert_eq!(m.xor_mapped_address(), Some(socket.local_addr().unwrap()));
    }
}
