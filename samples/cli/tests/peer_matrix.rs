//! The NAT matrix for `tsunagi peer` (issue 6 item 7) on real kernel NATs.
//!
//! tsunagi-relay (rendezvous + TURN, `--auth-secret`) runs in the lab's server
//! namespace on 198.18.0.10:3480 and [2001:db8::10]:3480 (coturn, which the UPnP
//! routers' miniupnpd needs for its STUN check, holds 3478/3479). For every
//! unordered pair of the 13 site kinds, a kind with itself included (91 pairs,
//! two sites of each kind), `tsunagi peer listen` runs in one site's host and
//! `tsunagi peer connect` in the other's; the pair exchanges 10 reliable
//! messages and 10 datagrams, and the path the session settles on must be the
//! one the RFC 4787 behaviours allow (see [`rfc_expected`]): native IPv6
//! wherever both have it, direct IPv4 wherever a hole can be punched, the relay
//! only where no direct path can exist. Pairs run 4 at a time, never two on one
//! site at once. The table (pair × path × connect time) is printed before
//! anything is asserted, so one failure shows the whole matrix.
//!
//! A second test checks that one endpoint talking to 8 peers through an
//! endpoint-independent NAT uses exactly one external port (conntrack).
//!
//! Needs root; prints `SKIPPED(not root)` otherwise.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::Reap;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use natlab::netns::{Netns, run_with_timeout};
use natlab::{Lab, Nat, SERVER_V4, SERVER_V6, Site, SiteKind, Topology};
use serde_json::Value;

const SECRET: &str = "matrix-secret";
/// The relay's port (coturn holds 3478 and 3479 in labs with UPnP sites).
const RELAY_PORT: u16 = 3480;
/// Pairs running at once.
const PARALLEL: usize = 4;
/// Reliable messages and datagrams per pair.
const MESSAGES: u64 = 10;

/// The site kinds of the matrix (natlab's catalog).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Public,
    V6Only,
    DualStack,
    FullCone,
    AddrRestr,
    PortRestr,
    Symmetric,
    MapeEim,
    MapeSym,
    Cgn,
    DsLite,
    Nat64,
    Upnp,
}

const KINDS: [Kind; 13] = [
    Kind::Public,
    Kind::V6Only,
    Kind::DualStack,
    Kind::FullCone,
    Kind::AddrRestr,
    Kind::PortRestr,
    Kind::Symmetric,
    Kind::MapeEim,
    Kind::MapeSym,
    Kind::Cgn,
    Kind::DsLite,
    Kind::Nat64,
    Kind::Upnp,
];

/// How a kind's IPv4 traffic meets the internet, in RFC 4787 terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V4 {
    /// No IPv4 at all.
    None,
    /// A public address, no NAT, no filter.
    Open,
    /// EIM + EIF (full cone; the DS-Lite AFTR here).
    Eif,
    /// EIM + ADF.
    Adf,
    /// EIM + APDF (port-restricted; dual-stack homes, CGN double NAT of two
    /// EIM+APDF NATs, the MAP-E-like EIM port set).
    EimApdf,
    /// EIM + APDF, plus a PCP/NAT-PMP mapping of the socket's port, which lets
    /// anyone in (the port-mapped candidate): EIF for our socket.
    PortMapped,
    /// APDM + APDF, a random port of the whole range per destination.
    Apdm,
    /// APDM + APDF, a random port of a 16-port set per destination.
    ApdmSet,
    /// IPv4 only through NAT64 (tayga + EIM+APDF) from an IPv6-only host.
    Nat64,
}

