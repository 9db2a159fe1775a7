//! `tsunagi natcheck` against real kernel NATs (issue 3 item 6): for every behaviour of
//! the NAT lab's catalog, the real binary runs inside the site's host namespace against
//! tsunagi-relay's RFC 5780 service (served in-process in the lab's server namespace,
//! IPv4 and IPv6), and its verdict must match the lab's label and agree with coturn's
//! `turnutils_natdiscovery -m -f` run from the same host against the same relay.
//!
//! Needs root; prints `SKIPPED(not root)` otherwise. Each test builds its own lab; the
//! catalog test checks all sites in parallel with `--quick`, the lifetime test runs one
//! full check. With `NATCHECK_LAB_RECORD=1` the catalog test also runs a full check
//! and prints the English and Japanese reports of every site (for the docs);
//! `NATCHECK_LAB_SITES=cgn,dslite` limits it to some sites.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use natlab::netns::run_with_timeout;
use natlab::{Knobs, Lab, Node, SERVER_V4, SERVER_V6, Site, SiteInfo, SiteKind, Topology, catalog};
use serde_json::Value;
use tsunagi_relay::udp::{Options, Running, start};

/// The relay's service, stopped when the lab drops it.
#[derive(Debug)]
struct Relay(Vec<Running>);

impl Drop for Relay {
    fn drop(&mut self) {
        for r in self.0.drain(..) {
            r.shutdown(Duration::from_secs(1));
        }
    }
}

/// Starts tsunagi-relay's RFC 5780 service in the server namespace: 198.18.0.10:3478
/// with alternate 198.18.0.11:3479, and the same on 2001:db8::10 / ::11.
fn serve(lab: &mut Lab) {
    let ns = lab.server().unwrap().ns.clone();
    let running = ns
        .run(|| {
            [
                (SERVER_V4[0].into(), SERVER_V4[1].into()),
                (SERVER_V6[0].into(), SERVER_V6[1].into()),
            ]
            .into_iter()
            .map(|(a, b): (IpAddr, IpAddr)| {
                start(&Options {
                    listen: vec![SocketAddr::new(a, 3478)],
                    rfc5780_alternate: Some(SocketAddr::new(b, 3479)),
                    threads: 1,
                    ..Options::default()
                })
            })
            .collect::<Result<Vec<_>, _>>()
        })
        .expect("entering the server namespace")
        .expect("starting tsunagi-relay's RFC 5780 service in the server namespace");
    lab.keep(Box::new(Relay(running)));
}

fn lab(test: &str, sites: Vec<Site>) -> Option<Lab> {
    if !natlab::is_root() {
        println!("SKIPPED(not root): {test} needs root for network namespaces");
        return None;
    }
    let mut lab = Lab::build(sites.into_iter().fold(Topology::new(), Topology::site))
        .expect("building the lab");
    serve(&mut lab);
    Some(lab)
}

/// What the lab says a site is.
#[derive(Debug, Clone, PartialEq)]
struct Label {
    mapping: &'static str,
    filtering: &'static str,
    layers: u64,
    cgn: bool,
    ipv6: Option<&'static str>,
}

const EI: &str = "endpoint-independent";
const AD: &str = "address-dependent";
const APD: &str = "address-and-port-dependent";

fn label(kind: &SiteKind) -> Label {
    let strictness = |s: &str| [EI, AD, APD].iter().position(|x| *x == s).unwrap_or(0);
    let (mut mapping, mut filtering) = (EI, EI);
    for nat in kind.nats() {
        let m = match nat.mapping {
            natlab::Mapping::EndpointIndependent => EI,
            natlab::Mapping::AddressAndPortDependent => APD,
        };
        let f = match nat.filtering {
            natlab::Filtering::EndpointIndependent => EI,
            natlab::Filtering::AddressDependent => AD,
            natlab::Filtering::AddressAndPortDependent => APD,
        };
        mapping = if strictness(m) > strictness(mapping) {
            m
        } else {
            mapping
        };
        filtering = if strictness(f) > strictness(filtering) {
            f
        } else {
            filtering
        };
    }
    let v6_only = matches!(kind, SiteKind::Ipv6Only | SiteKind::Nat64);
    if v6_only {
        // Checked over IPv6: no NAT, the stateful firewall filters.
        filtering = APD;
    }
    let ipv6 = match kind {
        SiteKind::Public => Some(EI),
        SiteKind::Ipv6Only | SiteKind::Nat64 | SiteKind::DualStack(_) | SiteKind::DsLite { .. } => {
            Some(APD)
        }
        _ => None,
    };
    Label {
        mapping,
        filtering,
        layers: kind.nats().len() as u64 * u64::from(!v6_only),
        cgn: matches!(kind, SiteKind::Cgn { .. } | SiteKind::DsLite { .. }),
        ipv6,
    }
}

/// The server as the site's host reaches it: IPv6 for IPv6-only sites.
fn server_for(kind: &SiteKind) -> String {
    match kind {
        SiteKind::Ipv6Only | SiteKind::Nat64 => format!("[{}]:3478", SERVER_V6[0]),
        _ => format!("{}:3478", SERVER_V4[0]),
    }
}

