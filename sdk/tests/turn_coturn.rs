//! The TURN client (`tsunagi::relay`) against a real coturn on loopback.
//!
//! Each test starts its own `turnserver` (coturn 4.6) as a child process on a port
//! range derived from the test process id and the test's index, waits until it
//! answers a STUN Binding request, and kills it on drop. A thin std-UDP driver
//! below runs the sans-IO client against it. Skipped, with a message, only when
//! `turnserver` is not installed.

// Test helpers outside #[test] functions: failing loudly is their job.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use natlab::coturn::{Loopback, PortBlocks};
use tsunagi::relay::{Client, Config, Credentials, Error, Event, RelayFamily, rest_credentials};
use tsunagi::stun::{AddressFamily, Message};

const REALM: &str = "tsunagi";
const SECRET: &str = "s3cret-shared";

/// coturn on loopback (natlab's launcher): 440 blocks of 50 ports in
/// 10000..32000, below Linux's ephemeral range (session_relay.rs uses 32000..37000).
fn start_coturn(index: u32, auth: &[&str], relay_ips: &[&str]) -> Option<Loopback> {
    if !Loopback::installed() {
        eprintln!("skipping: coturn's `turnserver` is not installed");
        return None;
    }
    let mut args = vec!["--realm", REALM, "--stale-nonce=3"];
    args.extend_from_slice(auth);
    for ip in relay_ips {
        args.extend(["--relay-ip", ip]);
    }
    let blocks = PortBlocks {
        first: 10_000,
        slots: 440,
    };
    Some(Loopback::start(blocks, index, &args).unwrap())
}

/// Runs a client on a std UDP socket.
struct Driver {
    socket: UdpSocket,
    client: Client,
    /// Events seen while waiting for another.
    seen: Vec<Event>,
    /// ChannelData datagrams received from the server.
    channel_data_in: usize,
    /// 438 Stale Nonce answers received.
    stale_nonces: usize,
}

impl Driver {
    fn new(server: SocketAddr, credentials: Credentials, family: RelayFamily) -> Driver {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut config = Config::new(server, credentials);
        config.family = family;
        Driver {
            socket,
            client: Client::new(config, Instant::now()),
            seen: Vec::new(),
            channel_data_in: 0,
            stale_nonces: 0,
        }
    }

    fn flush(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            self.socket.send_to(&t.bytes, t.to).unwrap();
        }
    }

    /// Pumps until `pick` accepts an event; at most `limit`.
    fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let end = Instant::now() + limit;
        let mut buf = vec![0u8; 65_536];
        loop {
            self.flush();
            while let Some(event) = self.client.poll_event() {
                if let Some(found) = pick(&event) {
                    return found;
                }
                self.seen.push(event);
            }
            let now = Instant::now();
            assert!(
                now < end,
                "no {what} within {limit:?}; events so far: {:?}",
                self.seen
            );
            let wake = self.client.poll_timeout().map_or(end, |t| t.min(end));
            let wait = wake
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            self.socket.set_read_timeout(Some(wait)).unwrap();
            if let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                if (64..=79).contains(&buf[0]) {
                    self.channel_data_in += 1;
                }
                let stale = Message::decode(&buf[..n])
                    .is_ok_and(|m| m.error_code().is_some_and(|e| e.code == 438));
                self.stale_nonces += usize::from(stale);
                self.client.handle_input(Instant::now(), from, &buf[..n]);
            }
            self.client.handle_timeout(Instant::now());
        }
    }

    fn allocated(&mut self) -> (Vec<SocketAddr>, Vec<AddressFamily>) {
        self.wait_for("Allocated", Duration::from_secs(5), |e| match e {
            Event::Allocated { relayed, unavailable, mapped, lifetime } => {
                eprintln!("allocated {relayed:?} mapped {mapped:?} for {lifetime:?}, unavailable {unavailable:?}");
                assert!(mapped.is_some(), "coturn sends XOR-MAPPED-ADDRESS");
                Some((relayed.clone(), unavailable.iter().map(|u| u.family).collect()))
            }
            Event::Failed { reason } => panic!("allocation failed: {reason}"),
            _ => None,
        })
    }

    fn failure(&mut self) -> Error {
        self.wait_for("Failed", Duration::from_secs(5), |e| match e {
            Event::Failed { reason } => Some(reason.clone()),
            _ => None,
        })
    }

    fn data_from(&mut self, peer: SocketAddr) -> Vec<u8> {
        self.wait_for("Data", Duration::from_secs(3), |e| match e {
            Event::Data { peer: p, bytes } if *p == peer => Some(bytes.clone()),
            _ => None,
        })
    }

    fn release(&mut self) {
        self.client.release(Instant::now());
        self.wait_for("Released", Duration::from_secs(5), |e| {
            matches!(e, Event::Released).then_some(())
        });
        assert!(self.client.is_closed());
    }
}