impl Kind {
    /// The site-name stem (a site is `<stem>a` or `<stem>b`).
    fn stem(self) -> &'static str {
        match self {
            Kind::Public => "public",
            Kind::V6Only => "v6only",
            Kind::DualStack => "dualstack",
            Kind::FullCone => "fullcone",
            Kind::AddrRestr => "addrrestr",
            Kind::PortRestr => "portrestr",
            Kind::Symmetric => "symmetric",
            Kind::MapeEim => "mapeeim",
            Kind::MapeSym => "mapesym",
            Kind::Cgn => "cgn",
            Kind::DsLite => "dslite",
            Kind::Nat64 => "nat64",
            Kind::Upnp => "upnp",
        }
    }

    fn site_kind(self) -> SiteKind {
        match self {
            Kind::Public => SiteKind::Public,
            Kind::V6Only => SiteKind::Ipv6Only,
            Kind::DualStack => SiteKind::DualStack(Nat::port_restricted()),
            Kind::FullCone => SiteKind::Nat(Nat::full_cone()),
            Kind::AddrRestr => SiteKind::Nat(Nat::address_restricted()),
            Kind::PortRestr => SiteKind::Nat(Nat::port_restricted()),
            Kind::Symmetric => SiteKind::Nat(Nat::symmetric()),
            Kind::MapeEim => SiteKind::Nat(Nat::port_set_eim(20000, 16)),
            Kind::MapeSym => SiteKind::Nat(Nat::port_set_symmetric(20000, 16)),
            Kind::Cgn => SiteKind::Cgn {
                cgn: Nat::port_restricted(),
                home: Nat::port_restricted(),
            },
            Kind::DsLite => SiteKind::DsLite {
                aftr: Nat::full_cone(),
            },
            Kind::Nat64 => SiteKind::Nat64,
            Kind::Upnp => SiteKind::Upnp(Nat::port_restricted()),
        }
    }

    /// Whether the host has native (routed) IPv6.
    fn ipv6(self) -> bool {
        matches!(
            self,
            Kind::Public | Kind::V6Only | Kind::DualStack | Kind::DsLite | Kind::Nat64
        )
    }

    fn ipv4(self) -> V4 {
        match self {
            Kind::V6Only => V4::None,
            Kind::Public => V4::Open,
            Kind::FullCone | Kind::DsLite => V4::Eif,
            Kind::AddrRestr => V4::Adf,
            Kind::DualStack | Kind::PortRestr | Kind::MapeEim | Kind::Cgn => V4::EimApdf,
            Kind::Upnp => V4::PortMapped,
            Kind::Symmetric => V4::Apdm,
            Kind::MapeSym => V4::ApdmSet,
            Kind::Nat64 => V4::Nat64,
        }
    }

    /// The server address its user gives: the IPv6 one where there is no IPv4
    /// and no NAT64 (a hostname with an AAAA record, in real life); the IPv4
    /// literal everywhere else — on the NAT64 site the SDK synthesizes the
    /// IPv6 address from the prefix its DNS64 reveals (RFC 7050).
    fn server(self) -> SocketAddr {
        match self {
            Kind::V6Only => SocketAddr::new(SERVER_V6[0].into(), RELAY_PORT),
            _ => SocketAddr::new(SERVER_V4[0].into(), RELAY_PORT),
        }
    }
}

/// Pairs where the RFC 4787 behaviours allow a direct path that the SDK does
/// not find yet. The symmetric-in-a-16-port-set side (MAP-E-like) picks an
/// unpredictable port of its set per destination; against an EIM+APDF side the
/// port-set sweep (sdk/src/ice/hardnat/, with the NAT descriptions RFC 5780 on
/// the relay gives, see [`serve`]) makes mapesym × {portrestr, mapeeim, cgn,
/// dualstack} direct. Against NAT64 it cannot: the predicted candidates are
/// IPv4 and get no NAT64 twins, so that pair goes over the relay.
const NEEDS_SWEEP: &[(Kind, Kind)] = &[(Kind::MapeSym, Kind::Nat64)];

