//! The lab's self-test: every behaviour's label is confirmed by an independent tool —
//! coturn's `turnutils_natdiscovery` (RFC 5780) for mapping and filtering, `conntrack`
//! for port sets, NAT layers and timers, and plain UDP probes for firewalls, NAT64 and
//! DS-Lite. A label the tool contradicts fails the test. Needs root; skips otherwise.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers outside #[test] fns

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Discovery, conntrack, ct_timeout, delivered, lab, natdiscovery, reply_field, sock};
use natlab::probe::{Reflector, observed_address};
use natlab::{Knobs, Lab, SERVER_V4, SERVER_V6, Site, catalog};

const ANY4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const ANY6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

fn site(name: &str) -> Site {
    catalog()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a catalog site")
}

/// Builds a one-site lab with coturn running, or `None` when not root.
fn lab_with_coturn(test: &str, s: Site) -> Option<Lab> {
    let mut lab = lab(test, vec![s])?;
    natlab::coturn::start(&mut lab, &[]).expect("starting coturn in the server namespace");
    Some(lab)
}

/// natdiscovery -m -f from the site's host must report `mapping` and `filtering`, and
/// the reflexive address must be the site's public address.
fn discover(lab: &Lab, name: &str, mapping: &str, filtering: &str) -> Discovery {
    let host = lab.host(name).unwrap();
    let d = natdiscovery(host, &["-m", "-f"]);
    println!(
        "{name}: natdiscovery says mapping {:?}, filtering {:?}",
        d.mapping, d.filtering
    );
    assert_eq!(
        d.mapping.as_deref(),
        Some(mapping),
        "mapping of {name}:\n{}",
        d.output
    );
    assert_eq!(
        d.filtering.as_deref(),
        Some(filtering),
        "filtering of {name}:\n{}",
        d.output
    );
    let public = lab.site(name).unwrap().public_v4.map(IpAddr::V4);
    assert!(!d.reflexive.is_empty(), "{}", d.output);
    for a in &d.reflexive {
        assert_eq!(
            Some(a.ip()),
            public,
            "{name} appears from the wrong address:\n{}",
            d.output
        );
    }
    d
}

#[test]
fn full_cone_is_eim_eif() {
    let Some(lab) = lab_with_coturn("full_cone", site("fullcone")) else {
        return;
    };
    discover(
        &lab,
        "fullcone",
        "Endpoint Independent",
        "Endpoint Independent",
    );
}

#[test]
fn address_restricted_is_eim_adf() {
    let Some(lab) = lab_with_coturn("address_restricted", site("addrrestr")) else {
        return;
    };
    discover(
        &lab,
        "addrrestr",
        "Endpoint Independent",
        "Address Dependent",
    );
}

#[test]
fn port_restricted_is_eim_apdf() {
    let Some(lab) = lab_with_coturn("port_restricted", site("portrestr")) else {
        return;
    };
    discover(
        &lab,
        "portrestr",
        "Endpoint Independent",
        "Address and Port Dependent",
    );
}

#[test]
fn symmetric_is_apdm_apdf() {
    let Some(lab) = lab_with_coturn("symmetric", site("symmetric")) else {
        return;
    };
    let d = discover(
        &lab,
        "symmetric",
        "Address and Port Dependent",
        "Address and Port Dependent",
    );
    let ports: std::collections::BTreeSet<u16> = d.reflexive.iter().map(|a| a.port()).collect();
    assert!(
        ports.len() >= 2,
        "a symmetric NAT shows several ports: {ports:?}"
    );
}

#[test]
fn port_set_eim_is_eim_inside_its_set() {
    let Some(lab) = lab_with_coturn("port_set_eim", site("mapeeim")) else {
        return;
    };
    let d = discover(
        &lab,
        "mapeeim",
        "Endpoint Independent",
        "Address and Port Dependent",
    );
    for a in &d.reflexive {
        assert!(
            (20000..=20015).contains(&a.port()),
            "port {} outside the set",
            a.port()
        );
    }
}

