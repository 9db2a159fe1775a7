//! Signalling: offers and answers (candidates, ICE credentials, identity) between
//! peers, either through the rendezvous service of `tsunagi-relay` ([`Client`], over
//! the game's shared UDP socket) or carried by the game itself as opaque blobs
//! ([`Signal::to_blob`] / [`Signal::from_blob`]).

mod blob;
mod client;
pub mod wire;

pub use blob::{
    BLOB_VERSION, BlobError, Candidate, CandidateKind, MAX_BLOB_LEN, MAX_CANDIDATES, Role, Signal,
};
pub use client::{Client, Event, Transmit};

#[cfg(test)]
mod tests;
