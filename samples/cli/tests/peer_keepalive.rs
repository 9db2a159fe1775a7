//! Keepalives and recovery for `tsunagi peer` on real kernel NATs (issue 6,
//! items 4 and 5): tsunagi-relay (rendezvous + TURN) in the lab's server
//! namespace, `tsunagi peer listen` and `connect` in site hosts behind
//! port-restricted NATs.
//!
//! - An idle session through NATs whose UDP session timers are 10 s stays up
//!   for 3 minutes and is still direct at the end (the only long test, named
//!   to sort first so that the others run beside it, not after it).
//! - An idle listener behind such a NAT stays reachable through the server
//!   with keepalives sized to the timer, is found again behind a symmetric NAT
//!   with default keepalives (the expired mapping is noticed, the relay
//!   allocated and the registration renewed), and is lost without keepalives.
//! - `--measure-nat-timer`: the background measurement (diag's binding
//!   lifetime search against tsunagi-relay with RFC 5780) finds the 10 s timer
//!   without delaying the registration, and keepalives come at 40 % of it.
//! - A conntrack flush on one router mid-session (same ports afterwards, or
//!   new ones: a rebinding), and a direct path that dies for 6 s (relay
//!   meanwhile, direct again after), lose no message; the test prints the
//!   longest echo gaps.
//!
//! Needs root; prints `SKIPPED(not root)` otherwise.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::Reap;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use natlab::netns::run_with_timeout;
use natlab::{Knobs, Lab, Nat, SERVER_V4, Site, SiteKind, Topology};
use serde_json::Value;

const SECRET: &str = "keepalive-secret";
/// The NAT session timer of the sites under test (unreplied and stream).
const TIMER: Duration = Duration::from_secs(10);

fn short_timer_site(name: &str) -> Site {
    Site::new(name, SiteKind::Nat(Nat::port_restricted())).knobs(Knobs {
        udp_timeout: Some((TIMER, TIMER)),
        ..Knobs::default()
    })
}

/// Builds the lab and starts tsunagi-relay in its server namespace.
fn lab(sites: Vec<Site>) -> (Lab, SocketAddr) {
    let mut lab = Lab::build(sites.into_iter().fold(Topology::new(), Topology::site))
        .expect("building the lab");
    let server = SocketAddr::new(SERVER_V4[0].into(), 3478);
    // RFC 5780 for the background timer measurement.
    let alternate = SocketAddr::new(SERVER_V4[1].into(), 3479);
    common::serve(
        &mut lab,
        SECRET,
        vec![server],
        Some(alternate),
        vec![SERVER_V4[0].into()],
    );
    (lab, server)
}

/// The lab of `sites` with tsunagi-relay, or `None` (saying SKIPPED) when not root.
fn root_lab(sites: Vec<Site>) -> Option<(Lab, SocketAddr)> {
    if !natlab::is_root() {
        println!("SKIPPED(not root): the keepalive lab needs root for network namespaces");
        return None;
    }
    Some(lab(sites))
}

fn token(name: &str) -> String {
    common::token(SECRET, name, Duration::from_secs(900))
}

fn peer_command(lab: &Lab, site: &str, server: SocketAddr, options: &[&str]) -> Command {
    let ns = &lab.host(site).unwrap().ns;
    common::peer_command(ns, server, &token(site), options)
}

/// Starts `tsunagi peer [options] listen` in `site`; returns it and its peer id.
fn listen(lab: &Lab, site: &str, server: SocketAddr, options: &[&str]) -> (Reap, String) {
    let mut options = options.to_vec();
    options.push("listen");
    let mut cmd = peer_command(lab, site, server, &options);
    cmd.stderr(Stdio::null());
    common::wait_ready(cmd, site).unwrap_or_else(|e| panic!("{e}"))
}

fn connect_args<'a>(peer_id: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["connect", peer_id];
    args.extend_from_slice(more);
    args
}

/// Runs `tsunagi peer connect <peer_id> [more]` in `site`, for at most `limit`.
fn connect(
    lab: &Lab,
    site: &str,
    server: SocketAddr,
    peer_id: &str,
    more: &[&str],
    limit: Duration,
) -> Output {
    let mut cmd = peer_command(lab, site, server, &connect_args(peer_id, more));
    run_with_timeout(&mut cmd, limit).unwrap()
}

