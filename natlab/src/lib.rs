//! The NAT lab: real kernel NATs (nftables, conntrack, tayga, miniupnpd) in network
//! namespaces, built from a description in code and torn down without a trace.
//!
//! See `docs/src/natlab.md` for the topology, addressing and behaviours.

pub mod coturn;
pub mod delay;
pub mod dns64;
mod lab;
mod nat64;
pub mod netns;
pub mod nft;
pub mod probe;
mod site;
pub mod topology;
mod upnp;

pub use lab::{
    CORE_V4, CORE_V6, Lab, NAT64_PREFIX, NS_PREFIX, Node, Role, SERVER_V4, SERVER_V6, SiteInfo,
    nat64_address, owner_pid, reap_all, reap_stale,
};
pub use topology::{Filtering, Knobs, Mapping, Nat, Site, SiteKind, Topology, catalog};

use std::time::Duration;

/// What can go wrong while building or using a lab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setup command exited non-zero.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (and the script it was fed, if any).
        stderr: String,
    },
    /// A program could not be started.
    #[error(
        "cannot run `{program}`: {source} (is its Debian package installed? scripts/test.sh installs them)"
    )]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command or wait took longer than its bound.
    #[error("`{what}` did not finish within {after:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The bound.
        after: Duration,
    },
    /// A namespace operation failed.
    #[error("network namespace {name}: {reason}")]
    Netns {
        /// The namespace.
        name: String,
        /// Why.
        reason: String,
    },
    /// The lab needs root.
    #[error(
        "the NAT lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces; run as root or skip"
    )]
    NotRoot,
    /// A topology description is inconsistent.
    #[error("invalid topology: {0}")]
    Topology(String),
    /// The packet delayer (an NFQUEUE consumer) failed.
    #[error("delayer on NFQUEUE {queue} in network namespace {netns}: {reason}")]
    Delay {
        /// The namespace.
        netns: String,
        /// The queue number.
        queue: u16,
        /// Why.
        reason: String,
    },
}

/// Whether this process can build labs (runs as root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
