//! Hard NATs (issue 6, item 3): reaching a peer whose NAT gives every
//! destination a new public port, under a budget of ports and packets.
//!
//! Each side describes its NAT in its offer or answer
//! ([`crate::signal::NatDescription`], measured at connect time by
//! [`NatDescriber`] with three STUN Binding requests to the rendezvous
//! server's RFC 5780 addresses). Both sides then run [`plan`] on the two
//! descriptions and, when it picks a technique, [`IceAgent`](super::IceAgent)
//! sends ICE connectivity checks (authenticated with the peer's ICE
//! credentials, so the peer's agent answers them like any check) to the
//! targets through a paced [`Prober`]:
//!
//! - [`Technique::Sweep`]: the peer is endpoint-dependent inside a small port
//!   set (MAP-E-like) and we map endpoint-independently. A probe to every port
//!   of the set opens our filter for each, so the peer's own check — from
//!   whichever port its NAT picked towards our server-reflexive address — gets
//!   in; a probe that lands on that port is answered at once.
//! - [`Technique::Predict`]: the peer allocates sequentially; probe the next
//!   few ports after the last one a server saw.
//! - [`Technique::Birthday`]: both sides endpoint-dependent inside known port
//!   sets (each sweeps the other's, a match is likely), or a large budget
//!   against a random allocator; refused when the odds are too low
//!   ([`NoPlan::Hopeless`]).
//!
//! A probe that is answered becomes a remote candidate of the ICE agent and a
//! usable direct path at once, so the path layer upgrades from the relay to it
//! exactly as for any other check. Probing stops at the first direct path, when
//! the rounds are done, or never starts when the budget is too small.

mod describe;
mod plan;
mod probe;

use std::net::SocketAddr;
use std::time::Duration;

pub use describe::NatDescriber;
pub use plan::plan;
pub use probe::{ProbeState, Prober};

/// The budget and pacing of hard-NAT probing, per peer and connection
/// attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct HardNatConfig {
    /// Whether to probe at all (the NAT description is sent either way).
    pub enabled: bool,
    /// Distinct remote ports probed at most. A port set larger than this is
    /// not swept.
    pub max_ports: u16,
    /// Probe datagrams sent at most (all rounds together).
    pub max_packets: u32,
    /// New mappings our own NAT may be made to create when it maps
    /// endpoint-dependently (each probe to a new port costs one); further
    /// capped at half our own port set when that is known, so probing never
    /// takes more than a MAP-E-like port limit leaves to the game.
    pub max_new_mappings: u16,
    /// How many times each target is probed (a second round catches a
    /// mapping the peer made after the first).
    pub rounds: u8,
    /// Time between two probes.
    pub pace: Duration,
    /// Time between rounds.
    pub round_gap: Duration,
    /// Ports predicted past the last one seen, for a sequential allocator.
    pub predict_ahead: u16,
    /// The success probability a birthday attempt over a random allocator's
    /// whole range must reach within the budget to be tried.
    pub min_birthday_odds: f64,
}

impl Default for HardNatConfig {
    /// 256 ports, 512 packets, 32 own mappings, 2 rounds 1 s apart, one probe
    /// every 4 ms (250 packets/s, ~30 kB/s), 8 predicted ports, birthday
    /// attempts only at odds of 50 % or better.
    fn default() -> HardNatConfig {
        HardNatConfig {
            enabled: true,
            max_ports: 256,
            max_packets: 512,
            max_new_mappings: 32,
            rounds: 2,
            pace: Duration::from_millis(4),
            round_gap: Duration::from_secs(1),
            predict_ahead: 8,
            min_birthday_odds: 0.5,
        }
    }
}

/// How the targets were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Technique {
    /// Every port of the peer's small port set.
    Sweep,
    /// The next ports of the peer's sequential allocator.
    Predict,
    /// Random or set-wide probing where only a chance of a match exists.
    Birthday,
}

/// What to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The technique.
    pub technique: Technique,
    /// The peer's public IP at each port to probe, in order.
    pub targets: Vec<SocketAddr>,
    /// Rounds over `targets` (`targets.len() × rounds` ≤ the packet budget).
    pub rounds: u8,
}

impl Plan {
    /// Datagrams the plan sends at most.
    pub fn packets(&self) -> u32 {
        u32::try_from(self.targets.len())
            .unwrap_or(u32::MAX)
            .saturating_mul(u32::from(self.rounds))
    }
}

/// Why nothing is probed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoPlan {
    /// Hard-NAT probing is switched off.
    #[error("hard-NAT probing is disabled")]
    Disabled,
    /// The peer maps endpoint-independently or did not describe its NAT:
    /// plain ICE is enough (or all there is).
    #[error("the peer's NAT needs no prediction")]
    NotNeeded,
    /// Both sides map endpoint-dependently and no port set bounds the search.
    #[error("both NATs map endpoint-dependently without a known small port set: the relay stays")]
    BothDependent,
    /// More ports or packets than the budget allows.
    #[error("probing needs {ports} ports or packets, the budget allows {max_ports}")]
    OverBudget {
        /// Needed.
        ports: usize,
        /// Allowed.
        max_ports: usize,
    },
    /// Our own NAT would have to create more mappings than allowed.
    #[error("probing would create {needed} mappings on our own NAT, at most {allowed} are allowed")]
    OwnPortsExceeded {
        /// Needed.
        needed: usize,
        /// Allowed.
        allowed: usize,
    },
    /// A birthday attempt would succeed too rarely within the budget.
    #[error("a birthday attempt within the budget succeeds with probability {odds:.4}: not tried")]
    Hopeless {
        /// The estimated success probability.
        odds: f64,
    },
    /// Nothing left to probe (e.g. predictions outside the port range).
    #[error("no port left to probe")]
    NoTargets,
}

/// What hard-NAT probing did for one peer (see
/// [`IceAgent::hard_nat`](super::IceAgent::hard_nat)).
#[derive(Debug, Clone, PartialEq)]
pub struct HardNatStats {
    /// The plan, or why there is none; `None` until both descriptions and the
    /// peer's address are known.
    pub plan: Option<Result<Plan, NoPlan>>,
    /// Probe datagrams sent so far.
    pub packets_sent: u32,
    /// Where probing stands.
    pub state: Option<ProbeState>,
}
