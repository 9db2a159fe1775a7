//! Choosing a hard-NAT technique and its probe targets within the budget.

use std::net::{IpAddr, SocketAddr};

use rand::Rng;

use super::{HardNatConfig, NoPlan, Plan, Technique};
use crate::signal::{NatDescription, NatMapping, PortAllocation};

/// Ports a NAT allocates from when nothing says otherwise (1024–65535).
const FULL_RANGE: u32 = 65_536 - 1024;

/// What to probe, if anything, to reach a peer whose NAT is `remote` from one
/// behind `local` (`None`: not measured), with the peer's public IPv4 address
/// `remote_ip`. Both sides run the same function on the same two
/// descriptions, so each knows what the other does:
///
/// - the peer maps endpoint-independently (or did not say): nothing, plain
///   ICE reaches its server-reflexive candidate;
/// - the peer allocates sequentially and we map endpoint-independently:
///   [`Technique::Predict`] its next `predict_ahead` ports after the last one a
///   server saw (when both sides depend on the endpoint, each probe would move
///   our own mapping too, so prediction is not tried);
/// - the peer allocates inside a known port set that fits the budget:
///   [`Technique::Sweep`] every port of it when we map endpoint-independently
///   (deterministic: the port its check to us comes from is one of them and our
///   probe opened our filter for it), or [`Technique::Birthday`] when we map
///   endpoint-dependently too and our own port set is known, small and at least
///   twice as large as what we would spend (each probe costs us a mapping; the
///   peer sweeps ours, and a match is likely, not certain);
/// - otherwise, random ports over the whole range: a birthday attempt only if
///   its odds reach `min_birthday_odds` within the budget (with one local
///   socket per side they never do, so the relay stays).
pub fn plan(
    local: Option<&NatDescription>,
    remote: &NatDescription,
    remote_ip: IpAddr,
    config: &HardNatConfig,
    rng: &mut impl Rng,
) -> Result<Plan, NoPlan> {
    if !config.enabled {
        return Err(NoPlan::Disabled);
    }
    if remote.mapping != NatMapping::EndpointDependent {
        return Err(NoPlan::NotNeeded);
    }
    let local_eim = local.is_some_and(|l| l.mapping == NatMapping::EndpointIndependent);
    let remote_set: Option<Vec<u16>> = remote.port_set.as_ref().and_then(|s| s.ports());
    let local_set_len: Option<usize> = local
        .and_then(|l| l.port_set.as_ref())
        .and_then(|s| s.len())
        .map(|n| n as usize);
    let max_ports = usize::from(config.max_ports);
    // Our own mappings each probe may cost: none when we map independently.
    let mapping_limit = if local_eim {
        usize::MAX
    } else {
        let own = local_set_len.map_or(usize::MAX, |n| n / 2);
        usize::from(config.max_new_mappings).min(own)
    };

    let (technique, ports): (Technique, Vec<u16>) = match (remote.allocation, &remote_set) {
        (PortAllocation::Sequential { delta }, _) if local_eim && !remote.observed.is_empty() => {
            let last = i32::from(*remote.observed.last().unwrap_or(&0));
            let ports = (1..=i32::from(config.predict_ahead))
                .map(|k| last + i32::from(delta) * k)
                .filter_map(|p| u16::try_from(p).ok())
                .filter(|&p| p >= 1024)
                .filter(|p| remote_set.as_ref().is_none_or(|s| s.contains(p)))
                .collect();
            (Technique::Predict, ports)
        }
        (_, Some(set)) => {
            if set.len() > max_ports {
                return Err(NoPlan::OverBudget {
                    ports: set.len(),
                    max_ports,
                });
            }
            if local_eim {
                (Technique::Sweep, set.clone())
            } else if local_set_len.is_some() {
                (Technique::Birthday, set.clone())
            } else {
                return Err(NoPlan::BothDependent);
            }
        }
        _ => {
            if !local_eim {
                return Err(NoPlan::BothDependent);
            }
            // The peer has one mapping towards us somewhere in the range.
            let ports = max_ports.min(config.max_packets as usize);
            let odds = ports as f64 / f64::from(FULL_RANGE);
            if odds < config.min_birthday_odds {
                return Err(NoPlan::Hopeless { odds });
            }
            let mut chosen = std::collections::BTreeSet::new();
            while chosen.len() < ports {
                chosen.insert(rng.random_range(1024..=u16::MAX));
            }
            (Technique::Birthday, chosen.into_iter().collect())
        }
    };
    if ports.is_empty() {
        return Err(NoPlan::NoTargets);
    }
    let mut ports = ports;
    if technique != Technique::Predict && !remote.observed.is_empty() {
        // Nearest to the ports the servers saw first: an inferred set is a
        // block around the real one, so the hit (and the stop) comes sooner.
        ports.sort_by_key(|&p| {
            remote
                .observed
                .iter()
                .map(|&o| (i32::from(p) - i32::from(o)).abs())
                .min()
                .unwrap_or(0)
        });
    }
    if ports.len() > max_ports {
        return Err(NoPlan::OverBudget {
            ports: ports.len(),
            max_ports,
        });
    }
    if ports.len() > mapping_limit {
        return Err(NoPlan::OwnPortsExceeded {
            needed: ports.len(),
            allowed: mapping_limit,
        });
    }
    let per_round = ports.len() as u32;
    let rounds = u32::from(config.rounds).min(config.max_packets / per_round);
    if rounds == 0 {
        return Err(NoPlan::OverBudget {
            ports: ports.len(),
            max_ports: config.max_packets as usize,
        });
    }
    Ok(Plan {
        technique,
        targets: ports
            .into_iter()
            .map(|p| SocketAddr::new(remote_ip, p))
            .collect(),
        rounds: u8::try_from(rounds).unwrap_or(u8::MAX),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::signal::{PortRange, PortSetDescription};

    fn ip() -> IpAddr {
        "198.51.100.7".parse().unwrap()
    }

    fn eim() -> NatDescription {
        NatDescription::from_observed(&[5000, 5000, 5000], 5000)
    }

    fn set16() -> NatDescription {
        NatDescription {
            mapping: NatMapping::EndpointDependent,
            allocation: PortAllocation::Random,
            port_set: Some(PortSetDescription::Ranges(vec![PortRange {
                first: 20000,
                count: 16,
            }])),
            observed: vec![20004, 20011, 20001],
        }
    }

    fn run(local: Option<&NatDescription>, remote: &NatDescription) -> Result<Plan, NoPlan> {
        plan(
            local,
            remote,
            ip(),
            &HardNatConfig::default(),
            &mut StdRng::seed_from_u64(1),
        )
    }

    #[test]
    fn nothing_to_do_for_an_independent_peer() {
        assert_eq!(run(Some(&set16()), &eim()), Err(NoPlan::NotNeeded));
        assert_eq!(
            run(None, &NatDescription::unknown()),
            Err(NoPlan::NotNeeded)
        );
    }

    #[test]
    fn an_independent_side_sweeps_a_small_port_set() {
        let p = run(Some(&eim()), &set16()).unwrap();
        assert_eq!(p.technique, Technique::Sweep);
        assert_eq!(p.targets.len(), 16);
        // The observed ports first, then outward from them.
        let first: Vec<u16> = p.targets.iter().take(5).map(|t| t.port()).collect();
        assert_eq!(first, [20001, 20004, 20011, 20000, 20002]);
        let mut all: Vec<u16> = p.targets.iter().map(|t| t.port()).collect();
        all.sort_unstable();
        assert_eq!(all, (20000..20016).collect::<Vec<u16>>());
        assert_eq!(p.rounds, 2);
    }

    #[test]
    fn a_sequential_peer_is_predicted() {
        let remote = NatDescription::from_observed(&[31000, 31002, 31004], 5000);
        let p = run(Some(&eim()), &remote).unwrap();
        assert_eq!(p.technique, Technique::Predict);
        let ports: Vec<u16> = p.targets.iter().map(|t| t.port()).collect();
        assert_eq!(ports[..3], [31006, 31008, 31010]);
        assert_eq!(ports.len(), 8);
    }

    #[test]
    fn budgets_are_respected_or_the_plan_is_refused() {
        let small = HardNatConfig {
            max_ports: 8,
            ..HardNatConfig::default()
        };
        let r = plan(
            Some(&eim()),
            &set16(),
            ip(),
            &small,
            &mut StdRng::seed_from_u64(1),
        );
        assert_eq!(
            r,
            Err(NoPlan::OverBudget {
                ports: 16,
                max_ports: 8
            })
        );
        // A packet budget for one round only: one round.
        let one = HardNatConfig {
            max_packets: 20,
            ..HardNatConfig::default()
        };
        let p = plan(
            Some(&eim()),
            &set16(),
            ip(),
            &one,
            &mut StdRng::seed_from_u64(1),
        )
        .unwrap();
        assert_eq!(p.rounds, 1);
        let none = HardNatConfig {
            max_packets: 10,
            ..HardNatConfig::default()
        };
        assert!(matches!(
            plan(
                Some(&eim()),
                &set16(),
                ip(),
                &none,
                &mut StdRng::seed_from_u64(1)
            ),
            Err(NoPlan::OverBudget { .. })
        ));
    }

    #[test]
    fn two_dependent_sides_need_known_sets_and_spare_ports() {
        // Ours unknown: every probe may cost a mapping we cannot bound.
        assert_eq!(run(None, &set16()), Err(NoPlan::BothDependent));
        // Both in 16-port sets: 16 probes would use every port we have.
        assert_eq!(
            run(Some(&set16()), &set16()),
            Err(NoPlan::OwnPortsExceeded {
                needed: 16,
                allowed: 8
            })
        );
        // Ours large enough (64): birthday inside the peer's set.
        let mut wide = set16();
        wide.port_set = Some(PortSetDescription::Ranges(vec![PortRange {
            first: 20000,
            count: 64,
        }]));
        let p = run(Some(&wide), &set16()).unwrap();
        assert_eq!(p.technique, Technique::Birthday);
        assert_eq!(p.targets.len(), 16);
    }

    #[test]
    fn random_over_the_whole_range_is_hopeless_within_the_default_budget() {
        let remote = NatDescription::from_observed(&[1200, 48000, 33000], 5000);
        assert!(matches!(
            run(Some(&eim()), &remote),
            Err(NoPlan::Hopeless { .. })
        ));
        assert_eq!(run(Some(&remote), &remote), Err(NoPlan::BothDependent));
        // With a budget that makes the odds, a bounded birthday attempt.
        let big = HardNatConfig {
            max_ports: 1024,
            max_packets: 2048,
            min_birthday_odds: 0.01,
            ..HardNatConfig::default()
        };
        let p = plan(
            Some(&eim()),
            &remote,
            ip(),
            &big,
            &mut StdRng::seed_from_u64(3),
        )
        .unwrap();
        assert_eq!(p.technique, Technique::Birthday);
        assert_eq!(p.targets.len(), 1024);
        assert!(p.targets.len() * usize::from(p.rounds) <= 2048);
    }
}