fn recv(peer: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = peer
        .recv_from(&mut buf)
        .expect("the peer receives the relayed datagram");
    (buf[..n].to_vec(), from)
}

/// Permission, Send/Data indications, then a channel, in both directions.
fn exchange(driver: &mut Driver, relayed: SocketAddr, peer: &UdpSocket) {
    let peer_addr = peer.local_addr().unwrap();
    let now = Instant::now();
    driver
        .client
        .create_permission(now, peer_addr.ip())
        .unwrap();
    driver.wait_for("PermissionCreated", Duration::from_secs(5), |e| {
        matches!(e, Event::PermissionCreated { .. }).then_some(())
    });

    driver
        .client
        .send_to(Instant::now(), peer_addr, b"via send indication")
        .unwrap();
    driver.flush();
    assert_eq!(recv(peer), (b"via send indication".to_vec(), relayed));
    peer.send_to(b"via data indication", relayed).unwrap();
    assert_eq!(driver.data_from(peer_addr), b"via data indication");
    assert_eq!(
        driver.channel_data_in, 0,
        "no channel yet: Data indications"
    );

    let channel = driver
        .client
        .bind_channel(Instant::now(), peer_addr)
        .unwrap();
    let bound = driver.wait_for("ChannelBound", Duration::from_secs(5), |e| match e {
        Event::ChannelBound { channel, .. } => Some(*channel),
        Event::ChannelBindFailed { reason, .. } => panic!("ChannelBind failed: {reason}"),
        _ => None,
    });
    assert_eq!(bound, channel);
    driver
        .client
        .send_to(Instant::now(), peer_addr, b"via channel")
        .unwrap();
    let framed = driver.client.poll_transmit().unwrap();
    assert_eq!(
        framed.bytes[..2],
        channel.to_be_bytes(),
        "ChannelData, not a Send indication"
    );
    driver.socket.send_to(&framed.bytes, framed.to).unwrap();
    assert_eq!(recv(peer), (b"via channel".to_vec(), relayed));
    peer.send_to(b"back via channel", relayed).unwrap();
    assert_eq!(driver.data_from(peer_addr), b"back via channel");
    assert_eq!(
        driver.channel_data_in, 1,
        "coturn answered with ChannelData"
    );
}

/// coturn's flags for the static user `alice:secret`.
const ALICE: [&str; 3] = ["--lt-cred-mech", "--user", "alice:secret"];

