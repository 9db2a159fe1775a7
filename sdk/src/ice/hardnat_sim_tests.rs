//! Hard NATs in the simulator: the port-set sweep, sequential prediction and
//! the bounded birthday attempt, each with its budget checked, and the relay
//! kept where the budget or the NATs allow nothing else.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::hardnat::{HardNatConfig, NoPlan, ProbeState, Technique};
use super::harness::{Site, World};
use crate::path::PathKind;
use crate::signal::NatMapping;
use crate::sim::{Allocation, NatConfig};

fn ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// A described port-restricted cone NAT whose peer uses `hard_nat`.
fn port_restricted_with(hard_nat: HardNatConfig) -> Site {
    Site {
        hard_nat,
        ..Site::described(NatConfig::port_restricted(ip()))
    }
}

/// Symmetric (APDM/APDF, random) inside the 16 ports 20000–20015: the lab's
/// `mapesym`.
fn mape_symmetric() -> NatConfig {
    NatConfig {
        port_range: Some((20000, 16)),
        ..NatConfig::symmetric(ip())
    }
}

/// EIM/APDF inside the same kind of port set: the lab's `mapeeim`.
fn mape_eim() -> NatConfig {
    NatConfig {
        port_range: Some((20000, 16)),
        allocation: Allocation::Sequential,
        ..NatConfig::port_restricted(ip())
    }
}

fn sequential_symmetric() -> NatConfig {
    NatConfig {
        allocation: Allocation::Sequential,
        ..NatConfig::symmetric(ip())
    }
}

fn run(a: Site, b: Site, seed: u64) -> World {
    let mut w = World::new(a, b, seed);
    w.run(Duration::from_secs(10));
    w
}

fn kinds(w: &World) -> (Option<PathKind>, Option<PathKind>) {
    (w.active(0), w.active(1))
}

const DIRECT: (Option<PathKind>, Option<PathKind>) =
    (Some(PathKind::DirectV4), Some(PathKind::DirectV4));
const RELAY: (Option<PathKind>, Option<PathKind>) = (Some(PathKind::Relay), Some(PathKind::Relay));

#[test]
fn the_port_set_is_described_and_swept_by_the_independent_side() {
    for (name, other) in [
        ("port-restricted", NatConfig::port_restricted(ip())),
        ("full cone", NatConfig::full_cone(ip())),
        ("port-set EIM", mape_eim()),
    ] {
        for seed in 1..=4 {
            let mut w = run(
                Site::described(mape_symmetric()),
                Site::described(other.clone()),
                seed,
            );
            assert_eq!(kinds(&w), DIRECT, "{name}, seed {seed}");
            println!(
                "{name}, seed {seed}: relay at {:?}, direct at {:?}, sweeper sent {} probes",
                w.peers[1].connected_at,
                w.peers[1].direct_at,
                w.peers[1].ice.hard_nat().packets_sent
            );
            let a = &w.peers[0].ice;
            let nat = a.local_nat().unwrap();
            assert_eq!(nat.mapping, NatMapping::EndpointDependent);
            let set = nat.port_set.as_ref().unwrap().ports().unwrap();
            assert!(set.contains(&20000) && set.contains(&20015), "{set:?}");
            assert!(set.len() <= 1024);
            // The symmetric side never probes; the other side sweeps.
            assert_eq!(a.hard_nat().packets_sent, 0);
            let b = w.peers[1].ice.hard_nat();
            if name != "full cone" || b.state.is_some() {
                let plan = b.plan.clone().unwrap().unwrap();
                assert_eq!(plan.technique, Technique::Sweep, "{name}");
                assert!(b.packets_sent <= plan.packets());
                assert!(b.packets_sent <= HardNatConfig::default().max_packets);
            }
            // The sweep costs the independent side no extra mapping.
            if name != "full cone" {
                assert!(w.nat_mappings(1).unwrap() <= 2, "{name}");
            }
            // The symmetric side's port set is never exceeded.
            assert!(w.nat_mappings(0).unwrap() <= 16);
        }
    }
}