/// The path RFC 4787 behaviours allow between `a` and `b` (order does not matter).
///
/// | | reasoning |
/// |---|---|
/// | both have IPv6 | `direct-ipv6`: no NAT; the stateful firewalls open for each side's own checks (simultaneous open) |
/// | one has no IPv4 and the other no IPv6 | `relay`: nothing but the relay (family bridging) connects them |
/// | both EIM (Open, EIF, ADF, EIM+APDF, port-mapped) | `direct-ipv4`: each side's srflx is the address it uses toward everybody; simultaneous checks open APDF filters |
/// | APDM (symmetric, whole range or port set) × Open/EIF/port-mapped | `direct-ipv4`: the symmetric side's check creates a new mapping that the other side accepts and answers (peer-reflexive) |
/// | APDM × ADF | `direct-ipv4`: the ADF side's check to the symmetric side's srflx opens its filter for that IP, any port |
/// | APDM in a 16-port set × EIM+APDF | `direct-ipv4` with the port-set sweep (the EIM side sends to all 16 ports of the set, opening its filter for whichever one the first check comes from); through NAT64 the relay today (see [`NEEDS_SWEEP`]), or direct when the random port repeats (1 in 16) |
/// | APDM (whole range) × EIM+APDF | `relay`: the port is random among ~64k and the filter wants it exactly |
/// | APDM × APDM | `relay`: both ports unpredictable per destination (two 16-port sets: direct 1 time in 256, accepted) |
/// | NAT64-only × IPv4-only | as EIM+APDF × that kind: the NAT64 (tayga + masquerade) maps EIM+APDF; the SDK synthesizes the peer's candidates through it and signals the IPv4 address the server saw |
fn rfc_expected(a: Kind, b: Kind) -> &'static str {
    if a.ipv6() && b.ipv6() {
        return "direct-ipv6";
    }
    let (x, y) = (a.ipv4(), b.ipv4());
    let nat64_like = |v: V4| if v == V4::Nat64 { V4::EimApdf } else { v };
    let (x, y) = (nat64_like(x), nat64_like(y));
    let eim = |v: V4| {
        matches!(
            v,
            V4::Open | V4::Eif | V4::Adf | V4::EimApdf | V4::PortMapped
        )
    };
    let sym = |v: V4| matches!(v, V4::Apdm | V4::ApdmSet);
    let opens_to_sym = |v: V4| matches!(v, V4::Open | V4::Eif | V4::Adf | V4::PortMapped);
    // Each arm is one row of the table above.
    let both_eim = eim(x) && eim(y);
    let sym_meets_open = (sym(x) && opens_to_sym(y)) || (sym(y) && opens_to_sym(x));
    let set_meets_apdf =
        (x == V4::ApdmSet && y == V4::EimApdf) || (y == V4::ApdmSet && x == V4::EimApdf);
    if x != V4::None && y != V4::None && (both_eim || sym_meets_open || set_meets_apdf) {
        "direct-ipv4"
    } else {
        "relay"
    }
}

/// What the test asserts today: [`rfc_expected`], except the relay for pairs
/// that wait for a feature, with the reason; and a second path accepted where
/// chance can give it.
fn asserted(a: Kind, b: Kind) -> Expect {
    let rfc = rfc_expected(a, b);
    let both_sets = a == Kind::MapeSym && b == Kind::MapeSym;
    if NEEDS_SWEEP.contains(&(a, b)) || NEEDS_SWEEP.contains(&(b, a)) {
        // The set side picks its port per destination at random among 16; 1 time
        // in 16 it is the one the server saw, which the other side already
        // answers to, and the pair goes direct without a predicted candidate.
        return Expect {
            path: "relay",
            by_chance: Some("direct-ipv4"),
            why: Some("predicted candidates get no NAT64 twins"),
        };
    }
    if both_sets {
        // Both sides' ports toward each other repeat their server ports by
        // chance (1 in 256).
        return Expect {
            path: rfc,
            by_chance: Some("direct-ipv4"),
            why: None,
        };
    }
    Expect {
        path: rfc,
        by_chance: None,
        why: None,
    }
}

/// The path a pair must end on.
#[derive(Debug, Clone, Copy)]
struct Expect {
    path: &'static str,
    /// Also accepted: what the pair gets when a random port repeats.
    by_chance: Option<&'static str>,
    /// Why `path` is the relay although RFC 4787 allows a direct path.
    why: Option<&'static str>,
}

