//! A Rust TURN client from crates.io against `tsunagi-relay`: webrtc-rs's
//! `turn` crate (client side, 0.17.2, the newest release; it builds with our
//! toolchain and pulls in its own `stun`/`webrtc-util`, which share no crate
//! with ours in conflicting versions). It is a dev-dependency of this crate
//! only, so the relay binary and the SDK do not carry it.
//!
//! The client allocates with long-term credentials (a static `--user`) and with
//! REST credentials (minted by the crate's own `generate_long_term_credentials`,
//! username `EXPIRY`, and by ours, `EXPIRY:NAME`), creates a permission, sends
//! to a peer through the relay and gets the peer's replies from the relayed
//! address. webrtc-rs sends the first datagram to a peer as a Send indication
//! and binds a channel in the background, then switches to ChannelData; a
//! second peer without a channel gets its datagrams to the client as Data
//! indications. A tap between client and relay checks that each kind really
//! crossed it. A wrong password or a forged REST credential makes `allocate` fail
//! with the server's 401 and nothing is relayed. Loopback only, every wait
//! bounded (a few seconds in all).

// Test code: failing loudly, with the reason, is the point.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::turn::{metric, start_turn};
use tokio::time::timeout;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

/// How long one step (allocate, one send, one receive) may take on loopback.
const STEP: Duration = Duration::from_secs(5);
/// Round trips at least; more while the channel is not yet in use.
const ROUND_TRIPS: usize = 20;
/// Datagrams sent back to back each way after the round trips.
const BURST: usize = 64;

/// What kind of datagram crossed the tap, from its first two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    SendIndication,
    DataIndication,
    ChannelData,
    Other,
}

fn kind(bytes: &[u8]) -> Kind {
    match bytes {
        [0x00, 0x16, ..] => Kind::SendIndication,
        [0x00, 0x17, ..] => Kind::DataIndication,
        [first, ..] if (0x40..0x80).contains(first) => Kind::ChannelData,
        _ => Kind::Other,
    }
}

/// A UDP forwarder between the client and the relay that records the kind of
/// every datagram in each direction. Stops (and joins) on drop.
struct Tap {
    address: SocketAddr,
    to_server: Arc<Mutex<Vec<Kind>>>,
    to_client: Arc<Mutex<Vec<Kind>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Tap {
    fn start(server: SocketAddr) -> Tap {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(server).unwrap();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        let address = front.local_addr().unwrap();
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let to_server: Arc<Mutex<Vec<Kind>>> = Arc::default();
        let to_client: Arc<Mutex<Vec<Kind>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (front2, back2) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let upstream = {
            let (client, seen, stop) = (client.clone(), to_server.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = front.recv_from(&mut buf) {
                        *client.lock().unwrap() = Some(from);
                        seen.lock().unwrap().push(kind(&buf[..n]));
                        let _ = back.send(&buf[..n]);
                    }
                }
            })
        };
        let downstream = {
            let (client, seen, stop) = (client.clone(), to_client.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = back2.recv(&mut buf) {
                        seen.lock().unwrap().push(kind(&buf[..n]));
                        if let Some(to) = *client.lock().unwrap() {
                            let _ = front2.send_to(&buf[..n], to);
                        }
                    }
                }
            })
        };
        Tap {
            address,
            to_server,
            to_client,
            stop,
            threads: vec![upstream, downstream],
        }
    }

    fn count(seen: &Mutex<Vec<Kind>>, k: Kind) -> usize {
        seen.lock().unwrap().iter().filter(|&&x| x == k).count()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A webrtc-rs TURN client (listening) on a fresh loopback socket, talking to
/// `server`.
async fn client(server: SocketAddr, username: &str, password: &str) -> Client {
    let conn = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: username.into(),
        password: password.into(),
        // Taken from the server's 401 by the client.
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(conn),
        vnet: None,
    };
    let client = Client::new(config).await.unwrap();
    client.listen().await.unwrap();
    client
}