#[test]
fn without_probing_the_same_pair_stays_on_the_relay() {
    let off = HardNatConfig {
        enabled: false,
        ..HardNatConfig::default()
    };
    let b = port_restricted_with(off);
    let w = run(Site::described(mape_symmetric()), b, 1);
    assert_eq!(kinds(&w), RELAY);
    assert_eq!(w.peers[1].ice.hard_nat().plan, Some(Err(NoPlan::Disabled)));
}

#[test]
fn a_budget_too_small_for_the_set_sends_nothing_and_keeps_the_relay() {
    let tight = HardNatConfig {
        max_ports: 8,
        ..HardNatConfig::default()
    };
    let b = port_restricted_with(tight);
    let w = run(Site::described(mape_symmetric()), b, 2);
    assert_eq!(kinds(&w), RELAY);
    let stats = w.peers[1].ice.hard_nat();
    assert!(matches!(stats.plan, Some(Err(NoPlan::OverBudget { .. }))));
    assert_eq!(stats.packets_sent, 0);
}

#[test]
fn a_sequential_symmetric_nat_is_predicted() {
    for seed in 1..=3 {
        let w = run(
            Site::described(sequential_symmetric()),
            Site::described(NatConfig::port_restricted(ip())),
            seed,
        );
        assert_eq!(kinds(&w), DIRECT, "seed {seed}");
        let b = w.peers[1].ice.hard_nat();
        let plan = b.plan.unwrap().unwrap();
        assert_eq!(plan.technique, Technique::Predict);
        assert!(matches!(
            b.state,
            Some(ProbeState::Succeeded(_) | ProbeState::Stopped)
        ));
        assert!(b.packets_sent <= plan.packets());
    }
    // Predicting one port short of the mapping misses: the relay stays.
    let short = HardNatConfig {
        predict_ahead: 0,
        ..HardNatConfig::default()
    };
    let b = port_restricted_with(short);
    let w = run(Site::described(sequential_symmetric()), b, 1);
    assert_eq!(kinds(&w), RELAY);
    assert_eq!(w.peers[1].ice.hard_nat().plan, Some(Err(NoPlan::NoTargets)));
}

#[test]
fn random_symmetric_nats_keep_the_relay_and_a_birthday_attempt_stays_in_budget() {
    // Both random over the whole range: nothing to try.
    let w = run(
        Site::described(NatConfig::symmetric(ip())),
        Site::described(NatConfig::symmetric(ip())),
        3,
    );
    assert_eq!(kinds(&w), RELAY);
    for p in &w.peers {
        assert_eq!(p.ice.hard_nat().plan, Some(Err(NoPlan::BothDependent)));
    }
    // Random × port-restricted: hopeless within the default budget.
    let w = run(
        Site::described(NatConfig::symmetric(ip())),
        Site::described(NatConfig::port_restricted(ip())),
        4,
    );
    assert_eq!(kinds(&w), RELAY);
    assert!(matches!(
        w.peers[1].ice.hard_nat().plan,
        Some(Err(NoPlan::Hopeless { .. }))
    ));
    // With odds lowered on purpose: a bounded birthday attempt that sends
    // exactly its budget, stops, and (at ~1.6 %) misses here.
    let budget = HardNatConfig {
        max_ports: 1024,
        max_packets: 1024,
        rounds: 1,
        pace: Duration::from_millis(1),
        min_birthday_odds: 0.01,
        ..HardNatConfig::default()
    };
    let b = port_restricted_with(budget);
    let w = run(Site::described(NatConfig::symmetric(ip())), b, 5);
    let stats = w.peers[1].ice.hard_nat();
    let plan = stats.plan.unwrap().unwrap();
    assert_eq!(plan.technique, Technique::Birthday);
    assert_eq!(stats.packets_sent, 1024);
    assert_eq!(stats.state, Some(ProbeState::Exhausted));
    assert!(
        w.peers[1].sent_to_other < 1024 + 64,
        "{}",
        w.peers[1].sent_to_other
    );
    assert_eq!(kinds(&w), RELAY);
}
