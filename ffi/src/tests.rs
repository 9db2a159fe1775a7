//! Unit tests of the C ABI, called from Rust exactly as C would call it.
#![allow(clippy::unwrap_used)]

use std::ffi::{CStr, CString, c_char};
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use super::*;
use crate::tsunagi_result::*;

fn last_error() -> String {
    // SAFETY: tsunagi_last_error always returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(tsunagi_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn loopback_endpoint() -> *mut tsunagi_endpoint {
    let config = tsunagi_config_new();
    let mut ep = null_mut();
    // SAFETY: config is fresh; ep is a valid out pointer.
    unsafe {
        assert_eq!(tsunagi_config_set_loopback_only(config, true), TSUNAGI_OK);
        assert_eq!(tsunagi_endpoint_create(config, &mut ep), TSUNAGI_OK);
        tsunagi_config_free(config);
    }
    ep
}

fn text(f: impl Fn(*mut c_char, usize, *mut usize) -> tsunagi_result) -> String {
    let mut needed = 0;
    assert_eq!(f(null_mut(), 0, &mut needed), TSUNAGI_ERR_BUFFER_TOO_SMALL);
    let mut buf = vec![0 as c_char; needed];
    assert_eq!(f(buf.as_mut_ptr(), buf.len(), &mut needed), TSUNAGI_OK);
    // SAFETY: the call wrote a NUL-terminated string into buf.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn version_is_nul_terminated_and_matches_the_sdk() {
    // SAFETY: tsunagi_version returns a pointer to a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(tsunagi_version()) };
    assert_eq!(v.to_str().unwrap(), tsunagi::VERSION);
}

