//! Signalling: offers and answers (candidates, ICE credentials, identity) between
//! peers, either through the rendezvous service of `tsunagi-relay` ([`Client`], over
//! the game's shared UDP socket) or carried by the game itself as opaque blobs
//! ([`Signal::to_blob`] / [`Signal::from_blob`]).

mod blob;
mod client;
mod nat;
pub mod wire;

pub use blob::{
    BLOB_VERSION, BlobError, Candidate, CandidateKind, MAX_BLOB_LEN, MAX_CANDIDATES,
    MAX_EXTENSIONS, Role, Signal,
};
pub use client::{Client, Event, Transmit};
pub use nat::{
    MAX_OBSERVED, MAX_PORT_RANGES, NatDescription, NatMapping, PortAllocation, PortRange,
    PortSetDescription,
};

#[cfg(test)]
mod tests;
