//! NAT behaviour discovery (RFC 5780, RFC 4787 terms): what sits between this
//! machine and the internet, in one [`Report`].
//!
//! The probes are a sans-IO core driven by a thin socket driver; the report is plain
//! data with derived names (classic, console-style) and a peer compatibility check.

mod analysis;
mod driver;
pub mod hops;
pub mod ipv6;
mod labels;
mod lifetime;
pub mod nat64;
pub mod portmap;
pub mod portmap_udp;
mod probe;
mod report;
#[cfg(test)]
mod sim_tests;
mod txn;

pub use driver::{CancelFlag, DiagConfig, DiagError, run, run_blocking};
pub use labels::{ClassicName, NatProfile, OpenModerateStrict};
pub use lifetime::LifetimeConfig;
pub use probe::{Output, Phase, ProbeConfig, Prober, Progress};
pub use report::{
    Behaviour, Ipv6Report, LifetimeBracket, MapeHint, PortAllocation, PortMappingReport,
    PortMappingService, PortRange, Report, SCHEMA_VERSION,
};
pub use txn::{MAIN_SOCKET, Retransmit, SocketId};