#[test]
fn null_pointers_and_bad_arguments_are_rejected_with_a_message() {
    // SAFETY: every pointer passed is NULL or valid; rejecting them is the point.
    unsafe {
        assert_eq!(
            tsunagi_endpoint_create(null(), null_mut()),
            TSUNAGI_ERR_NULL_POINTER
        );
        assert!(last_error().contains("`out` is NULL"), "{}", last_error());
        assert_eq!(
            tsunagi_endpoint_pump(null(), null_mut()),
            TSUNAGI_ERR_NULL_POINTER
        );
        assert_eq!(
            tsunagi_config_set_bind_port(null_mut(), 1),
            TSUNAGI_ERR_NULL_POINTER
        );
        tsunagi_endpoint_destroy(null_mut());
        tsunagi_config_free(null_mut());

        let config = tsunagi_config_new();
        assert_eq!(tsunagi_config_set_ipv4_only(config, true), TSUNAGI_OK);
        assert_eq!(
            tsunagi_config_set_ipv6_only(config, true),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("cannot both be on"));
        assert_eq!(
            tsunagi_config_set_log_level(config, 9),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            tsunagi_config_set_identity_bytes(config, [1u8; 5].as_ptr(), 5),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            tsunagi_config_set_identity_bytes(config, null(), 32),
            TSUNAGI_ERR_NULL_POINTER
        );
        let bad_token = CString::new("tsunagi1.???").unwrap();
        assert_eq!(
            tsunagi_config_set_relay_token(config, bad_token.as_ptr()),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        let not_host_port = CString::new("relay.example.net").unwrap();
        assert_eq!(
            tsunagi_config_set_relay_server(config, not_host_port.as_ptr()),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("host:port"), "{}", last_error());
        let server = CString::new("relay.example.net:3478").unwrap();
        assert_eq!(
            tsunagi_config_set_relay_server(config, server.as_ptr()),
            TSUNAGI_OK
        );
        tsunagi_config_free(config);

        let name = CStr::from_ptr(tsunagi_result_name(-7)).to_str().unwrap();
        assert_eq!(name, "TSUNAGI_ERR_QUEUE_FULL");
        let name = CStr::from_ptr(tsunagi_result_name(12345)).to_str().unwrap();
        assert_eq!(name, "TSUNAGI_UNKNOWN_RESULT");
    }
}

#[test]
fn a_known_nat_timer_reaches_the_path_layer() {
    let config = tsunagi_config_new();
    // SAFETY: config is fresh and freed once at the end.
    unsafe {
        assert_eq!(
            tsunagi_config_set_nat_timer_ms(config, 500),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("NAT timer"), "{}", last_error());
        assert_eq!(tsunagi_config_set_nat_timer_ms(config, 10_000), TSUNAGI_OK);
        let session = (*config).lock().session_config().unwrap();
        assert_eq!(session.paths.nat_timer, Some(Duration::from_secs(10)));
        assert_eq!(tsunagi_config_set_nat_timer_ms(config, 0), TSUNAGI_OK);
        let session = (*config).lock().session_config().unwrap();
        assert_eq!(session.paths.nat_timer, None);
        tsunagi_config_free(config);
    }
}

#[test]
fn identity_round_trips_through_bytes_and_text() {
    let ep = loopback_endpoint();
    // SAFETY: ep is live until destroyed; buffers are sized as passed.
    unsafe {
        let id = text(|b, l, n| tsunagi_endpoint_peer_id(ep, b, l, n));
        assert!(id.starts_with("tsu") && id.len() < TSUNAGI_PEER_ID_SIZE);
        let mut secret = [0u8; 32];
        assert_eq!(
            tsunagi_endpoint_export_identity_bytes(ep, secret.as_mut_ptr(), 31),
            TSUNAGI_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(
            tsunagi_endpoint_export_identity_bytes(ep, secret.as_mut_ptr(), 32),
            TSUNAGI_OK
        );
        let secret_text = CString::new(text(|b, l, n| {
            tsunagi_endpoint_export_identity_text(ep, b, l, n)
        }))
        .unwrap();
        tsunagi_endpoint_destroy(ep);

        for from_text in [false, true] {
            let config = tsunagi_config_new();
            tsunagi_config_set_loopback_only(config, true);
            if from_text {
                assert_eq!(
                    tsunagi_config_set_identity_text(config, secret_text.as_ptr()),
                    TSUNAGI_OK
                );
            } else {
                assert_eq!(
                    tsunagi_config_set_identity_bytes(config, secret.as_ptr(), 32),
                    TSUNAGI_OK
                );
            }
            let mut again = null_mut();
            assert_eq!(tsunagi_endpoint_create(config, &mut again), TSUNAGI_OK);
            tsunagi_config_free(config);
            assert_eq!(text(|b, l, n| tsunagi_endpoint_peer_id(again, b, l, n)), id);
            tsunagi_endpoint_destroy(again);
        }
    }
}

/// Polls `ep` until an event of `kind` arrives; returns it with its payload.
fn wait_for(ep: *mut tsunagi_endpoint, kind: tsunagi_event_kind) -> (tsunagi_event, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 4];
    loop {
        let mut event = tsunagi_event::empty();
        // SAFETY: ep is live; event and buf are valid for the sizes given.
        let r = unsafe {
            tsunagi_endpoint_pump(ep, null_mut());
            tsunagi_endpoint_poll_event(ep, &mut event, buf.as_mut_ptr(), buf.len())
        };
        match r {
            TSUNAGI_OK if event.kind == kind => return (event, buf[..event.payload_len].to_vec()),
            TSUNAGI_OK => {}
            TSUNAGI_ERR_BUFFER_TOO_SMALL => {
                assert_eq!(event.truncated, 1);
                buf.resize(event.payload_len, 0);
            }
            TSUNAGI_NO_EVENT => std::thread::sleep(Duration::from_millis(2)),
            other => panic!("poll_event: {other:?}: {}", last_error()),
        }
        assert!(Instant::now() < deadline, "no {kind:?} within 20 s");
    }
}

#[test]
fn two_endpoints_exchange_messages_and_datagrams_on_loopback() {
    let (a, b) = (loopback_endpoint(), loopback_endpoint());
    // SAFETY: a and b are live until destroyed; every string is NUL-terminated.
    unsafe {
        let b_id = CString::new(text(|p, l, n| tsunagi_endpoint_peer_id(b, p, l, n))).unwrap();
        let b_addrs =
            CString::new(text(|p, l, n| tsunagi_endpoint_local_addresses(b, p, l, n))).unwrap();
        let bad = CString::new("not-an-address").unwrap();
        assert_eq!(
            tsunagi_endpoint_connect(a, b_id.as_ptr(), bad.as_ptr()),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            tsunagi_endpoint_send_message(a, b_id.as_ptr(), 0, b"x".as_ptr(), 1),
            TSUNAGI_ERR_NOT_CONNECTED
        );
        assert_eq!(
            tsunagi_endpoint_connect(a, b_id.as_ptr(), b_addrs.as_ptr()),
            TSUNAGI_OK
        );
        let (connected, _) = wait_for(a, tsunagi_event_kind::TSUNAGI_EVENT_CONNECTED);
        assert_eq!(connected.outgoing, 1);
        let (incoming, _) = wait_for(b, tsunagi_event_kind::TSUNAGI_EVENT_CONNECTED);
        let a_id = CStr::from_ptr(incoming.peer_id.as_ptr()).to_owned();

        let message = b"a reliable message longer than four bytes";
        assert_eq!(
            tsunagi_endpoint_send_message(a, b_id.as_ptr(), 3, message.as_ptr(), message.len()),
            TSUNAGI_OK
        );
        let (got, payload) = wait_for(b, tsunagi_event_kind::TSUNAGI_EVENT_MESSAGE);
        assert_eq!((got.channel, &payload[..]), (3, &message[..]));
        assert_eq!(CStr::from_ptr(got.peer_id.as_ptr()), a_id.as_c_str());
        assert_eq!(
            tsunagi_endpoint_send_message(a, b_id.as_ptr(), 999, message.as_ptr(), 1),
            TSUNAGI_ERR_NO_SUCH_CHANNEL
        );

        let mut limit = 0;
        assert_eq!(
            tsunagi_endpoint_datagram_limit(a, b_id.as_ptr(), &mut limit),
            TSUNAGI_OK
        );
        assert!(limit > 1000, "{limit}");
        let big = vec![0u8; 65536];
        assert_eq!(
            tsunagi_endpoint_send_datagram(a, b_id.as_ptr(), big.as_ptr(), big.len()),
            TSUNAGI_ERR_TOO_LARGE
        );
        assert_eq!(
            tsunagi_endpoint_send_datagram(a, b_id.as_ptr(), b"tick".as_ptr(), 4),
            TSUNAGI_OK
        );
        let (_, payload) = wait_for(b, tsunagi_event_kind::TSUNAGI_EVENT_DATAGRAM);
        assert_eq!(payload, b"tick");

        let mut stats = std::mem::zeroed::<tsunagi_stats>();
        assert_eq!(
            tsunagi_endpoint_stats(a, b_id.as_ptr(), &mut stats),
            TSUNAGI_OK
        );
        assert_eq!(stats.path, tsunagi_path_kind::TSUNAGI_PATH_DIRECT_IPV6);
        assert!(stats.bytes_sent > 0 && stats.datagram_limit > 0);

        assert_eq!(
            tsunagi_endpoint_disconnect(a, b_id.as_ptr(), c"bye".as_ptr()),
            TSUNAGI_OK
        );
        let (gone, reason) = wait_for(b, tsunagi_event_kind::TSUNAGI_EVENT_DISCONNECTED);
        assert_eq!(
            gone.reason,
            tsunagi_disconnect_reason::TSUNAGI_DISCONNECT_CLOSED_BY_PEER
        );
        assert!(String::from_utf8_lossy(&reason).contains("bye"));
        tsunagi_endpoint_destroy(a);
        tsunagi_endpoint_destroy(b);
    }
}

/// A relay or rendezvous server without credentials fails creation with a message,
/// and connecting by peer id needs a rendezvous server.
#[test]
fn relay_and_rendezvous_need_credentials() {
    let server = CString::new("127.0.0.1:3478").unwrap();
    // SAFETY: every pointer passed is NULL or valid.
    unsafe {
        let config = tsunagi_config_new();
        tsunagi_config_set_loopback_only(config, true);
        assert_eq!(
            tsunagi_config_set_relay_server(config, server.as_ptr()),
            TSUNAGI_OK
        );
        let mut ep = null_mut();
        assert_eq!(
            tsunagi_endpoint_create(config, &mut ep),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        assert!(ep.is_null());
        assert!(
            last_error().contains("without credentials"),
            "{}",
            last_error()
        );
        tsunagi_config_free(config);

        let config = tsunagi_config_new();
        tsunagi_config_set_loopback_only(config, true);
        let (user, pass) = (CString::new("u").unwrap(), CString::new("p").unwrap());
        assert_eq!(
            tsunagi_config_set_relay_credentials(config, user.as_ptr(), pass.as_ptr()),
            TSUNAGI_OK
        );
        assert_eq!(
            tsunagi_config_set_rendezvous_server(config, server.as_ptr()),
            TSUNAGI_OK
        );
        assert_eq!(
            tsunagi_endpoint_create(config, &mut ep),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("without a token"), "{}", last_error());
        tsunagi_config_free(config);

        let ep = loopback_endpoint();
        let id = CString::new(text(|b, l, n| tsunagi_endpoint_peer_id(ep, b, l, n))).unwrap();
        assert_eq!(
            tsunagi_endpoint_connect_peer(ep, id.as_ptr()),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        assert!(
            last_error().contains("no rendezvous server"),
            "{}",
            last_error()
        );
        let mut needed = 0;
        assert_eq!(
            tsunagi_endpoint_relayed_addresses(ep, null_mut(), 0, &mut needed),
            TSUNAGI_ERR_INVALID_ARGUMENT
        );
        tsunagi_endpoint_destroy(ep);
    }
}

/// tsunagi-relay on 127.0.0.1 (in-process) with user `u:p`, loopback peers allowed.
fn start_tsunagi_relay() -> tsunagi_relay::udp::Running {
    let turn = tsunagi_relay::TurnConfig {
        users: std::collections::HashMap::from([("u".to_owned(), "p".to_owned())]),
        relay_ips: vec!["127.0.0.1".parse().unwrap()],
        relay_ports: None,
        allowed_peers: vec!["127.0.0.0/8".parse().unwrap()],
        max_bytes_per_sec: 0,
        ..tsunagi_relay::TurnConfig::default()
    };
    let options = tsunagi_relay::udp::Options {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        threads: 1,
        turn: Some(turn),
        ..tsunagi_relay::udp::Options::default()
    };
    tsunagi_relay::udp::start(&options).expect("tsunagi-relay did not start on loopback")
}

/// Two endpoints created with the relay configured each get a TURN allocation on it.
#[test]
fn endpoints_with_a_relay_get_an_allocation() {
    let relay = start_tsunagi_relay();
    let server = CString::new(relay.local_addresses()[0].to_string()).unwrap();
    let (user, pass) = (CString::new("u").unwrap(), CString::new("p").unwrap());
    // SAFETY: every pointer passed is valid; endpoints are destroyed once.
    unsafe {
        let config = tsunagi_config_new();
        tsunagi_config_set_loopback_only(config, true);
        tsunagi_config_set_ipv4_only(config, true);
        assert_eq!(
            tsunagi_config_set_relay_server(config, server.as_ptr()),
            TSUNAGI_OK
        );
        assert_eq!(
            tsunagi_config_set_relay_credentials(config, user.as_ptr(), pass.as_ptr()),
            TSUNAGI_OK
        );
        let mut endpoints = [null_mut(), null_mut()];
        for ep in &mut endpoints {
            assert_eq!(
                tsunagi_endpoint_create(config, ep),
                TSUNAGI_OK,
                "{}",
                last_error()
            );
        }
        tsunagi_config_free(config);

        for &ep in &endpoints {
            let deadline = Instant::now() + Duration::from_secs(10);
            let relayed = loop {
                let mut buf = [0 as c_char; 256];
                assert_eq!(
                    tsunagi_endpoint_relayed_addresses(ep, buf.as_mut_ptr(), buf.len(), null_mut()),
                    TSUNAGI_OK
                );
                let text = CStr::from_ptr(buf.as_ptr()).to_str().unwrap().to_owned();
                if !text.is_empty() {
                    break text;
                }
                assert!(Instant::now() < deadline, "no relay allocation within 10 s");
                std::thread::sleep(Duration::from_millis(20));
            };
            let addr: std::net::SocketAddr = relayed.split(',').next().unwrap().parse().unwrap();
            assert!(addr.ip().is_loopback(), "{relayed}");
        }
        for ep in endpoints {
            tsunagi_endpoint_destroy(ep);
        }
    }
    relay.shutdown(Duration::from_secs(1));
}
