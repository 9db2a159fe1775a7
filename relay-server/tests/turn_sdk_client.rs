//! Our own TURN client (the SDK's sans-IO `tsunagi::relay::Client`, through its
//! public API only) against `tsunagi-relay`: allocate, permission, Send, channel,
//! data both ways, with static and REST credentials.

// Test code: failing loudly, with the reason, is the point.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::turn::{peer_socket, start_turn};
use tsunagi::relay::{Client, Config, Credentials, Event, rest_credentials};

/// Drives the client on a real socket until `stop` accepts an event; `None` after 10 s.
fn run_until(
    client: &mut Client,
    socket: &UdpSocket,
    mut stop: impl FnMut(&Event) -> bool,
) -> Option<Event> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 2048];
    while Instant::now() < deadline {
        while let Some(t) = client.poll_transmit() {
            socket.send_to(&t.bytes, t.to).unwrap();
        }
        while let Some(event) = client.poll_event() {
            if stop(&event) {
                return Some(event);
            }
        }
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            client.handle_input(Instant::now(), from, &buf[..n]);
        }
        client.handle_timeout(Instant::now());
    }
    None
}

/// Drives the client until `done` accepts an event; a failure panics.
fn drive(client: &mut Client, socket: &UdpSocket, mut done: impl FnMut(&Event) -> bool) -> Event {
    run_until(client, socket, |event| {
        if let Event::Failed { reason } | Event::AllocationLost { reason } = event {
            panic!("client failed: {reason}");
        }
        done(event)
    })
    .unwrap_or_else(|| panic!("no expected event within 10 s"))
}

/// `peer` sends `bytes` to the client's `relayed` address; the client must deliver
/// them as data from `peer`.
fn peer_sends(
    client: &mut Client,
    socket: &UdpSocket,
    peer: &UdpSocket,
    relayed: SocketAddr,
    bytes: &[u8],
) {
    peer.send_to(bytes, relayed).unwrap();
    let event = drive(client, socket, |e| matches!(e, Event::Data { .. }));
    assert_eq!(
        event,
        Event::Data {
            peer: peer.local_addr().unwrap(),
            bytes: bytes.to_vec()
        }
    );
}

/// A peer socket the allocated `client` has a permission for, and its address.
fn permitted_peer(client: &mut Client, socket: &UdpSocket) -> (UdpSocket, SocketAddr) {
    let peer = peer_socket("127.0.0.1:0");
    let peer_addr = peer.local_addr().unwrap();
    client
        .create_permission(Instant::now(), peer_addr.ip())
        .unwrap();
    drive(client, socket, |e| {
        matches!(e, Event::PermissionCreated { .. })
    });
    (peer, peer_addr)
}

fn exercise(server: SocketAddr, credentials: Credentials) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut client = Client::new(Config::new(server, credentials), Instant::now());
    let Event::Allocated { relayed, .. } = drive(&mut client, &socket, |e| {
        matches!(e, Event::Allocated { .. })
    }) else {
        unreachable!()
    };
    let relayed = relayed[0];
    let (peer, peer_addr) = permitted_peer(&mut client, &socket);
    client
        .send_to(Instant::now(), peer_addr, b"via send")
        .unwrap();
    while let Some(t) = client.poll_transmit() {
        socket.send_to(&t.bytes, t.to).unwrap();
    }
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"via send"[..], relayed));
    peer_sends(&mut client, &socket, &peer, relayed, b"reply");

    client.bind_channel(Instant::now(), peer_addr).unwrap();
    drive(&mut client, &socket, |e| {
        matches!(e, Event::ChannelBound { .. })
    });
    client
        .send_to(Instant::now(), peer_addr, b"via channel")
        .unwrap();
    while let Some(t) = client.poll_transmit() {
        assert_eq!(t.bytes[0] & 0xC0, 0x40, "sent as ChannelData");
        socket.send_to(&t.bytes, t.to).unwrap();
    }
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"via channel");
    peer_sends(&mut client, &socket, &peer, relayed, b"channel reply");

    client.release(Instant::now());
    drive(&mut client, &socket, |e| matches!(e, Event::Released));
}

#[test]
fn sdk_client_with_static_and_rest_credentials() {
    let relay = start_turn(
        "127.0.0.1:0",
        &["--user", "alice:pw", "--auth-secret", "s3cret"],
    );
    let server = relay.addresses[0];
    exercise(server, Credentials::new("alice", "pw"));
    let now = common::unix_now();
    exercise(
        server,
        rest_credentials("s3cret", "player", Duration::from_secs(600), now),
    );
    assert_eq!(
        common::turn::metric(&relay, "tsunagi_relay_allocations "),
        Some(0)
    );
}

/// Like [`drive`] until allocated, but returns a failure as the event instead of panicking.
fn drive_to_end(client: &mut Client, socket: &UdpSocket) -> Event {
    run_until(client, socket, |e| {
        matches!(e, Event::Allocated { .. } | Event::Failed { .. })
    })
    .unwrap_or_else(|| panic!("neither allocated nor failed within 10 s"))
}

#[test]
fn a_restarted_client_on_the_same_address_replaces_its_stale_allocation() {
    // A game restarted behind a NAT that hands it the same external port: the
    // relay sees the new process on the 5-tuple of the old one, which never
    // released its allocation.
    let relay = start_turn("127.0.0.1:0", &["--auth-secret", "s3cret"]);
    let server = relay.addresses[0];
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let now = common::unix_now();
    let token = |name: &str, secs: u64| {
        Config::new(
            server,
            rest_credentials("s3cret", name, Duration::from_secs(secs), now),
        )
    };
    let mut first = Client::new(token("player", 600), Instant::now());
    assert!(matches!(
        drive_to_end(&mut first, &socket),
        Event::Allocated { .. }
    ));
    drop(first); // dies without a Refresh with LIFETIME 0
    // Another user on that 5-tuple is still refused (437).
    let mut other = Client::new(token("someone-else", 600), Instant::now());
    let event = drive_to_end(&mut other, &socket);
    assert!(matches!(event, Event::Failed { .. }), "{event:?}");
    // The same player with a fresh token gets a new allocation, which works.
    let mut second = Client::new(token("player", 900), Instant::now());
    let event = drive_to_end(&mut second, &socket);
    let Event::Allocated { relayed, .. } = event else {
        panic!("the restarted client was refused: {event:?}");
    };
    let relayed = relayed[0];
    let (peer, _) = permitted_peer(&mut second, &socket);
    peer_sends(&mut second, &socket, &peer, relayed, b"hello again");
}