/// A driver for `alice:secret` on `server`.
fn alice(server: SocketAddr, family: RelayFamily) -> Driver {
    Driver::new(server, Credentials::new("alice", "secret"), family)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn static_credentials_allocate_exchange_refresh_release() {
    let Some(coturn) = start_coturn(0, &ALICE, &["127.0.0.1"]) else {
        return;
    };
    let mut wrong = Driver::new(
        coturn.addr,
        Credentials::new("alice", "guess"),
        RelayFamily::V4,
    );
    assert_eq!(
        wrong.failure(),
        Error::Unauthorized {
            realm: REALM.into()
        }
    );

    let mut driver = alice(coturn.addr, RelayFamily::V4);
    let (relayed, unavailable) = driver.allocated();
    assert_eq!(relayed.len(), 1);
    assert!(unavailable.is_empty());
    assert_eq!(relayed[0].ip().to_string(), "127.0.0.1");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    exchange(&mut driver, relayed[0], &peer);

    // coturn's nonces live 3 s here (--stale-nonce=3, on a whole-second clock): a refresh 5 s on first
    // meets 438 Stale Nonce and is retried with the new nonce.
    std::thread::sleep(Duration::from_millis(5000));
    driver.client.refresh(Instant::now());
    let lifetime = driver.wait_for("Refreshed", Duration::from_secs(5), |e| match e {
        Event::Refreshed { lifetime } => Some(*lifetime),
        Event::AllocationLost { reason } => panic!("allocation lost: {reason}"),
        _ => None,
    });
    assert_eq!(lifetime, Duration::from_secs(600));
    assert!(
        driver.stale_nonces >= 1,
        "coturn answered 438 and the client recovered"
    );
    // The allocation, its permission and channel still relay after the refresh.
    driver
        .client
        .send_to(Instant::now(), peer.local_addr().unwrap(), b"after refresh")
        .unwrap();
    driver.flush();
    assert_eq!(recv(&peer), (b"after refresh".to_vec(), relayed[0]));

    driver.release();
}

#[test]
fn rest_token_credentials() {
    let auth = ["--use-auth-secret", "--static-auth-secret", SECRET];
    let Some(coturn) = start_coturn(1, &auth, &["127.0.0.1"]) else {
        return;
    };
    let mut minted = rest_credentials(SECRET, "player42", Duration::from_secs(3600), unix_now());
    minted.realm_hint = Some(REALM.into());
    let token = minted.to_token();
    let credentials: Credentials = token.parse().unwrap();
    let mut driver = Driver::new(coturn.addr, credentials, RelayFamily::V4);
    let (relayed, _) = driver.allocated();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    exchange(&mut driver, relayed[0], &peer);
    driver.release();

    let expired = rest_credentials(
        SECRET,
        "player42",
        Duration::from_secs(60),
        unix_now() - 7200,
    );
    let mut driver = Driver::new(coturn.addr, expired, RelayFamily::V4);
    assert_eq!(
        driver.failure(),
        Error::Unauthorized {
            realm: REALM.into()
        }
    );
    let forged = rest_credentials(
        "not-the-secret",
        "player42",
        Duration::from_secs(3600),
        unix_now(),
    );
    let mut driver = Driver::new(coturn.addr, forged, RelayFamily::V4);
    assert_eq!(
        driver.failure(),
        Error::Unauthorized {
            realm: REALM.into()
        }
    );
}

#[test]
fn dual_allocation_relays_ipv6_on_loopback() {
    let Some(coturn) = start_coturn(2, &ALICE, &["127.0.0.1", "::1"]) else {
        return;
    };
    let mut driver = alice(coturn.addr, RelayFamily::Dual);
    let (relayed, unavailable) = driver.allocated();
    let v6 = relayed.iter().find(|a| a.is_ipv6()).copied();
    let v4 = relayed.iter().find(|a| a.is_ipv4()).copied();
    assert!(
        v4.is_some(),
        "the IPv4 relayed address is always granted: {relayed:?}"
    );
    let v6 =
        v6.unwrap_or_else(|| panic!("coturn refused IPv6 ({unavailable:?}); relayed {relayed:?}"));
    let peer = UdpSocket::bind("[::1]:0").unwrap();
    exchange(&mut driver, v6, &peer);
    driver.release();
}

#[test]
fn ipv6_only_allocation_without_an_ipv6_relay_reports_440() {
    let Some(coturn) = start_coturn(3, &ALICE, &["127.0.0.1"]) else {
        return;
    };
    let mut driver = alice(coturn.addr, RelayFamily::V6);
    assert_eq!(
        driver.failure(),
        Error::AddressFamilyNotSupported {
            family: AddressFamily::V6
        }
    );
    // A dual request on the same server keeps IPv4 and says why IPv6 is missing.
    let mut driver = alice(coturn.addr, RelayFamily::Dual);
    let (relayed, unavailable) = driver.allocated();
    assert!(relayed.iter().all(SocketAddr::is_ipv4), "{relayed:?}");
    assert_eq!(unavailable, vec![AddressFamily::V6]);
    driver.release();
}