impl Expect {
    fn accepts(&self, path: &str) -> bool {
        path == self.path || self.by_chance == Some(path)
    }
}

fn serve(lab: &mut Lab) {
    // RFC 5780 on, so each peer can describe its NAT's mapping (the port-set sweep
    // needs it). Alternate port RELAY_PORT + 1: coturn holds 3479 on both IPs, and
    // with SO_REUSEPORT on both sides the kernel would split that port's flows
    // between the two.
    common::serve(
        lab,
        SECRET,
        vec![
            SocketAddr::new(SERVER_V4[0].into(), RELAY_PORT),
            SocketAddr::new(SERVER_V6[0].into(), RELAY_PORT),
        ],
        Some(SocketAddr::new(SERVER_V4[1].into(), RELAY_PORT + 1)),
        vec![SERVER_V4[0].into(), SERVER_V6[0].into()],
    );
}

fn token(name: &str) -> String {
    common::token(SECRET, name, Duration::from_secs(600))
}

/// Where a listener's stderr goes.
fn listener_log(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tsunagi-matrix-{}-{name}.log", std::process::id()))
}

/// Starts `tsunagi peer listen` in `ns` and returns it with its peer id.
fn listen(ns: &Netns, server: SocketAddr, name: &str) -> Result<(Reap, String), String> {
    let bin = env!("CARGO_BIN_EXE_tsunagi");
    let server = server.to_string();
    let mut cmd = ns.command(
        bin,
        [
            "peer",
            "--server",
            &server,
            "--token",
            &token(name),
            "listen",
        ],
    );
    // The listener's log (RUST_LOG) lands next to the test's temp files and is
    // shown when its pair fails.
    let log_path = listener_log(name);
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    cmd.stderr(log);
    common::wait_ready(cmd, name)
}

/// Runs `tsunagi peer connect` in `ns` and returns its JSON lines.
fn connect(
    ns: &Netns,
    server: SocketAddr,
    name: &str,
    peer_id: &str,
    idle: u64,
    wait_direct: u64,
) -> Result<Vec<Value>, String> {
    let bin = env!("CARGO_BIN_EXE_tsunagi");
    let server = server.to_string();
    let (count, idle) = (MESSAGES.to_string(), idle.to_string());
    let wait_direct = wait_direct.to_string();
    let mut cmd = ns.command(
        bin,
        [
            "peer",
            "--server",
            &server,
            "--token",
            &token(name),
            "connect",
            peer_id,
            "--count",
            &count,
            "--datagrams",
            &count,
            "--idle-secs",
            &idle,
            "--wait-direct",
            &wait_direct,
        ],
    );
    let out = run_with_timeout(&mut cmd, Duration::from_secs(40)).map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "{} — stdout: {stdout} stderr: {stderr}",
            out.status
        ));
    }
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{l}: {e}")))
        .collect()
}

/// One pair of the matrix.
#[derive(Debug, Clone)]
struct Pair {
    listener: Kind,
    connector: Kind,
    listener_site: String,
    connector_site: String,
}

/// One pair's outcome.
#[derive(Debug, Clone)]
struct Row {
    pair: Pair,
    expect: Expect,
    path: String,
    first_path: String,
    connect_ms: u64,
    /// When the last path change happened, since `connect` started.
    settled_ms: Option<u64>,
    received: u64,
    datagrams: u64,
    error: Option<String>,
}