/// A random port out of only 16 repeats with probability 1/16 per new destination, and
/// RFC 5780 tests read a repeat as endpoint-independence: a single natdiscovery run
/// on this NAT is right only most of the time. So, deterministically:
/// - filtering: `-f` alone in a fresh lab, where no other flow can hold a port that
///   the change-IP/change-port answers could match, so APDF shows every time;
/// - mapping: `-m` runs (each with a fresh socket) until one shows APDM; each run
///   shows it with probability (15/16)^2 ≈ 0.88, so 8 runs all missing it has
///   probability ≈ 4e-8. Every run must stay inside the set.
#[test]
fn port_set_symmetric_is_apdm_inside_its_set() {
    let Some(lab) = lab_with_coturn("port_set_sym", site("mapesym")) else {
        return;
    };
    let host = lab.host("mapesym").unwrap();
    let f = natdiscovery(host, &["-f"]);
    assert_eq!(
        f.filtering.as_deref(),
        Some("Address and Port Dependent"),
        "{}",
        f.output
    );
    let mut outputs = Vec::new();
    for _ in 0..8 {
        let m = natdiscovery(host, &["-m"]);
        for a in &m.reflexive {
            assert!(
                (20000..=20015).contains(&a.port()),
                "port {} outside the set",
                a.port()
            );
        }
        let apdm = m.mapping.as_deref() == Some("Address and Port Dependent");
        outputs.push(m.output);
        if apdm {
            println!(
                "mapesym: APDF, and APDM after {} natdiscovery -m run(s)",
                outputs.len()
            );
            return;
        }
    }
    panic!(
        "8 natdiscovery -m runs never saw APDM:\n{}",
        outputs.join("\n---\n")
    );
}

