//! NAT behaviour discovery (RFC 5780, RFC 4787 terms): what sits between this
//! machine and the internet, in one [`Report`].
//!
//! The probes are a sans-IO core driven by a thin socket driver; the report is plain
//! data with derived names (classic, console-style) and a peer compatibility check.

mod labels;
mod report;

pub use labels::{ClassicName, NatProfile, OpenModerateStrict};
pub use report::{
    Behaviour, Ipv6Report, LifetimeBracket, MapeHint, PortAllocation, PortMappingReport,
    PortMappingService, PortRange, Report, SCHEMA_VERSION,
};
