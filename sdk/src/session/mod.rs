//! Sessions: encrypted, authenticated connections between players, and the game API.
//!
//! A player is an Ed25519 key pair ([`Identity`]); others know them by the public key
//! ([`PeerId`]). Sessions run QUIC (quinn) with TLS 1.3 raw public keys (RFC 7250): the
//! dialling side checks that the answering side holds the key it asked for, and the
//! answering side learns the dialler's key. On a session the game gets:
//!
//! - reliable ordered **channels** (independent: a lost packet on one never stalls another),
//! - unreliable **datagrams** (QUIC DATAGRAM frames, size limit exposed),
//! - **events** (connected, disconnected with a reason, path changed, message, datagram),
//! - **stats** (path kind, RTT, loss, bytes, datagram limit).
//!
//! Two ways in: the async [`Endpoint`] for tokio programs, and [`PollEndpoint`] for game
//! loops (and the C ABI): call it on your tick, drain events, no async, no callbacks.
//!
//! Three ways to connect:
//! - [`Endpoint::connect`] dials known addresses directly, IPv6 first with IPv4 racing
//!   after a 50 ms head start (RFC 8305);
//! - [`Endpoint::connect_via`] / [`Rendezvous::connect`] find a peer by [`PeerId`]
//!   through a rendezvous server (`tsunagi-relay`);
//! - [`Endpoint::create_offer`] / [`Endpoint::apply_signal`] exchange offer and answer
//!   blobs that the game carries itself (a Steam or EOS lobby, its own server).
//!
//! The last two run ICE on the shared socket, start over a relay when one is configured
//! and move to a direct path as soon as one is proven (the `path` layer underneath).

mod blobs;
mod config;
mod endpoint;
mod error;
mod event;
mod eyeballs;
mod framing;
mod identity;
mod nat64;
mod nat_timer;
mod peer;
mod poll;
mod rendezvous;
mod signalling;
mod tls;

pub use config::SessionConfig;
pub use endpoint::{ConnectInfo, Endpoint, Events};
pub use error::SessionError;
pub use event::{DisconnectReason, Event, PathKind, PeerStats};
pub use eyeballs::prefer_ipv6;
pub use identity::{Identity, IdentityError, PEER_ID_PREFIX, ParseIdError, PeerId, SECRET_PREFIX};
pub use poll::PollEndpoint;
pub use rendezvous::Rendezvous;
pub use tls::{ALPN, plain_quinn_configs};