/// Runs `tsunagi natcheck ARGS` in the site's host namespace; returns stdout and the
/// wall time.
fn natcheck(host: &Node, site: &SiteInfo, args: &[&str], limit: Duration) -> (String, Duration) {
    let server = server_for(&site.spec.kind);
    let server6 = format!("[{}]:3478", SERVER_V6[0]);
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        host.ns.name(),
        env!("CARGO_BIN_EXE_tsunagi"),
        "natcheck",
    ])
    .args(["--server", &server, "--server6", &server6])
    .args(args)
    .env("LANG", "C")
    .env_remove("LC_ALL")
    .env_remove("LC_MESSAGES");
    let dns64 = site.dns64().map(|d| d.ip().to_string());
    if let Some(d) = &dns64 {
        cmd.args(["--dns64", d]);
    }
    let started = Instant::now();
    let out = run_with_timeout(&mut cmd, limit).expect("tsunagi natcheck runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}: natcheck {args:?} exited {:?}\n{stdout}\n{}",
        site.spec.name,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, took)
}

/// coturn's `turnutils_natdiscovery -m -f` verdicts: (mapping, filtering), in its words.
fn natdiscovery(host: &Node, site: &SiteInfo) -> (Option<String>, Option<String>, String) {
    let server = match site.spec.kind {
        SiteKind::Ipv6Only | SiteKind::Nat64 => SERVER_V6[0].to_string(),
        _ => SERVER_V4[0].to_string(),
    };
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        host.ns.name(),
        "turnutils_natdiscovery",
        "-m",
        "-f",
    ])
    .arg(server);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(40))
        .expect("turnutils_natdiscovery (package coturn) must run");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let verdict = |kind: &str| {
        text.lines().find_map(|l| {
            let l = l.trim();
            if l.contains("No NAT") && kind == "Mapping" {
                return Some("No NAT".to_owned());
            }
            Some(
                l.strip_prefix("NAT with ")?
                    .strip_suffix(&format!(" {kind}!"))?
                    .to_owned(),
            )
        })
    };
    (verdict("Mapping"), verdict("Filtering"), text)
}

/// natdiscovery's words for an RFC 4787 behaviour.
fn words(b: &str) -> &'static str {
    match b {
        EI => "Endpoint Independent",
        AD => "Address Dependent",
        _ => "Address and Port Dependent",
    }
}

/// Checks one site; returns its table row.
fn check_site(host: &Node, site: &SiteInfo, record: bool) -> String {
    let name = &site.spec.name;
    let want = label(&site.spec.kind);
    // A NAT that picks a random port out of 16 per destination repeats a port by chance
    // (≈ 1 in 8 per check), which any RFC 5780 test reads as endpoint- or
    // address-dependence. On such a site the check runs up to 4 times and must show the
    // label once (miss probability ≈ 2e-4); natlab's self-test checks the site itself.
    let random_small_set = site.spec.kind.nats().first().is_some_and(|n| {
        n.port_set.is_some() && n.mapping == natlab::Mapping::AddressAndPortDependent
    });
    let tries = if random_small_set { 4 } else { 1 };
    let (mut json, mut quick) = (String::new(), Duration::ZERO);
    for _ in 0..tries {
        (json, quick) = natcheck(host, site, &["--json", "--quick"], Duration::from_secs(40));
        let v: Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}\n{json}"));
        if v["mapping"] == want.mapping {
            break;
        }
    }
    let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}\n{json}"));
    let ctx = format!("{name} ({}):\n{v:#}", site.spec.kind.describe());
    assert_eq!(v["mapping"], want.mapping, "mapping of {ctx}");
    assert_eq!(v["filtering"], want.filtering, "filtering of {ctx}");
    assert_eq!(v["nat_layers"], want.layers, "NAT layers of {ctx}");
    assert_eq!(v["cgn"], want.cgn, "CGN of {ctx}");
    match want.ipv6 {
        Some(f) => {
            assert_eq!(v["ipv6"]["reachable"], true, "IPv6 of {ctx}");
            assert_eq!(v["ipv6"]["filtering"], f, "IPv6 filtering of {ctx}");
        }
        None => assert_ne!(v["ipv6"]["reachable"], true, "IPv6 of {ctx}"),
    }
    if let Some(n) = site.spec.kind.nats().first()
        && let Some((first, count)) = n.port_set
    {
        let (min, max) = (&v["port_range"]["min"], &v["port_range"]["max"]);
        let (min, max) = (min.as_u64().unwrap_or(0), max.as_u64().unwrap_or(0));
        assert!(
            min >= u64::from(first) && max < u64::from(first) + u64::from(count),
            "ports {min}-{max} outside the set of {ctx}"
        );
    }
    let nat64 = v["nat64_prefix"].as_str().map(str::to_owned);
    if site.spec.kind == SiteKind::Nat64 {
        assert_eq!(nat64.as_deref(), Some("2001:db8:46::/96"), "NAT64 of {ctx}");
    } else {
        assert_eq!(nat64, None, "NAT64 of {ctx}");
    }
    let upnp = matches!(site.spec.kind, SiteKind::Upnp(_));
    for proto in ["upnp_igd", "nat_pmp", "pcp"] {
        let present = v["port_mapping"][proto]["present"] == true;
        assert_eq!(present, upnp, "{proto} on {ctx}");
    }
    let (m, f, text) = natdiscovery(host, site);
    // With no NAT (public) natdiscovery may also say "No NAT". On a random 16-port set
    // natdiscovery's single run is wrong about 1 time in 8 for the reason above; the
    // natlab self-test confirms that site with it deterministically.
    let no_nat = v["nat_layers"] == 0 && m.as_deref() == Some("No NAT");
    if !no_nat && !random_small_set {
        assert_eq!(
            m.as_deref(),
            Some(words(want.mapping)),
            "natdiscovery mapping, {name}:\n{text}"
        );
        assert_eq!(
            f.as_deref(),
            Some(words(want.filtering)),
            "natdiscovery filtering, {name}:\n{text}"
        );
    }
    let mut row = format!(
        "ROW | {name:<9} | {} / {} | layers {} cgn {} | ports {}-{} | v6 {} {} | nat64 {} | upnp {} | natdiscovery {} / {} | quick {:.1} s",
        v["mapping"].as_str().unwrap_or("null"),
        v["filtering"].as_str().unwrap_or("null"),
        v["nat_layers"],
        v["cgn"],
        v["port_range"]["min"],
        v["port_range"]["max"],
        v["ipv6"]["reachable"],
        v["ipv6"]["filtering"],
        v["nat64_prefix"],
        v["port_mapping"]["upnp_igd"]["present"],
        m.as_deref().unwrap_or("-"),
        f.as_deref().unwrap_or("-"),
        quick.as_secs_f64(),
    );
    if record {
        // The quick one first: a full check's lifetime trials hold up to a dozen
        // mappings for a while, which exhausts a 16-port MAP-E set towards the server.
        let (ja, _) = natcheck(
            host,
            site,
            &["--lang", "ja", "--quick"],
            Duration::from_secs(40),
        );
        let (en, full) = natcheck(host, site, &["--lang", "en"], Duration::from_secs(900));
        row.push_str(&format!(" | full {:.1} s", full.as_secs_f64()));
        println!("=== {name} ja (quick)\n{ja}\n=== {name} en (full)\n{en}");
    }
    row
}