/// 24 internal sockets open flows to one destination through a 16-port set: conntrack
/// shows exactly 16 translations, all inside the set; the rest were dropped. (Flows to
/// different destinations may reuse a port, as on real MAP-E CEs and Linux NAT.)
/// conntrack lines of `node` matching `pred`, once at least `want` of them exist
/// (or after 5 s, returning what is there for the assertion to report).
fn conntrack_until(node: &natlab::Node, pred: impl Fn(&str) -> bool, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines: Vec<String> = conntrack(node).into_iter().filter(|l| pred(l)).collect();
        if lines.len() >= want || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn port_budget(name: &str) {
    let Some(lab) = lab(name, vec![site(name)]) else {
        return;
    };
    let host = lab.host(name).unwrap();
    let router = lab.node(&lab.site(name).unwrap().edge_router).unwrap();
    let to = SocketAddr::new(IpAddr::V4(SERVER_V4[0]), 50000);
    for i in 0..24 {
        sock(host, ANY4, 41000 + i).send_to(b"flow", to).unwrap();
    }
    // The router handles the datagrams after send_to returns: wait for the 16 entries
    // (the NAT can never admit more, so reading once they are there is final).
    let flows = conntrack_until(router, |l| l.contains("src=192.168."), 16);
    let ports: Vec<u16> = flows
        .iter()
        .filter_map(|l| reply_field(l, "dport")?.parse().ok())
        .collect();
    println!(
        "{name}: 24 flows to one destination, conntrack holds {}: ports {ports:?}",
        flows.len()
    );
    assert_eq!(
        flows.len(),
        16,
        "a 16-port set admits 16 flows:\n{}",
        flows.join("\n")
    );
    assert!(
        ports.iter().all(|p| (20000..=20015).contains(p)),
        "{ports:?}"
    );
    // One socket to many destinations: every translation stays inside the set.
    let s = sock(host, ANY4, 42000);
    for i in 0..24 {
        s.send_to(b"flow", (SERVER_V4[1], 50000 + i)).unwrap();
    }
    // Distinct destinations: all 24 get an entry (ports may repeat across them).
    let ports: std::collections::BTreeSet<u16> =
        conntrack_until(router, |l| l.contains("sport=42000"), 24)
            .iter()
            .filter_map(|l| reply_field(l, "dport")?.parse().ok())
            .collect();
    println!("{name}: one socket to 24 destinations used external ports {ports:?}");
    assert!(
        !ports.is_empty() && ports.iter().all(|p| (20000..=20015).contains(p)),
        "{ports:?}"
    );
}

#[test]
fn port_set_eim_admits_at_most_its_ports() {
    port_budget("mapeeim");
}

#[test]
fn port_set_symmetric_admits_at_most_its_ports() {
    port_budget("mapesym");
}

#[test]
fn cgn_is_two_nat_layers() {
    let Some(lab) = lab_with_coturn("cgn", site("cgn")) else {
        return;
    };
    discover(
        &lab,
        "cgn",
        "Endpoint Independent",
        "Address and Port Dependent",
    );
    // Each layer translated: the home router maps 192.168.x to its 100.64.x WAN, and the
    // CGN maps that to its 198.18.x WAN.
    let home = conntrack(lab.node("cgn.router").unwrap());
    let carrier = conntrack(lab.node("cgn.cgn").unwrap());
    let home_wan = lab.node("cgn.router").unwrap().v4().unwrap().to_string();
    let cgn_wan = lab.node("cgn.cgn").unwrap().v4().unwrap().to_string();
    assert!(
        home.iter()
            .any(|l| l.contains("src=192.168.") && l.contains(&format!("dst={home_wan}"))),
        "home layer:\n{}",
        home.join("\n")
    );
    assert!(
        carrier.iter().any(
            |l| l.contains(&format!("src={home_wan}")) && l.contains(&format!("dst={cgn_wan}"))
        ),
        "CGN layer:\n{}",
        carrier.join("\n")
    );
    assert!(
        home_wan.starts_with("100.64."),
        "the home WAN is in the shared space"
    );
}

#[test]
fn ds_lite_carries_ipv4_over_ipv6_to_an_eim_eif_aftr() {
    let Some(lab) = lab_with_coturn("ds_lite", site("dslite")) else {
        return;
    };
    discover(
        &lab,
        "dslite",
        "Endpoint Independent",
        "Endpoint Independent",
    );
    let host = lab.host("dslite").unwrap();
    // The host's only link carries no IPv4: IPv4 exists only inside the softwire.
    let out = host
        .ns
        .exec("ip", ["-4", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(out.stdout.is_empty(), "eth0 must be IPv6-only");
    let aftr = conntrack(lab.node("dslite.router").unwrap());
    assert!(
        aftr.iter().any(|l| l.contains("src=192.0.0.2")),
        "{}",
        aftr.join("\n")
    );
    // And the VXLAN runs over IPv6 between B4 and AFTR.
    let out = host
        .ns
        .exec("ip", ["-d", "link", "show", "softwire"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("vxlan id 1 remote 2001:db8:"), "{text}");
}

/// A stateful IPv6 firewall: replies pass, unsolicited inbound does not.
fn ipv6_is_stateful(lab: &Lab, name: &str) {
    let host = lab.host(name).unwrap();
    let server = lab.server().unwrap();
    let h6 = host.v6().unwrap();
    let inside = sock(host, ANY6, 42000);
    let outside = sock(server, IpAddr::V6(SERVER_V6[0]), 42001);
    let other = sock(server, IpAddr::V6(SERVER_V6[0]), 42002);
    let to_host = SocketAddr::new(IpAddr::V6(h6), 42000);
    assert!(
        !delivered(&outside, to_host, &inside, b"unsolicited"),
        "{name}: firewall let it in"
    );
    let to_server = outside.local_addr().unwrap();
    assert!(
        delivered(&inside, to_server, &outside, b"hello"),
        "{name}: outbound IPv6"
    );
    assert!(
        delivered(&outside, to_host, &inside, b"reply"),
        "{name}: reply blocked"
    );
    assert!(
        !delivered(&other, to_host, &inside, b"other port"),
        "{name}: APDF for IPv6"
    );
}

#[test]
fn ipv6_only_host_has_a_stateful_firewall() {
    let Some(lab) = lab("v6only", vec![site("v6only")]) else {
        return;
    };
    assert!(lab.host("v6only").unwrap().v4().is_none());
    ipv6_is_stateful(&lab, "v6only");
}

#[test]
fn dual_stack_home_nats_ipv4_and_firewalls_ipv6() {
    let Some(lab) = lab_with_coturn("dual_stack", site("dualstack")) else {
        return;
    };
    discover(
        &lab,
        "dualstack",
        "Endpoint Independent",
        "Address and Port Dependent",
    );
    ipv6_is_stateful(&lab, "dualstack");
}

#[test]
fn public_host_is_reachable_unsolicited() {
    let Some(lab) = lab_with_coturn("public", site("public")) else {
        return;
    };
    let host = lab.host("public").unwrap();
    let d = natdiscovery(host, &["-m"]);
    let own = SocketAddr::new(IpAddr::V4(host.v4().unwrap()), 0);
    assert!(
        d.reflexive.iter().all(|a| a.ip() == own.ip()),
        "no NAT:\n{}",
        d.output
    );
    let server = lab.server().unwrap();
    for (bind, srv) in [
        (ANY4, IpAddr::V4(SERVER_V4[0])),
        (ANY6, IpAddr::V6(SERVER_V6[0])),
    ] {
        let inside = sock(host, bind, 43000);
        let outside = sock(server, srv, 43001);
        let ip = if bind.is_ipv4() {
            IpAddr::V4(host.v4().unwrap())
        } else {
            IpAddr::V6(host.v6().unwrap())
        };
        assert!(
            delivered(&outside, SocketAddr::new(ip, 43000), &inside, b"in"),
            "{ip}"
        );
    }
}

#[test]
fn nat64_host_reaches_ipv4_through_tayga() {
    let Some(lab) = lab("nat64", vec![site("nat64")]) else {
        return;
    };
    let host = lab.host("nat64").unwrap();
    assert!(host.v4().is_none(), "the NAT64 host is IPv6-only");
    let server = lab.server().unwrap();
    let refl =
        Reflector::start(&server.ns, SocketAddr::new(IpAddr::V4(SERVER_V4[0]), 3478)).unwrap();
    let via = SocketAddr::new(IpAddr::V6(natlab::nat64_address(SERVER_V4[0])), 3478);
    let s = sock(host, ANY6, 44000);
    let seen = observed_address(&s, via, Duration::from_secs(3)).unwrap();
    let public = lab.site("nat64").unwrap().public_v4.unwrap();
    assert_eq!(
        seen.map(|a| a.ip()),
        Some(IpAddr::V4(public)),
        "translated and masqueraded"
    );
    drop(refl);
}

#[test]
fn udp_timers_follow_the_knob() {
    let mut s = site("portrestr");
    s.knobs = Knobs {
        udp_timeout: Some((Duration::from_secs(5), Duration::from_secs(8))),
        ..Knobs::default()
    };
    let Some(lab) = lab("timers", vec![s]) else {
        return;
    };
    let host = lab.host("portrestr").unwrap();
    let router = lab.node("portrestr.router").unwrap();
    let server = lab.server().unwrap();
    let refl =
        Reflector::start(&server.ns, SocketAddr::new(IpAddr::V4(SERVER_V4[0]), 3478)).unwrap();
    // An unreplied flow uses the short timer.
    sock(host, ANY4, 45001)
        .send_to(b"x", (SERVER_V4[0], 9))
        .unwrap();
    // A two-way flow becomes ASSURED after a while and then uses the stream timer.
    let s = sock(host, ANY4, 45000);
    let deadline = Instant::now() + Duration::from_secs(15);
    let assured = loop {
        observed_address(&s, refl.addr(), Duration::from_secs(1)).unwrap();
        let flows = conntrack(router);
        if let Some(l) = flows
            .iter()
            .find(|l| l.contains("sport=45000") && l.contains("ASSURED"))
        {
            break l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "never ASSURED:\n{}",
            flows.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let unreplied = conntrack(router)
        .into_iter()
        .find(|l| l.contains("sport=45001"))
        .unwrap();
    println!("unreplied: {unreplied}\nassured:   {assured}");
    assert!(ct_timeout(&unreplied).unwrap() <= 5, "{unreplied}");
    let t = ct_timeout(&assured).unwrap();
    assert!(t > 5 && t <= 8, "{assured}");
}

#[test]
fn knobs_add_loss_rate_limit_and_delay() {
    let mut s = site("dualstack");
    s.knobs = Knobs {
        loss_percent: Some(20),
        rate_kbit: Some(2000),
        delay: Some(Duration::from_millis(30)),
        ..Knobs::default()
    };
    let Some(lab) = lab("knobs", vec![s]) else {
        return;
    };
    let host = lab.host("dualstack").unwrap();
    let server = lab.server().unwrap();
    let refl =
        Reflector::start(&server.ns, SocketAddr::new(IpAddr::V4(SERVER_V4[0]), 3478)).unwrap();
    // Delay: every round trip crosses the router twice, so it takes at least 60 ms.
    let s = sock(host, ANY4, 46000);
    let t0 = Instant::now();
    assert!(
        observed_address(&s, refl.addr(), Duration::from_secs(5))
            .unwrap()
            .is_some()
    );
    // (a retransmission after loss only makes it longer; the bound is a lower bound)
    assert!(
        t0.elapsed() >= Duration::from_millis(60),
        "RTT {:?}",
        t0.elapsed()
    );
    // Loss: 500 datagrams at a pace under the rate limit, 20 % dropped (binomial:
    // sd ≈ 9 packets; the bounds are > 5 sd away).
    let sink = sock(server, IpAddr::V4(SERVER_V4[0]), 46001);
    let tx = sock(host, ANY4, 46002);
    for i in 0..500u32 {
        tx.send_to(&i.to_be_bytes(), sink.local_addr().unwrap())
            .unwrap();
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let mut got = 0;
    while natlab::probe::receive(&sink, Duration::from_millis(300)).is_some() {
        got += 1;
    }
    println!("loss knob 20 %: {got}/500 arrived");
    assert!((340..=460).contains(&got), "{got}/500 arrived");
    // Rate: a burst far above 2 Mbit/s overflows the token bucket; tc counts drops.
    let big = [0u8; 1200];
    for _ in 0..2000 {
        let _ = tx.send_to(&big, sink.local_addr().unwrap());
    }
    // The delayer holds them first; wait until the link is quiet before reading tc.
    while natlab::probe::receive(&sink, Duration::from_millis(300)).is_some() {}
    let router = lab.node("dualstack.router").unwrap();
    let out = router
        .ns
        .exec("tc", ["-s", "qdisc", "show", "dev", "wan"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tbf") && text.contains("rate 2Mbit"),
        "{text}"
    );
    let dropped: u64 = text
        .split("dropped ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap();
    assert!(dropped > 0, "the token bucket dropped nothing:\n{text}");
}

#[test]
fn two_labs_run_at_once_without_interfering() {
    if !natlab::is_root() {
        println!("SKIPPED(not root): two_labs");
        return;
    }
    let build = || std::thread::spawn(|| lab("two_labs", vec![site("portrestr")]).unwrap());
    let (a, b) = (build(), build());
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_ne!(a.prefix(), b.prefix());
    for l in [&a, &b] {
        let refl = Reflector::start(
            &l.server().unwrap().ns,
            SocketAddr::new(IpAddr::V4(SERVER_V4[0]), 3478),
        )
        .unwrap();
        let s = sock(l.host("portrestr").unwrap(), ANY4, 47000);
        let seen = observed_address(&s, refl.addr(), Duration::from_secs(2)).unwrap();
        assert_eq!(
            seen.map(|a| a.ip()),
            l.site("portrestr").unwrap().public_v4.map(IpAddr::V4)
        );
    }
}

fn lab_namespaces(prefix: &str) -> Vec<String> {
    natlab::netns::list()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn teardown_leaves_nothing_after_drop_and_panic() {
    let Some(lab) = lab("teardown", vec![site("nat64"), site("dslite")]) else {
        return;
    };
    let prefix = lab.prefix().to_owned();
    assert!(lab_namespaces(&prefix).len() >= 6);
    drop(lab);
    assert!(
        lab_namespaces(&prefix).is_empty(),
        "{:?}",
        lab_namespaces(&prefix)
    );
    let mut seen = String::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = common::lab("teardown-panic", vec![site("cgn")]).unwrap();
        seen = lab.prefix().to_owned();
        panic!("a failing test");
    }));
    assert!(result.is_err());
    assert!(
        lab_namespaces(&seen).is_empty(),
        "{:?}",
        lab_namespaces(&seen)
    );
    assert!(!std::path::Path::new(&format!("/tmp/{}", seen.trim_end_matches('-'))).exists());
}

#[test]
fn natlab_down_removes_the_labs_of_a_killed_process() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    if !natlab::is_root() {
        println!("SKIPPED(not root): natlab_down");
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_natlab"))
        .args(["up", "nat64", "portrestr"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.any(|l| l.is_ok_and(|l| l.contains("press Ctrl-C")));
    assert!(ready, "natlab up did not come up");
    let prefix = format!("{}{pid}-", natlab::NS_PREFIX);
    assert!(!lab_namespaces(&prefix).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed outright: nothing ran its teardown, but its daemons died with it.
    assert!(
        !lab_namespaces(&prefix).is_empty(),
        "expected leftovers of a killed run"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_natlab"))
        .arg("down")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        lab_namespaces(&prefix).is_empty(),
        "{:?}",
        lab_namespaces(&prefix)
    );
    let tayga = Command::new("pgrep")
        .args(["-f", &prefix.to_string()])
        .output()
        .unwrap();
    assert!(
        tayga.stdout.is_empty(),
        "processes of the killed lab survive"
    );
}