async fn recv(socket: &tokio::net::UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = timeout(STEP, socket.recv_from(&mut buf))
        .await
        .expect("peer received nothing within 5 s")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

async fn relay_recv(conn: &impl Conn) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = timeout(STEP, conn.recv_from(&mut buf))
        .await
        .expect("client received nothing through the relay within 5 s")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

/// Allocates, then relays round trips and bursts both ways; checks every
/// datagram arrived, from the right address, over Send indications and
/// ChannelData.
async fn exercise(server: SocketAddr, username: &str, password: &str) {
    let tap = Tap::start(server);
    let client = client(tap.address, username, password).await;
    let relay = timeout(STEP, client.allocate())
        .await
        .expect("allocate within 5 s")
        .unwrap_or_else(|e| panic!("allocate as {username}: {e}"));
    let relayed = relay.local_addr().unwrap();
    assert_eq!(relayed.ip(), server.ip(), "relayed address on the server");
    assert_ne!(relayed.port(), server.port());

    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();

    // Round trips until at least ROUND_TRIPS are done and the channel carries
    // traffic both ways (webrtc-rs binds it in the background after the first
    // send). Bounded: the channel must be in use after 500 round trips.
    let mut i = 0;
    loop {
        let ping = format!("ping {i}");
        timeout(STEP, relay.send_to(ping.as_bytes(), peer_addr))
            .await
            .expect("send_to within 5 s")
            .unwrap();
        let (got, from) = recv(&peer).await;
        assert_eq!((got, from), (ping.into_bytes(), relayed));
        let pong = format!("pong {i}");
        peer.send_to(pong.as_bytes(), relayed).await.unwrap();
        let (got, from) = relay_recv(&relay).await;
        assert_eq!((got, from), (pong.into_bytes(), peer_addr));
        i += 1;
        let channel_both_ways = Tap::count(&tap.to_server, Kind::ChannelData) >= 3
            && Tap::count(&tap.to_client, Kind::ChannelData) >= 3;
        if i >= ROUND_TRIPS && channel_both_ways {
            break;
        }
        assert!(i < 500, "the channel was not used after {i} round trips");
    }
    assert!(
        Tap::count(&tap.to_server, Kind::SendIndication) >= 1,
        "no Send indication crossed the tap: {:?}",
        tap.to_server.lock().unwrap()
    );

    // A second peer on the same IP (so the permission covers it) but with no
    // channel: the relay must use Data indications, which webrtc-rs accepts.
    let other = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let other_addr = other.local_addr().unwrap();
    for j in 0..3 {
        let hello = format!("hello {j}");
        other.send_to(hello.as_bytes(), relayed).await.unwrap();
        let (got, from) = relay_recv(&relay).await;
        assert_eq!((got, from), (hello.into_bytes(), other_addr));
    }
    assert!(Tap::count(&tap.to_client, Kind::DataIndication) >= 3);

    eprintln!(
        "{username}: {i} round trips; to server {:?} Send / {:?} ChannelData, to client {:?} Data / {:?} ChannelData",
        Tap::count(&tap.to_server, Kind::SendIndication),
        Tap::count(&tap.to_server, Kind::ChannelData),
        Tap::count(&tap.to_client, Kind::DataIndication),
        Tap::count(&tap.to_client, Kind::ChannelData),
    );

    // Bursts: every datagram arrives, both ways, none lost on loopback.
    for j in 0..BURST {
        relay
            .send_to(format!("burst {j}").as_bytes(), peer_addr)
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..BURST {
        let (bytes, from) = recv(&peer).await;
        assert_eq!(from, relayed);
        got.push(String::from_utf8(bytes).unwrap());
    }
    got.sort();
    let mut want: Vec<String> = (0..BURST).map(|j| format!("burst {j}")).collect();
    want.sort();
    assert_eq!(got, want, "client to peer burst");
    for j in 0..BURST {
        peer.send_to(format!("back {j}").as_bytes(), relayed)
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..BURST {
        let (bytes, from) = relay_recv(&relay).await;
        assert_eq!(from, peer_addr);
        got.push(String::from_utf8(bytes).unwrap());
    }
    got.sort();
    let mut want: Vec<String> = (0..BURST).map(|j| format!("back {j}")).collect();
    want.sort();
    assert_eq!(got, want, "peer to client burst");

    relay.close().await.unwrap();
    client.close().await.unwrap();
}

/// Allocation must fail with the server's 401, and nothing may be relayed.
async fn refused(server: SocketAddr, username: &str, password: &str) {
    let client = client(server, username, password).await;
    let error = match timeout(STEP, client.allocate()).await.expect("answer") {
        Ok(_) => panic!("allocated as {username} with a wrong password"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("401"),
        "the client's error names the 401: {error}"
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn webrtc_turn_client_relays_with_long_term_and_rest_credentials() {
    let relay = start_turn(
        "127.0.0.1:0",
        &["--user", "alice:pw", "--auth-secret", "s3cret"],
    );
    let server = relay.addresses[0];

    exercise(server, "alice", "pw").await;

    // REST credentials as webrtc-rs mints them (username `EXPIRY`)…
    let (user, pass) =
        turn::auth::generate_long_term_credentials("s3cret", Duration::from_secs(600)).unwrap();
    exercise(server, &user, &pass).await;
    // …and as the SDK does (`EXPIRY:NAME`).
    let ours = tsunagi::relay::rest_credentials(
        "s3cret",
        "player",
        Duration::from_secs(600),
        common::unix_now(),
    );
    exercise(server, &ours.username, &ours.password).await;

    let relayed_to_peers = metric(
        &relay,
        "tsunagi_relay_relayed_packets_total{direction=\"to_peer\"}",
    );
    assert!(relayed_to_peers.unwrap() >= 3 * (ROUND_TRIPS + BURST) as u64);
}

#[tokio::test]
async fn webrtc_turn_client_with_wrong_credentials_gets_401_and_nothing_relayed() {
    let relay = start_turn(
        "127.0.0.1:0",
        &["--user", "alice:pw", "--auth-secret", "s3cret"],
    );
    let server = relay.addresses[0];

    refused(server, "alice", "not-the-password").await;
    // A REST credential signed with another secret.
    let (user, pass) =
        turn::auth::generate_long_term_credentials("forged", Duration::from_secs(600)).unwrap();
    refused(server, &user, &pass).await;

    assert_eq!(metric(&relay, "tsunagi_relay_allocations "), Some(0));
    assert_eq!(
        metric(&relay, "tsunagi_relay_allocations_created_total"),
        Some(0)
    );
    assert_eq!(
        metric(
            &relay,
            "tsunagi_relay_relayed_packets_total{direction=\"to_peer\"}"
        ),
        Some(0)
    );
    assert_eq!(
        metric(
            &relay,
            "tsunagi_relay_relayed_packets_total{direction=\"to_client\"}"
        ),
        Some(0)
    );
    assert!(metric(&relay, "tsunagi_relay_auth_failures_total").unwrap() >= 2);
}
