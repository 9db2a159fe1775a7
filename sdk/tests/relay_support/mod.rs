//! Shared by the session tests that run tsunagi-relay in-process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;

use tsunagi_relay::TurnConfig;
use tsunagi_relay::udp::{Options, Running};

/// tsunagi-relay on `listen` (127.0.0.1) with user `u:p`, relaying from
/// 127.0.0.1, loopback peers allowed.
pub fn start_tsunagi_relay_on(listen: SocketAddr) -> Running {
    let turn = TurnConfig {
        users: HashMap::from([("u".to_owned(), "p".to_owned())]),
        relay_ips: vec!["127.0.0.1".parse().unwrap()],
        relay_ports: None,
        allowed_peers: vec!["127.0.0.0/8".parse().unwrap()],
        max_bytes_per_sec: 0,
        ..TurnConfig::default()
    };
    let options = Options {
        listen: vec![listen],
        threads: 1,
        turn: Some(turn),
        ..Options::default()
    };
    tsunagi_relay::udp::start(&options).expect("tsunagi-relay did not start on loopback")
}

/// [`start_tsunagi_relay_on`] any free port of 127.0.0.1.
pub fn start_tsunagi_relay() -> Running {
    start_tsunagi_relay_on("127.0.0.1:0".parse().unwrap())
}
