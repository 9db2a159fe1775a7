//! An in-memory network with simulated time, for deterministic tests of the
//! path layer (and later ICE): hosts, NATs with every RFC 4787 behaviour
//! ([`Mapping`], [`Filtering`], [`Allocation`], mapping timeout), links with
//! delay, loss and reordering, all driven by one seeded RNG.
//!
//! - [`SimNet`] is sans-IO: `send(now, …)`, `advance(now)`, `recv(addr)`. Tests
//!   of sans-IO cores step it by hand.
//! - [`SimIo`] puts a host on a shared `SimNet` as a
//!   [`crate::socket::DatagramIo`], so [`crate::path::PathSocket`] — and quinn on
//!   top — runs over the simulator under tokio's paused clock.

mod io;
mod nat;
mod net;

pub use io::{SharedNet, SimIo};
pub use nat::{Allocation, Filtering, Mapping, Nat, NatConfig};
pub use net::{Datagram, LinkConfig, NatId, SimNet};
