//! ICE in the simulator: every pair of NAT models, IPv6 preference,
//! peer-reflexive discovery, many candidates.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::harness::{Site, World};
use crate::path::PathKind;
use crate::signal::{Candidate, CandidateKind, Role};
use crate::sim::{Filtering, NatConfig};

fn ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// The four NAT models of the matrix, named as RFC 4787 and the classic table.
fn models() -> Vec<(&'static str, NatConfig)> {
    vec![
        ("EIM/EIF (full cone)", NatConfig::full_cone(ip())),
        (
            "EIM/ADF (address-restricted)",
            NatConfig {
                filtering: Filtering::AddressDependent,
                ..NatConfig::full_cone(ip())
            },
        ),
        (
            "EIM/APDF (port-restricted)",
            NatConfig::port_restricted(ip()),
        ),
        ("APDM/APDF (symmetric)", NatConfig::symmetric(ip())),
    ]
}

fn symmetric(name: &str) -> bool {
    name.starts_with("APDM")
}

fn port_restricted(name: &str) -> bool {
    name.starts_with("EIM/APDF")
}

/// Both peers end on the same path kind within the limit.
fn settle(w: &mut World, limit: Duration) -> (Option<PathKind>, Option<PathKind>) {
    w.run(limit);
    (w.active(0), w.active(1))
}

#[test]
fn nat_matrix_direct_where_possible_relay_where_not() {
    let models = models();
    let mut table = Vec::new();
    for (i, (name_a, a)) in models.iter().enumerate() {
        for (name_b, b) in models.iter().skip(i) {
            let mut w = World::new(Site::nat(a.clone()), Site::nat(b.clone()), 1 + i as u64);
            let (ka, kb) = settle(&mut w, Duration::from_secs(8));
            let fails = (symmetric(name_a) && (symmetric(name_b) || port_restricted(name_b)))
                || (symmetric(name_b) && port_restricted(name_a));
            let expected = if fails {
                PathKind::Relay
            } else {
                PathKind::DirectV4
            };
            let t = w.peers[0]
                .connected_at
                .unwrap_or_default()
                .max(w.peers[1].connected_at.unwrap_or_default());
            table.push(format!(
                "{name_a:32} × {name_b:32} → {ka:?}/{kb:?} in {t:?}"
            ));
            assert_eq!(
                (ka, kb),
                (Some(expected), Some(expected)),
                "{name_a} × {name_b}: expected {expected:?} on both sides\n{}",
                table.join("\n")
            );
        }
    }
    println!("{}", table.join("\n"));
}

#[test]
fn relay_path_carries_traffic_before_a_direct_one_exists() {
    // Symmetric × symmetric: the only path is the relay, and the peer's relayed
    // candidate becomes a path as soon as it is signalled.
    let mut w = World::new(
        Site::nat(NatConfig::symmetric(ip())),
        Site::nat(NatConfig::symmetric(ip())),
        3,
    );
    let (a, b) = settle(&mut w, Duration::from_secs(3));
    assert_eq!((a, b), (Some(PathKind::Relay), Some(PathKind::Relay)));
    assert!(w.peers[0].connected_at.unwrap() < Duration::from_secs(2));
}

#[test]
fn ipv6_is_preferred_when_both_have_it() {
    let site = |_| Site {
        v6: true,
        ..Site::nat(NatConfig::port_restricted(ip()))
    };
    let mut w = World::new(site(0), site(1), 5);
    let (a, b) = settle(&mut w, Duration::from_secs(5));
    assert_eq!((a, b), (Some(PathKind::DirectV6), Some(PathKind::DirectV6)));
    // Native IPv6 host candidates are signalled first.
    let offer = w.peers[0].ice.signal(Role::Offer, [1; 32], 1);
    assert!(offer.candidates[0].addr.is_ipv6());
}

#[test]
fn peer_reflexive_candidates_are_learnt_from_checks() {
    // B never learns or signals its server-reflexive address; A's NAT filters
    // nothing, so B's checks reach A from B's mapping, which A learns as a
    // peer-reflexive candidate and connects to.
    let a = Site {
        relay: false,
        ..Site::nat(NatConfig::full_cone(ip()))
    };
    let b = Site {
        srflx: false,
        relay: false,
        ..Site::nat(NatConfig::port_restricted(ip()))
    };
    let mut w = World::new(a, b, 11);
    let (ka, kb) = settle(&mut w, Duration::from_secs(5));
    assert_eq!(
        (ka, kb),
        (Some(PathKind::DirectV4), Some(PathKind::DirectV4))
    );
    let prflx = w.peers[0].ice.peer_reflexive();
    assert_eq!(prflx.len(), 1, "A learnt B's mapping from its checks");
    assert_eq!(prflx[0].ip(), IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)));
}

#[test]
fn many_candidates_complete_in_bounded_time() {
    let mut w = World::new(
        Site::nat(NatConfig::port_restricted(ip())),
        Site::nat(NatConfig::full_cone(ip())),
        13,
    );
    // 20 dead candidates (a port-prediction sweep would add such) before the
    // real ones arrive.
    let bogus: Vec<Candidate> = (0..20)
        .map(|k| Candidate {
            addr: format!("198.18.0.{}:{}", k + 1, 40_000 + k)
                .parse()
                .unwrap(),
            kind: CandidateKind::ServerReflexive,
            priority: 1_694_498_815 - k,
        })
        .collect();
    let s = w.peers[1].ice.trickle(Role::Answer, [2; 32], 1, bogus);
    // The first real signal sets the credentials; the bogus batch follows it.
    w.run(Duration::from_millis(60));
    w.peers[0].ice.apply_remote(&s).unwrap();
    let (a, b) = settle(&mut w, Duration::from_secs(5));
    assert_eq!((a, b), (Some(PathKind::DirectV4), Some(PathKind::DirectV4)));
    let t = w.peers[0].connected_at.unwrap();
    assert!(t < Duration::from_secs(3), "connected after {t:?}");
}

#[test]
fn same_seed_same_outcome() {
    let run = || {
        let mut w = World::new(
            Site::nat(NatConfig::port_restricted(ip())),
            Site::nat(NatConfig::symmetric(ip())),
            21,
        );
        w.run(Duration::from_secs(4));
        (w.active(0), w.active(1), w.net.delivered > 0)
    };
    assert_eq!(run(), run());
}