#[test]
fn every_catalog_behaviour_matches_its_label_and_natdiscovery() {
    // NATCHECK_LAB_SITES=a,b limits the run to some sites (by catalog name).
    let only = std::env::var("NATCHECK_LAB_SITES").ok();
    let sites = catalog()
        .into_iter()
        .filter(|s| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == s.name))
        })
        .collect();
    let Some(lab) = lab("natcheck_lab", sites) else {
        return;
    };
    let record = std::env::var_os("NATCHECK_LAB_RECORD").is_some();
    let started = Instant::now();
    let rows: Vec<std::thread::Result<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = lab
            .sites()
            .iter()
            .map(|site| {
                let host = lab.host(&site.spec.name).unwrap().clone();
                let site = site.clone();
                s.spawn(move || check_site(&host, &site, record))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut failed = 0;
    for row in &rows {
        match row {
            Ok(r) => println!("{r}"),
            Err(_) => failed += 1,
        }
    }
    println!("all sites checked in {:?}", started.elapsed());
    assert_eq!(failed, 0, "{failed} site(s) failed; see the panics above");
}

/// A full check (no --quick) on a port-restricted NAT whose conntrack timers are 5 s
/// (unreplied) and 8 s (stream). The lifetime trial's mapping sees one request and one
/// response within two seconds, so conntrack never marks it ASSURED and the
/// *unreplied* timer applies: 5 s (see `tsunagi::diag` `lifetime.rs`).
#[test]
fn session_timer_within_20_percent_of_the_unreplied_conntrack_timer() {
    let s = Site::new("timer", SiteKind::Nat(natlab::Nat::port_restricted())).knobs(Knobs {
        udp_timeout: Some((Duration::from_secs(5), Duration::from_secs(8))),
        ..Knobs::default()
    });
    let Some(lab) = lab("natcheck_lifetime", vec![s]) else {
        return;
    };
    let site = lab.site("timer").unwrap();
    let host = lab.host("timer").unwrap();
    let (json, took) = natcheck(
        host,
        site,
        &["--json", "--max-lifetime", "20"],
        Duration::from_secs(90),
    );
    let v: Value = serde_json::from_str(&json).unwrap();
    let lifetime = v["binding_lifetime_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("no lifetime:\n{v:#}"));
    println!(
        "ROW | timer | lifetime {lifetime} s (bracket {}) in {took:?}; conntrack unreplied timer 5 s",
        v["binding_lifetime"]
    );
    assert!(
        (4.0..=6.0).contains(&lifetime),
        "{lifetime} s is not within 20 % of 5 s:\n{v:#}"
    );
    assert_eq!(v["mapping"], EI);
    assert_eq!(v["filtering"], APD);
}
