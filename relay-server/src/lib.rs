//! `tsunagi-relay`: Tsunagi's STUN / TURN relay and rendezvous server.
//!
//! It serves STUN Binding (RFC 8489) with the RFC 5780 NAT behaviour discovery
//! extensions when given a second address, and TURN over UDP (RFC 8656) with
//! long-term and REST credentials, IPv4/IPv6 relaying and family bridging,
//! quotas, bandwidth limits and a peer deny list. The protocol logic is a
//! sans-IO [`Server`]: feed it each datagram with the local address it arrived
//! on and the time, and it returns the datagrams to send and the local socket
//! to send each from; relayed sockets are opened through [`RelaySockets`].
//! [`udp`] is the thin driver that runs it on real sockets; [`Counters`] is what
//! metrics exporters read.
//!
//! ```
//! use tsunagi_relay::{Server, ServerConfig, Transmit};
//! use tsunagi::stun::{Class, Message, MessageBuilder, Method, TransactionId};
//!
//! let local = "192.0.2.1:3478".parse()?;
//! let client = "198.51.100.7:40000".parse()?;
//! let mut server = Server::new(ServerConfig::default());
//! let request = MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([1; 12]));
//! let mut out = Vec::new();
//! server.handle(local, client, &request.finish(), &mut out);
//! let response = Message::decode(&out[0].payload)?;
//! assert_eq!(response.xor_mapped_address(), Some(client));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod auth;
mod binding;
pub mod config;
mod counters;
mod datagrams;
mod fast_map;
pub mod health;
pub mod metrics;
pub mod policy;
pub mod rendezvous;
mod server;
mod shared;
mod turn;
pub mod turn_flags;
pub mod udp;

pub use counters::Counters;
pub use datagrams::{Datagram, Datagrams};
pub use policy::{Cidr, CidrError};
pub use server::{Rfc5780Addresses, Server, ServerConfig, Transmit};
pub use shared::Shared;
pub use turn::TurnConfig;
pub use turn::ports::{RelaySockets, ReservedSocket, VirtualSockets};
pub use turn_flags::{TurnFlags, TurnFlagsError};

#[cfg(test)]
mod tests;
