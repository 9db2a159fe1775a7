//! The diagnosis's extra probes against the NAT lab's real kernel NATs: NAT64 prefix
//! discovery (RFC 7050) through the lab's DNS64, native IPv6 reachability and
//! filtering (RFC 5780 against coturn), and UPnP-IGD / NAT-PMP / PCP on the `upnp`
//! site (miniupnpd). Needs root; prints `SKIPPED(not root)` otherwise.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use natlab::{Lab, Node, SERVER_V4, SERVER_V6, Site, Topology, catalog};
use tsunagi::diag::Behaviour;
use tsunagi::diag::ipv6::{self, Ipv6Options};
use tsunagi::diag::nat64::{self, Nat64Options, Nat64Prefix, Nat64Status};
use tsunagi::diag::portmap::{self, PortmapOptions};

fn site(name: &str) -> Site {
    catalog()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a catalog site")
}

/// Builds a lab of the named catalog sites, or prints why not and returns `None`.
fn lab(test: &str, sites: &[&str]) -> Option<Lab> {
    if !natlab::is_root() {
        println!("SKIPPED(not root): {test} needs root for network namespaces");
        return None;
    }
    let topo = sites.iter().fold(Topology::new(), |t, s| t.site(site(s)));
    Some(Lab::build(topo).expect("building the lab"))
}

/// Runs `f` inside `node`'s network namespace.
fn inside<R: Send + 'static>(node: &Node, f: impl FnOnce() -> R + Send + 'static) -> R {
    node.ns.run(f).expect("running in the host's namespace")
}

#[test]
fn nat64_prefix_is_discovered_through_the_sites_dns64() {
    let Some(lab) = lab("nat64_prefix", &["nat64", "v6only"]) else {
        return;
    };
    let server = lab
        .site("nat64")
        .unwrap()
        .dns64()
        .expect("a NAT64 site has DNS64");
    let options = Nat64Options {
        server: Some(server),
        timeout: Duration::from_secs(2),
    };
    let report = inside(lab.host("nat64").unwrap(), move || {
        nat64::discover(&options)
    })
    .unwrap();
    println!("nat64: {report:?}");
    assert_eq!(report.status, Nat64Status::Found);
    let expected = Nat64Prefix::new(natlab::NAT64_PREFIX, 96);
    assert_eq!(report.prefixes, vec![expected]);
    assert_eq!(report.prefix_text().as_deref(), Some("2001:db8:46::/96"));
    // The prefix really reaches IPv4 through the NAT64: coturn-free check with the
    // lab's reflector on the server's IPv4 address.
    let reflector = natlab::probe::Reflector::start(
        &lab.server().unwrap().ns,
        SocketAddr::new(IpAddr::V4(SERVER_V4[0]), 4000),
    )
    .unwrap();
    let via = SocketAddr::new(
        expected.synthesize(SERVER_V4[0]).into(),
        reflector.addr().port(),
    );
    let host = lab.host("nat64").unwrap();
    let sock = natlab::probe::udp_socket(&host.ns, "[::]:0".parse().unwrap()).unwrap();
    let seen = natlab::probe::observed_address(&sock, via, Duration::from_secs(2)).unwrap();
    assert_eq!(
        seen.map(|a| a.ip()),
        lab.site("nat64").unwrap().public_v4.map(IpAddr::V4),
        "the discovered prefix must translate to the site's public IPv4"
    );

    // A site without DNS64: its router does not answer DNS; a clear "no answer",
    // no prefix, no error.
    assert_eq!(lab.site("v6only").unwrap().dns64(), None);
    let router = lab.node("v6only.router").unwrap().v6().unwrap();
    let options = Nat64Options {
        server: Some(SocketAddr::new(IpAddr::V6(router), 53)),
        timeout: Duration::from_millis(600),
    };
    let none = inside(lab.host("v6only").unwrap(), move || {
        nat64::discover(&options)
    })
    .unwrap();
    println!("v6only: {none:?}");
    assert_eq!(none.status, Nat64Status::NoAnswer);
    assert!(none.prefixes.is_empty());
}

