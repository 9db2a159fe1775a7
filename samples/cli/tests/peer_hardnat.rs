//! Hard NATs in the NAT lab (issue 6, item 3): a MAP-E-like CE that maps
//! endpoint-dependently inside 16 ports (`mapesym`) against endpoint-independent
//! NATs goes direct through the port-set sweep; two random symmetric NATs with
//! no port set stay on the relay. tsunagi-relay runs with RFC 5780 (second
//! address 198.18.0.11:3479) so each peer describes its NAT at connect time.
//! Prints the pairs with connect times.
//!
//! Needs root; prints `SKIPPED(not root)` otherwise.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use natlab::netns::run_with_timeout;
use natlab::{Lab, Nat, SERVER_V4, Site, SiteKind, Topology};
use serde_json::Value;

const SECRET: &str = "hardnat-secret";

fn serve(lab: &mut Lab) -> SocketAddr {
    let server = SocketAddr::new(SERVER_V4[0].into(), 3478);
    // RFC 5780 on, so each peer can describe its NAT's mapping.
    let alternate = SocketAddr::new(SERVER_V4[1].into(), 3479);
    common::serve(
        lab,
        SECRET,
        vec![server],
        Some(alternate),
        vec![SERVER_V4[0].into()],
    );
    server
}

fn token(name: &str) -> String {
    common::token(SECRET, name, Duration::from_secs(600))
}

/// One pair's outcome: the path at the end and the connect time.
struct Row {
    listener: &'static str,
    connector: &'static str,
    expected: &'static str,
    path: String,
    first_path: String,
    connect_ms: u64,
    received: u64,
    upgrades: usize,
}

fn run_pair(
    lab: &Lab,
    server: SocketAddr,
    listener: &'static str,
    connector: &'static str,
    expected: &'static str,
) -> Row {
    let ns = &lab.host(listener).unwrap().ns;
    let mut cmd = common::peer_command(ns, server, &token(listener), &["listen"]);
    cmd.stderr(Stdio::null());
    let (_listener, peer_id) = common::wait_ready(cmd, listener).unwrap_or_else(|e| panic!("{e}"));
    let ns = &lab.host(connector).unwrap().ns;
    let connect = ["connect", &peer_id, "--count", "10", "--idle-secs", "2"];
    let mut cmd = common::peer_command(ns, server, &token(connector), &connect);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(40)).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{connector} → {listener}:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let connected = events.iter().find(|e| e["event"] == "connected").unwrap();
    let upgrades = events.iter().filter(|e| e["event"] == "path").count();
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{stdout}");
    Row {
        listener,
        connector,
        expected,
        path: done["path"].as_str().unwrap_or("?").to_owned(),
        first_path: connected["path"].as_str().unwrap_or("?").to_owned(),
        connect_ms: connected["connect_ms"].as_u64().unwrap_or(0),
        received: done["received"].as_u64().unwrap_or(0),
        upgrades,
    }
}

#[test]
fn sweep_and_prediction_go_direct_and_random_symmetric_stays_relayed() {
    if !natlab::is_root() {
        println!("SKIPPED(not root): the hard-NAT lab test needs root for network namespaces");
        return;
    }
    let sites = [
        Site::new("mapesym", SiteKind::Nat(Nat::port_set_symmetric(20000, 16))),
        Site::new("mapeeim", SiteKind::Nat(Nat::port_set_eim(20000, 16))),
        Site::new("fullcone", SiteKind::Nat(Nat::full_cone())),
        Site::new("portrestr", SiteKind::Nat(Nat::port_restricted())),
        Site::new("symmetric", SiteKind::Nat(Nat::symmetric())),
        Site::new("symb", SiteKind::Nat(Nat::symmetric())),
        Site::new("seqsym", SiteKind::Nat(Nat::sequential_symmetric())),
    ];
    let mut lab = Lab::build(sites.into_iter().fold(Topology::new(), Topology::site))
        .expect("building the lab");
    let server = serve(&mut lab);
    let pairs = [
        ("mapesym", "fullcone", "direct-ipv4"),
        ("mapesym", "portrestr", "direct-ipv4"),
        ("portrestr", "mapesym", "direct-ipv4"),
        ("mapeeim", "mapesym", "direct-ipv4"),
        ("seqsym", "portrestr", "direct-ipv4"),
        ("portrestr", "seqsym", "direct-ipv4"),
        ("symb", "symmetric", "relay"),
    ];
    let rows: Vec<Row> = pairs
        .iter()
        .map(|&(l, c, e)| run_pair(&lab, server, l, c, e))
        .collect();
    println!(
        "| listener | connector | expected | first path | settled path | path changes | connect ms | echoes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {}/10 |",
            r.listener,
            r.connector,
            r.expected,
            r.first_path,
            r.path,
            r.upgrades,
            r.connect_ms,
            r.received
        );
    }
    for r in &rows {
        assert_eq!(r.path, r.expected, "{} → {}", r.connector, r.listener);
    }
}