fn run_pair(hosts: &HashMap<String, Netns>, pair: &Pair) -> Row {
    let mut row = Row {
        pair: pair.clone(),
        expect: asserted(pair.listener, pair.connector),
        path: "-".into(),
        first_path: "-".into(),
        connect_ms: 0,
        settled_ms: None,
        received: 0,
        datagrams: 0,
        error: None,
    };
    let outcome = (|| -> Result<Vec<Value>, String> {
        let lns = hosts[&pair.listener_site].clone();
        let cns = hosts[&pair.connector_site].clone();
        let (_listener, id) = listen(&lns, pair.listener.server(), &pair.listener_site)?;
        // A pair that must go direct gets up to 15 s for it (a loaded machine
        // can take seconds): the test waits for the upgrade, not for a fixed time.
        let wait_direct = if row.expect.path == "relay" { 0 } else { 15 };
        connect(
            &cns,
            pair.connector.server(),
            &pair.connector_site,
            &id,
            2,
            wait_direct,
        )
    })();
    let log_path = listener_log(&pair.listener_site);
    let outcome = outcome.map_err(|e| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        format!("{e}\nlistener log:\n{log}")
    });
    let _ = std::fs::remove_file(&log_path);
    match outcome {
        Ok(events) => {
            if let Some(c) = events.iter().find(|e| e["event"] == "connected") {
                row.first_path = c["path"].as_str().unwrap_or("?").to_owned();
                row.connect_ms = c["connect_ms"].as_u64().unwrap_or(0);
            }
            row.settled_ms = events
                .iter()
                .filter(|e| e["event"] == "path")
                .filter_map(|e| e["after_ms"].as_u64())
                .next_back();
            match events.last() {
                Some(done) if done["event"] == "done" => {
                    row.path = done["path"].as_str().unwrap_or("?").to_owned();
                    row.received = done["received"].as_u64().unwrap_or(0);
                    row.datagrams = done["datagrams_received"].as_u64().unwrap_or(0);
                }
                _ => row.error = Some(format!("no done line: {events:?}")),
            }
        }
        Err(e) => row.error = Some(e),
    }
    row
}

/// Runs `pairs` on `workers` threads, never two pairs on one site at once.
fn run_all(lab: &Lab, pairs: Vec<Pair>, workers: usize) -> Vec<Row> {
    let hosts: HashMap<String, Netns> = lab
        .sites()
        .iter()
        .map(|s| {
            (
                s.spec.name.clone(),
                lab.host(&s.spec.name).unwrap().ns.clone(),
            )
        })
        .collect();
    let hosts = &hosts;
    struct Queue {
        pending: Vec<Pair>,
        busy: HashSet<String>,
        rows: Vec<Row>,
    }
    let queue = Arc::new((
        Mutex::new(Queue {
            pending: pairs,
            busy: HashSet::new(),
            rows: Vec::new(),
        }),
        Condvar::new(),
    ));
    std::thread::scope(|s| {
        for _ in 0..workers {
            let queue = queue.clone();
            s.spawn(move || {
                let (lock, cv) = &*queue;
                loop {
                    let pair = {
                        let mut q = lock.lock().unwrap();
                        loop {
                            if q.pending.is_empty() {
                                return;
                            }
                            let free = q.pending.iter().position(|p| {
                                !q.busy.contains(&p.listener_site)
                                    && !q.busy.contains(&p.connector_site)
                            });
                            if let Some(i) = free {
                                let p = q.pending.remove(i);
                                q.busy.insert(p.listener_site.clone());
                                q.busy.insert(p.connector_site.clone());
                                break p;
                            }
                            q = cv.wait(q).unwrap();
                        }
                    };
                    let row = run_pair(hosts, &pair);
                    let mut q = lock.lock().unwrap();
                    q.busy.remove(&pair.listener_site);
                    q.busy.remove(&pair.connector_site);
                    q.rows.push(row);
                    cv.notify_all();
                }
            });
        }
    });
    let mut rows = std::mem::take(&mut queue.0.lock().unwrap().rows);
    rows.sort_by_key(|r| (r.pair.listener, r.pair.connector));
    rows
}

