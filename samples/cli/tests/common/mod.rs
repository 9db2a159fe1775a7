//! Shared by the `tsunagi peer` lab tests (peer_matrix, peer_hardnat,
//! peer_keepalive): tsunagi-relay in the lab's server namespace, tokens for it, and
//! listeners that die with their test.

#![allow(dead_code, clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use natlab::Lab;
use natlab::netns::Netns;
use serde_json::Value;
use tsunagi::relay::rest_credentials;
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

/// Kills a child process when its test or pair is done, however it ends.
pub struct Reap(pub Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts tsunagi-relay (TURN + rendezvous, REST credentials from `secret`) in the
/// lab's server namespace on `listen`, relaying from `relay_ips`, with RFC 5780 on
/// `alternate` when given (peers describe their NATs with it). Stopped when the lab
/// drops it.
pub fn serve(
    lab: &mut Lab,
    secret: &str,
    listen: Vec<SocketAddr>,
    alternate: Option<SocketAddr>,
    relay_ips: Vec<IpAddr>,
) {
    let ns = lab.server().unwrap().ns.clone();
    let secret = secret.to_owned();
    let running = ns
        .run(move || {
            start(&Options {
                listen,
                rfc5780_alternate: alternate,
                threads: 1,
                turn: Some(TurnConfig {
                    auth_secrets: vec![secret],
                    relay_ips,
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
}

/// A `tsunagi1.` token for `name`, valid `ttl` from now.
pub fn token(secret: &str, name: &str, ttl: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    rest_credentials(secret, name, ttl, now).to_token()
}

/// `tsunagi peer --server <server> --token <token> <args…>`, to run in `ns`.
pub fn peer_command(ns: &Netns, server: SocketAddr, token: &str, args: &[&str]) -> Command {
    let server = server.to_string();
    let mut all = vec!["peer", "--server", &server, "--token", token];
    all.extend_from_slice(args);
    ns.command(env!("CARGO_BIN_EXE_tsunagi"), all)
}

/// Spawns `cmd` (a `tsunagi peer … listen`; its stdout is taken here) and waits up
/// to 15 s for its ready line; returns the running listener and its peer id.
pub fn wait_ready(mut cmd: Command, name: &str) -> Result<(Reap, String), String> {
    cmd.stdout(Stdio::piped());
    let mut child = Reap(cmd.spawn().map_err(|e| format!("spawn: {e}"))?);
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| "no stdout".to_owned())?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Some(Ok(line)) = BufReader::new(stdout).lines().next() {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(15))
        .map_err(|_| format!("{name}: no ready line within 15 s"))?;
    let ready: Value = serde_json::from_str(&line).map_err(|e| format!("{line}: {e}"))?;
    let id = ready["peer_id"]
        .as_str()
        .ok_or_else(|| format!("no peer id in {line}"))?;
    Ok((child, id.to_owned()))
}
