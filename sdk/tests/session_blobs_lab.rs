//! Offer/answer blobs across real kernel NATs (natlab): tsunagi-relay (TURN, user
//! `u:p`) runs in the lab's server namespace; each player's `PollEndpoint` is
//! created inside its site host's namespace with that relay added; the test thread
//! carries the blobs between them, as a game's lobby would. Every pair connects
//! over the relay first; the session must settle on the path the NAT behaviours
//! allow: direct where a hole can be punched, the relay where none can.
//!
//! Needs root; prints `SKIPPED(not root)` otherwise.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use natlab::{Lab, Nat, SERVER_V4, Site, SiteKind, Topology};
use tsunagi::path::PathKind;
use tsunagi::relay::{Config, Credentials};
use tsunagi::session::{Event, Identity, PeerId, PollEndpoint, SessionConfig};
use tsunagi_relay::TurnConfig;
use tsunagi_relay::udp::{Options, Running, start};

/// The relay, stopped when the lab drops it.
#[derive(Debug)]
struct Relay(Option<Running>);

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            r.shutdown(Duration::from_secs(1));
        }
    }
}

fn serve(lab: &mut Lab) -> SocketAddr {
    let server = SocketAddr::new(SERVER_V4[0].into(), 3478);
    let ns = lab.server().unwrap().ns.clone();
    let running = ns
        .run(move || {
            start(&Options {
                listen: vec![server],
                threads: 1,
                turn: Some(TurnConfig {
                    users: HashMap::from([("u".to_owned(), "p".to_owned())]),
                    relay_ips: vec![SERVER_V4[0].into()],
                    relay_ports: None,
                    // The lab's "public" addresses are special-purpose ranges.
                    allowed_peers: vec![
                        "198.18.0.0/15".parse().unwrap(),
                        "2001:db8::/32".parse().unwrap(),
                    ],
                    max_bytes_per_sec: 0,
                    ..TurnConfig::default()
                }),
                ..Options::default()
            })
        })
        .expect("entering the server namespace")
        .expect("starting tsunagi-relay in the server namespace");
    lab.keep(Box::new(Relay(Some(running))));
    server
}

/// A player in `site`'s host namespace (its sockets and networking thread live
/// there), with the lab's relay added.
fn player(lab: &Lab, site: &str, server: SocketAddr) -> PollEndpoint {
    let ns = lab.host(site).unwrap().ns.clone();
    let endpoint = ns
        .run(|| PollEndpoint::new(SessionConfig::new(Identity::generate().unwrap())))
        .expect("entering the host namespace")
        .expect("binding the endpoint");
    endpoint
        .endpoint()
        .path_handle()
        .add_relay(Config::new(server, Credentials::new("u", "p")));
    endpoint
}

fn path_name(path: PathKind) -> &'static str {
    match path {
        PathKind::DirectV6 => "direct-ipv6",
        PathKind::DirectV4 => "direct-ipv4",
        PathKind::Relay => "relay",
    }
}

/// Polls `endpoint` until `want` returns something or `timeout` passes.
fn poll_until<T>(
    endpoint: &mut PollEndpoint,
    timeout: Duration,
    mut want: impl FnMut(&Event) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        endpoint.pump();
        while let Some(event) = endpoint.poll_event() {
            if let Event::ConnectFailed { error, .. } = &event {
                panic!("connect failed: {error}");
            }
            if let Some(t) = want(&event) {
                return Some(t);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

struct Row {
    offerer: &'static str,
    answerer: &'static str,
    expected: &'static str,
    first: &'static str,
    settled: &'static str,
    connect_ms: u128,
}

fn run_pair(
    lab: &Lab,
    server: SocketAddr,
    offerer: &'static str,
    answerer: &'static str,
    expected: &'static str,
) -> Row {
    let mut a = player(lab, offerer, server);
    let mut b = player(lab, answerer, server);
    let b_id: PeerId = b.peer_id();
    let start = Instant::now();
    let offer = a.create_offer(b_id).unwrap();
    let answer = b.apply_signal(&offer).unwrap().expect("an answer");
    assert!(a.apply_signal(&answer).unwrap().is_none());
    let first = poll_until(&mut a, Duration::from_secs(15), |e| match e {
        Event::Connected { path, .. } => Some(*path),
        _ => None,
    })
    .unwrap_or_else(|| panic!("{offerer} → {answerer}: not connected within 15 s"));
    let connect_ms = start.elapsed().as_millis();
    let a_id = a.peer_id();
    poll_until(&mut b, Duration::from_secs(10), |e| {
        matches!(e, Event::Connected { peer, .. } if *peer == a_id).then_some(())
    })
    .unwrap_or_else(|| panic!("{answerer}: no incoming session within 10 s"));
    // Settle: a direct pair must reach its direct path within 10 s; a relay pair is
    // watched for 3 s (enough for every ICE check here) and must still be relayed.
    let mut settled = first;
    if expected != "relay" && path_name(first) != expected {
        poll_until(&mut a, Duration::from_secs(10), |e| {
            if let Event::PathChanged { path, .. } = e {
                settled = *path;
            }
            (path_name(settled) == expected).then_some(())
        });
    } else {
        poll_until(&mut a, Duration::from_secs(3), |e| {
            if let Event::PathChanged { path, .. } = e {
                settled = *path;
            }
            None::<()>
        });
    }
    // A message each way on the settled path.
    a.send_message(b_id, 0, b"ping").unwrap();
    poll_until(&mut b, Duration::from_secs(10), |e| {
        matches!(e, Event::Message { bytes, .. } if &bytes[..] == b"ping").then_some(())
    })
    .unwrap_or_else(|| panic!("{answerer}: no message within 10 s"));
    b.send_message(a_id, 0, b"pong").unwrap();
    poll_until(&mut a, Duration::from_secs(10), |e| {
        matches!(e, Event::Message { bytes, .. } if &bytes[..] == b"pong").then_some(())
    })
    .unwrap_or_else(|| panic!("{offerer}: no message within 10 s"));
    drop(a);
    drop(b);
    Row {
        offerer,
        answerer,
        expected,
        first: path_name(first),
        settled: path_name(settled),
        connect_ms,
    }
}

#[test]
fn blob_matrix_first_pairs() {
    if !natlab::is_root() {
        println!("SKIPPED(not root): the blob matrix needs root for network namespaces");
        return;
    }
    let sites = [
        Site::new("fullcone", SiteKind::Nat(Nat::full_cone())),
        Site::new("portrestr", SiteKind::Nat(Nat::port_restricted())),
        Site::new("symmetric", SiteKind::Nat(Nat::symmetric())),
        Site::new("dsa", SiteKind::DualStack(Nat::port_restricted())),
        Site::new("dsb", SiteKind::DualStack(Nat::port_restricted())),
    ];
    let mut lab = Lab::build(sites.into_iter().fold(Topology::new(), Topology::site))
        .expect("building the lab");
    let server = serve(&mut lab);
    let pairs = [
        ("fullcone", "portrestr", "direct-ipv4"),
        ("symmetric", "portrestr", "relay"),
        ("symmetric", "fullcone", "direct-ipv4"),
        ("dsa", "dsb", "direct-ipv6"),
    ];
    let rows: Vec<Row> = pairs
        .iter()
        .map(|&(o, a, e)| run_pair(&lab, server, o, a, e))
        .collect();
    println!("| offerer | answerer | expected | first path | settled path | connect ms |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.offerer, r.answerer, r.expected, r.first, r.settled, r.connect_ms
        );
    }
    for r in &rows {
        assert_eq!(r.settled, r.expected, "{} → {}", r.offerer, r.answerer);
    }
}