#[test]
fn ipv6_reachability_and_filtering_match_the_labels() {
    let Some(mut lab) = lab("ipv6", &["public", "v6only", "dualstack", "fullcone"]) else {
        return;
    };
    natlab::coturn::start(&mut lab, &[]).expect("starting coturn in the server namespace");
    let server = SocketAddr::new(IpAddr::V6(SERVER_V6[0]), natlab::coturn::STUN_PORT);
    let other = SocketAddr::new(IpAddr::V6(SERVER_V6[1]), natlab::coturn::STUN_PORT + 1);
    for (name, filtering) in [
        ("public", Behaviour::EndpointIndependent),
        ("v6only", Behaviour::AddressAndPortDependent),
        ("dualstack", Behaviour::AddressAndPortDependent),
    ] {
        let host = lab.host(name).unwrap();
        let local = host.v6().unwrap();
        let f = inside(host, move || ipv6::probe(&Ipv6Options::new(server))).unwrap();
        println!("{name}: {f:?}");
        assert_eq!(f.local_address, Some(local), "{name}");
        assert!(f.global && f.reachable, "{name}: {f:?}");
        assert_eq!(f.translated, Some(false), "{name}: no NAT66 in the lab");
        assert_eq!(f.mapped_address.map(|a| a.ip()), Some(IpAddr::V6(local)));
        assert_eq!(f.server_other_address, Some(other));
        assert_eq!(f.filtering, Some(filtering), "{name}: {f:?}");
        let r = f.to_report();
        assert_eq!((r.reachable, r.filtering), (Some(true), Some(filtering)));
    }
    let f = inside(lab.host("fullcone").unwrap(), move || {
        ipv6::probe(&Ipv6Options::new(server))
    })
    .unwrap();
    println!("fullcone: {f:?}");
    assert_eq!(f.local_address, None);
    assert!(!f.reachable && f.mapped_address.is_none() && f.filtering.is_none());
    assert_eq!(f.to_report().reachable, Some(false));
}

#[test]
fn port_mapping_protocols_on_the_upnp_site_and_none_elsewhere() {
    let Some(lab) = lab("portmap", &["upnp", "portrestr"]) else {
        return;
    };
    let external = IpAddr::V4(lab.site("upnp").unwrap().public_v4.unwrap());
    let f = inside(lab.host("upnp").unwrap(), || {
        portmap::probe(&PortmapOptions::default())
    });
    println!("upnp: {f:?}");
    assert_eq!(
        f.gateway,
        Some("192.168.1.1".parse().unwrap()),
        "from /proc/net/route"
    );
    for (name, s) in [
        ("UPnP-IGD", &f.upnp_igd),
        ("NAT-PMP", &f.nat_pmp),
        ("PCP", &f.pcp),
    ] {
        assert_eq!(s.present, Some(true), "{name}: {f:?}");
        assert_eq!(s.external_address, Some(external), "{name}: {f:?}");
    }
    assert_eq!(f.to_report().nat_pmp, f.nat_pmp);
    // The PCP probe mapping was deleted again: miniupnpd lists no port mapping.
    let router = lab.node("upnp.router").unwrap();
    let rules = router
        .ns
        .exec_unchecked(
            "nft",
            ["list", "chain", "inet", "miniupnpd", "prerouting_miniupnpd"],
        )
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        !rules.contains("dnat"),
        "a probe mapping was left behind:\n{rules}"
    );

    let none = inside(lab.host("portrestr").unwrap(), || {
        portmap::probe(&PortmapOptions::default())
    });
    println!("portrestr: {none:?}");
    assert_eq!(none.gateway, Some("192.168.2.1".parse().unwrap()));
    for s in [&none.upnp_igd, &none.nat_pmp, &none.pcp] {
        assert_eq!(
            (s.present, s.external_address),
            (Some(false), None),
            "{none:?}"
        );
    }
}