fn print_table(rows: &[Row]) {
    println!(
        "| listener | connector | expected | first path | settled path | connect ms | settled after ms | messages | datagrams | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let mut note = String::new();
        if let Some(why) = r.expect.why {
            note.push_str(&format!(
                "relay for now: {why} (RFC: {})",
                rfc_expected(r.pair.listener, r.pair.connector)
            ));
        }
        if r.path != r.expect.path && r.expect.accepts(&r.path) {
            note.push_str(" direct by chance (a random port repeated)");
        } else if !r.expect.accepts(&r.path) {
            note.push_str(" **UNEXPECTED PATH**");
        }
        if let Some(e) = &r.error {
            note.push_str(&format!(" **ERROR** {}", e.replace('\n', " ")));
        }
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {}/{MESSAGES} | {}/{MESSAGES} | {} |",
            r.pair.listener_site,
            r.pair.connector_site,
            r.expect.path,
            r.first_path,
            r.path,
            r.connect_ms,
            r.settled_ms.map_or("-".to_owned(), |m| m.to_string()),
            r.received,
            r.datagrams,
            note.trim(),
        );
    }
}

#[test]
fn nat_matrix_every_pair_of_site_kinds() {
    if !natlab::is_root() {
        println!("SKIPPED(not root): the NAT matrix needs root for network namespaces");
        return;
    }
    let started = Instant::now();
    let topology = KINDS
        .iter()
        .flat_map(|k| ["a", "b"].map(|s| Site::new(&format!("{}{s}", k.stem()), k.site_kind())))
        .fold(Topology::new(), Topology::site);
    let mut lab = Lab::build(topology).expect("building the lab");
    let built = started.elapsed();
    serve(&mut lab);
    // Every unordered pair, a kind with itself included; the a/b site of each
    // side alternates so that the load spreads over both sites of a kind.
    let mut pairs = Vec::new();
    for (i, &x) in KINDS.iter().enumerate() {
        for (j, &y) in KINDS.iter().enumerate().skip(i) {
            let (ls, cs) = if i == j {
                ("a", "b")
            } else {
                (["a", "b"][j % 2], ["a", "b"][i % 2])
            };
            pairs.push(Pair {
                listener: x,
                connector: y,
                listener_site: format!("{}{ls}", x.stem()),
                connector_site: format!("{}{cs}", y.stem()),
            });
        }
    }
    assert_eq!(pairs.len(), 91);
    // TSUNAGI_MATRIX_KINDS=upnp,addrrestr runs only the pairs of those stems
    // (for chasing one pair; with RUST_LOG=tsunagi=debug a failing connector's
    // log is in the table).
    let only = std::env::var("TSUNAGI_MATRIX_KINDS").ok();
    if let Some(only) = &only {
        let stems: Vec<&str> = only.split(',').collect();
        pairs.retain(|p| stems.contains(&p.listener.stem()) && stems.contains(&p.connector.stem()));
    }
    let matrix_started = Instant::now();
    let rows = run_all(&lab, pairs, PARALLEL);
    let matrix = matrix_started.elapsed();
    print_table(&rows);
    let direct = rows.iter().filter(|r| r.path.starts_with("direct")).count();
    println!(
        "ROW | nat matrix | {} pairs, {direct} direct, lab built in {built:?}, pairs ran in {matrix:?} ({PARALLEL} at a time), total {:?}",
        rows.len(),
        started.elapsed()
    );
    if only.is_none() {
        assert_eq!(rows.len(), 91);
    }
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| {
            r.error.is_some()
                || !r.expect.accepts(&r.path)
                || r.received != MESSAGES
                || r.datagrams != MESSAGES
        })
        .map(|r| {
            format!(
                "{} → {}: expected {}, got {} ({}/{MESSAGES} messages, {}/{MESSAGES} datagrams){}",
                r.pair.connector_site,
                r.pair.listener_site,
                r.expect.path,
                r.path,
                r.received,
                r.datagrams,
                r.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} pairs failed:\n{}",
        bad.len(),
        rows.len(),
        bad.join("\n")
    );
}

