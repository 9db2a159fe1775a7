//! `tsunagi-relay`: Tsunagi's STUN / TURN relay and rendezvous server.
//!
//! Today it serves STUN Binding (RFC 8489) with the RFC 5780 NAT behaviour
//! discovery extensions when given a second address. The protocol logic is a
//! sans-IO [`Server`]: feed it each datagram with the local address it arrived
//! on, and it returns the datagrams to send and the local socket to send each
//! from. [`udp`] is the thin driver that runs it on real sockets.
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

mod binding;
mod server;
pub mod udp;

pub use server::{Rfc5780Addresses, Server, ServerConfig, Transmit};

#[cfg(test)]
mod tests;