/// Spawns `cmd` with its stdout read on a thread: each line, with `stamp()` taken
/// as it arrives.
fn spawn_lines<T: Send + 'static>(
    cmd: &mut Command,
    stamp: impl Fn() -> T + Send + 'static,
) -> (Reap, mpsc::Receiver<(T, String)>) {
    cmd.stdout(Stdio::piped());
    let mut child = Reap(cmd.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((stamp(), line)).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn a_3_minute_idle_session_through_10s_nat_timers_stays_up() {
    let started = Instant::now();
    let Some((lab, server)) = root_lab(vec![short_timer_site("ida"), short_timer_site("idb")])
    else {
        return;
    };
    let (_listener, peer_id) = listen(&lab, "ida", server, &[]);
    let out = connect(
        &lab,
        "idb",
        server,
        &peer_id,
        &["--idle-secs", "180", "--count", "10"],
        Duration::from_secs(260),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "idb → ida after 180 s idle:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let events = json_lines(&stdout);
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{stdout}");
    assert_eq!(done["received"], 10, "{stdout}");
    assert_eq!(
        done["path"], "direct-ipv4",
        "still direct after 3 idle minutes: {stdout}"
    );
    let changes = events.iter().filter(|e| e["event"] == "path").count();
    println!(
        "idle 180 s through {TIMER:?} NAT timers: 10/10 echoes, path {} ({changes} path changes), {:.0} s",
        done["path"],
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn an_idle_listener_stays_reachable_only_with_keepalives() {
    let started = Instant::now();
    let Some((lab, server)) = root_lab(vec![
        short_timer_site("kon"),
        short_timer_site("koff"),
        Site::new("ksym", SiteKind::Nat(Nat::symmetric())).knobs(Knobs {
            udp_timeout: Some((TIMER, TIMER)),
            ..Knobs::default()
        }),
        Site::new("kc", SiteKind::Nat(Nat::port_restricted())),
    ]) else {
        return;
    };
    let (_on, on_id) = listen(&lab, "kon", server, &["--nat-timer", "10"]);
    let (_off, off_id) = listen(&lab, "koff", server, &["--no-keepalive"]);
    // Default keepalives (15 s) behind a symmetric NAT: the mapping expires
    // after 10 s, the first keepalive comes back from a new port, and the
    // listener must notice, shorten its keepalives, register again and
    // allocate again before anyone can reach it.
    let sym_log = lab.workdir().join("ksym-listener.log");
    let (_sym, sym_id) = {
        let mut cmd = peer_command(&lab, "ksym", server, &["listen"]);
        cmd.env("RUST_LOG", "tsunagi=info")
            .stderr(std::fs::File::create(&sym_log).unwrap());
        common::wait_ready(cmd, "ksym").unwrap_or_else(|e| panic!("{e}"))
    };
    // The idle gap is what is under test: 2.5 session timers with no traffic
    // of the application's toward the server.
    std::thread::sleep(TIMER * 5 / 2);

    // Three messages from kc to a listener.
    let reach = |peer_id: &str| {
        connect(
            &lab,
            "kc",
            server,
            peer_id,
            &["--count", "3"],
            Duration::from_secs(40),
        )
    };
    let out = reach(&on_id);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the listener with keepalives every 4 s was not reachable after idling:\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = reach(&sym_id);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = std::fs::read_to_string(&sym_log).unwrap_or_default();
    assert!(
        out.status.success(),
        "the listener behind a symmetric NAT was not found again after its mapping expired:\nstdout:\n{stdout}\nstderr:\n{}\nlistener log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("mapping toward the server changed") && log.contains("keepalives shortened"),
        "the listener should have seen its mapping change: {log}"
    );

    for line in log.lines().filter(|l| {
        [
            "changed",
            "shortened",
            "registering again",
            "TURN allocation",
        ]
        .iter()
        .any(|k| l.contains(k))
    }) {
        println!("ksym listener: {line}");
    }

    let out = reach(&off_id);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the listener without keepalives was still reachable: its NAT mapping toward the server should have expired after {TIMER:?}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("did not answer"),
        "expected the offer to go unanswered: {stderr}"
    );
    println!(
        "idle listener, {:?} idle behind a {TIMER:?} NAT timer: with keepalives sized to it reachable; with default keepalives behind a symmetric NAT found again (new mapping seen, keepalives shortened); without keepalives unreachable ({:.0} s)",
        TIMER * 5 / 2,
        started.elapsed().as_secs_f64()
    );
}

/// What happens to a router mid-session.
#[derive(Debug, Clone, Copy)]
enum Disruption<'a> {
    /// `conntrack -F` on this site's router: it forgets every mapping.
    Flush(&'a str),
    /// This site's router drops everything between its host and the other
    /// site's public address for a while: the direct path dies, the relay
    /// still works.
    Block(&'a str, Duration),
}

/// What one disrupted run saw.
struct Disrupted {
    /// What was done (conntrack entries flushed, or the block).
    what: String,
    /// The path events the connector printed after the disruption.
    paths_after: Vec<String>,
    path: String,
    max_rtt_ms: f64,
    max_silence: Duration,
}

/// `connector` sends 60 messages 100 ms apart to `listener`; after the fifth
/// echo, `disruption` happens.
fn disrupted_run(
    lab: &Lab,
    server: SocketAddr,
    listener: &str,
    connector: &str,
    disruption: Disruption<'_>,
) -> Disrupted {
    let (_listener, peer_id) = listen(lab, listener, server, &[]);
    let args = connect_args(&peer_id, &["--count", "60", "--interval-ms", "100"]);
    let mut cmd = peer_command(lab, connector, server, &args);
    cmd.stderr(Stdio::piped());
    let (mut child, rx) = spawn_lines(&mut cmd, Instant::now);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines: Vec<(Instant, Value)> = Vec::new();
    let mut disrupted: Option<(Instant, String)> = None;
    let mut unblock_at: Option<(Instant, natlab::netns::Netns)> = None;
    loop {
        let now = Instant::now();
        if let Some((at, ns)) = &unblock_at
            && *at <= now
        {
            ns.nft("delete table inet tsunagiblock")
                .expect("removing the block");
            unblock_at = None;
        }
        let wait = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        if now >= deadline {
            break;
        }
        let Ok((at, line)) = rx.recv_timeout(wait) else {
            continue;
        };
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let is_done = value["event"] == "done";
        lines.push((at, value));
        let echoes = lines.iter().filter(|(_, v)| v["event"] == "echo").count();
        if disrupted.is_none() && echoes >= 5 {
            let what = match disruption {
                Disruption::Flush(site) => {
                    let router = lab.site(site).unwrap().edge_router.clone();
                    let ns = &lab.node(&router).unwrap().ns;
                    let count = ns.exec("conntrack", ["-C"]).expect("conntrack -C");
                    let entries = String::from_utf8_lossy(&count.stdout).trim().to_owned();
                    let out = ns
                        .exec("conntrack", ["-F"])
                        .expect("conntrack -F in the router");
                    assert!(out.status.success(), "{out:?}");
                    format!("conntrack -F on {site}'s router ({entries} entries)")
                }
                Disruption::Block(site, period) => {
                    let router = lab.site(site).unwrap().edge_router.clone();
                    let other = if site == listener {
                        connector
                    } else {
                        listener
                    };
                    let other_ip = lab.site(other).unwrap().public_v4.unwrap();
                    let ns = lab.node(&router).unwrap().ns.clone();
                    ns.nft(&format!(
                        "table inet tsunagiblock {{\n  chain forward {{\n    type filter hook forward priority -10; policy accept;\n    ip saddr {other_ip} drop\n    ip daddr {other_ip} drop\n  }}\n}}\n"
                    ))
                    .expect("blocking the direct path");
                    unblock_at = Some((Instant::now() + period, ns));
                    format!("{site}'s router drops {other}'s address for {period:?}")
                }
            };
            disrupted = Some((Instant::now(), what));
        }
        if is_done {
            break;
        }
    }
    if let Some((_, ns)) = unblock_at {
        let _ = ns.nft("delete table inet tsunagiblock");
    }
    let status = child.0.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let text: Vec<String> = lines.iter().map(|(_, v)| v.to_string()).collect();
    let (disrupted_at, what) = disrupted.expect("no 5 echoes before the disruption");
    assert!(
        status.success(),
        "{connector} → {listener}: messages were lost across `{what}`:\n{}\nstderr:\n{stderr}",
        text.join("\n")
    );
    let done = &lines.last().unwrap().1;
    assert_eq!(done["received"], 60, "{}", text.join("\n"));
    // The gap: the longest round trip of a message sent around the
    // disruption, and the longest silence between echoes.
    let max_rtt_ms = lines
        .iter()
        .filter(|(at, v)| v["event"] == "echo" && *at >= disrupted_at)
        .filter_map(|(_, v)| v["rtt_ms"].as_f64())
        .fold(0.0, f64::max);
    let echo_times: Vec<Instant> = lines
        .iter()
        .filter(|(_, v)| v["event"] == "echo")
        .map(|(at, _)| *at)
        .collect();
    let max_silence = echo_times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default();
    let paths_after = lines
        .iter()
        .filter(|(at, v)| v["event"] == "path" && *at >= disrupted_at)
        .map(|(_, v)| v["path"].as_str().unwrap_or("?").to_owned())
        .collect();
    Disrupted {
        what,
        paths_after,
        path: done["path"].as_str().unwrap_or("?").to_owned(),
        max_rtt_ms,
        max_silence,
    }
}

#[test]
fn a_conntrack_flush_or_a_dead_direct_path_mid_session_loses_no_message() {
    let started = Instant::now();
    let Some((lab, server)) = root_lab(vec![
        Site::new("fla", SiteKind::Nat(Nat::port_restricted())),
        Site::new("flb", SiteKind::Nat(Nat::port_restricted())),
        Site::new("flc", SiteKind::Nat(Nat::full_cone())),
        Site::new("fld", SiteKind::Nat(Nat::symmetric())),
    ]) else {
        return;
    };
    // Port-preserving NAT: the mappings come back with the same ports.
    let same = disrupted_run(&lab, server, "fla", "flb", Disruption::Flush("fla"));
    // Symmetric NAT: new random ports, i.e. the connector's address changes
    // (a rebinding toward the peer and toward the relay).
    let rebound = disrupted_run(&lab, server, "flc", "fld", Disruption::Flush("fld"));
    // The direct path dies for 6 s: over the relay meanwhile, then direct again.
    let block = Duration::from_secs(6);
    let fallback = disrupted_run(&lab, server, "fla", "flb", Disruption::Block("fla", block));
    println!(
        "| disruption | path changes after it | path at the end | longest echo rtt after it | longest gap between echoes (100 ms pacing) |"
    );
    println!("|---|---|---|---|---|");
    for r in [&same, &rebound, &fallback] {
        println!(
            "| {} | {} | {} | {:.0} ms | {} ms |",
            r.what,
            r.paths_after.join(" → "),
            r.path,
            r.max_rtt_ms,
            r.max_silence.as_millis()
        );
    }
    println!("({:.0} s)", started.elapsed().as_secs_f64());
    assert_eq!(same.path, "direct-ipv4", "back on the direct path");
    assert_eq!(
        rebound.path, "direct-ipv4",
        "direct again after the rebinding"
    );
    assert_eq!(
        fallback.paths_after,
        ["relay", "direct-ipv4"],
        "relay while the direct path is dead, then direct again"
    );
}

#[test]
fn a_background_measurement_sizes_the_keepalives_to_the_nat_timer() {
    let started = Instant::now();
    let Some((lab, server)) = root_lab(vec![short_timer_site("mtl")]) else {
        return;
    };
    let mut cmd = peer_command(&lab, "mtl", server, &["--measure-nat-timer", "listen"]);
    cmd.stderr(Stdio::null());
    let (_child, rx) = spawn_lines(&mut cmd, move || started.elapsed());
    // Ready first: the measurement must not hold up the registration.
    let (ready_after, ready) = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert!(ready.contains("\"ready\""), "{ready}");
    let (measured_after, line) = rx
        .recv_timeout(Duration::from_secs(170))
        .expect("no nat_timer line within 170 s");
    let value: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["event"], "nat_timer", "{line}");
    let ms = value["ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("not measured: {line}"));
    println!(
        "background NAT timer measurement behind a {TIMER:?} timer: {ms} ms after {:.0} s (ready after {:.1} s), keepalives now every {} ms",
        measured_after.as_secs_f64() - ready_after.as_secs_f64(),
        ready_after.as_secs_f64(),
        value["keepalive_ms"]
    );
    assert!(
        (7_000..=10_500).contains(&ms),
        "measured {ms} ms for a {TIMER:?} conntrack timer"
    );
    let keepalive_ms = value["keepalive_ms"].as_u64().unwrap();
    assert!(
        keepalive_ms.abs_diff(ms * 2 / 5) <= 1,
        "keepalives at 40 % of the measured timer: {line}"
    );
}