/// The translated (external) source ports of the UDP flows `host` started
/// through the NAT on `router`, and the remote addresses they go to.
fn external_ports(
    router: &Netns,
    host: std::net::Ipv4Addr,
) -> (BTreeSet<u16>, BTreeSet<String>, BTreeSet<u16>) {
    let out = router
        .exec_unchecked("conntrack", ["-L", "-p", "udp", "-s", &host.to_string()])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let (mut ports, mut remotes, mut local) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for line in out.lines() {
        // original: src dst sport dport; reply: src dst sport dport (dport = external port)
        let field = |key: &str| -> Vec<&str> {
            line.split_whitespace()
                .filter_map(|w| w.strip_prefix(key))
                .collect()
        };
        let (dst, sport, dport) = (field("dst="), field("sport="), field("dport="));
        if let (Some(d), Some(s), Some(ext)) = (dst.first(), sport.first(), dport.get(1)) {
            if line.contains("UNREPLIED") {
                continue;
            }
            remotes.insert((*d).to_owned());
            local.insert(s.parse().unwrap_or(0));
            ports.insert(ext.parse().unwrap_or(0));
        }
    }
    (ports, remotes, local)
}

#[test]
fn eight_peers_through_one_eim_nat_use_one_external_port() {
    if !natlab::is_root() {
        println!("SKIPPED(not root): the port-count check needs root for network namespaces");
        return;
    }
    let peers = 8;
    let topology = Topology::new()
        .site(Site::new("eim", SiteKind::Nat(Nat::port_restricted())))
        .site(Site::new("peers", SiteKind::Public).hosts(peers));
    let mut lab = Lab::build(topology).expect("building the lab");
    serve(&mut lab);
    let server = SocketAddr::new(SERVER_V4[0].into(), RELAY_PORT);
    let host = lab.host("eim").unwrap();
    let (host_ns, host_v4) = (host.ns.clone(), host.v4().unwrap());
    let router = lab
        .node(&lab.site("eim").unwrap().edge_router)
        .unwrap()
        .ns
        .clone();
    let (_listener, id) = listen(&host_ns, server, "eim").unwrap();
    // Eight connectors on eight public hosts, each idle long enough for the
    // conntrack poll below to see all eight sessions alive at once.
    let names: Vec<String> = lab.site("peers").unwrap().hosts.clone();
    let results: Vec<Result<Vec<Value>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                let ns = lab.node(n).unwrap().ns.clone();
                let id = id.clone();
                s.spawn(move || connect(&ns, server, "peer", &id, 8, 0))
            })
            .collect();
        // The condition: replied flows from the listener to all eight peers.
        let deadline = Instant::now() + Duration::from_secs(30);
        let peer_ips: BTreeSet<String> = names
            .iter()
            .map(|n| lab.node(n).unwrap().v4().unwrap().to_string())
            .collect();
        let mut seen = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        while Instant::now() < deadline {
            seen = external_ports(&router, host_v4);
            if peer_ips.is_subset(&seen.1) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let (ports, remotes, local) = &seen;
        println!(
            "ROW | port count | listener {host_v4} local ports {local:?} → external ports {ports:?} toward {} remotes: {remotes:?}",
            remotes.len()
        );
        assert!(
            peer_ips.is_subset(remotes),
            "within 30 s conntrack on the EIM router did not show replied flows to all {peers} peers {peer_ips:?}; saw {remotes:?}"
        );
        assert_eq!(
            local.len(),
            1,
            "the listener used more than one local port: {local:?}"
        );
        assert_eq!(
            ports.len(),
            1,
            "{} remotes (server + {peers} peers) through an EIM NAT should share one external port, saw {ports:?}",
            remotes.len()
        );
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let _ = std::fs::remove_file(listener_log("eim"));
    for (n, r) in names.iter().zip(results) {
        let events = r.unwrap_or_else(|e| panic!("{n}: {e}"));
        let done = events.last().unwrap();
        assert_eq!(done["event"], "done", "{n}: {events:?}");
        assert_eq!(done["path"], "direct-ipv4", "{n}: {events:?}");
        assert_eq!(done["received"], MESSAGES, "{n}: {events:?}");
    }
}
