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
//! Today peers dial each other's known addresses directly, IPv6 first with IPv4 racing
//! after a 50 ms head start (RFC 8305). Relayed paths and path switching come with the
//! `path` layer underneath.

mod config;
mod endpoint;
mod error;
mod event;
mod eyeballs;
mod framing;
mod identity;
mod nat64;
mod peer;
mod poll;
mod rendezvous;
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
