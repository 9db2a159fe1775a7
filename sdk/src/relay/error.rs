//! Why an allocation failed or ended, and why a local call was refused.

use std::net::SocketAddr;

use crate::stun::{AddressFamily, EncodeError, Method};

/// Why the TURN server did not give us (or took away) an allocation, a permission
/// or a channel. Carried by [`super::Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No answer after every retransmission.
    #[error(
        "no answer from the TURN server at {server} to {method} after {transmissions} tries: \
         check the server address and that UDP to it is not blocked"
    )]
    Timeout {
        /// The server.
        server: SocketAddr,
        /// The request that went unanswered.
        method: Method,
        /// How many times it was sent.
        transmissions: u32,
    },
    /// 401 to an authenticated request: the server does not accept the credentials.
    #[error(
        "the TURN server rejected the credentials for realm {realm:?}: check the username and \
         password, or mint a fresh token (REST credentials expire)"
    )]
    Unauthorized {
        /// The realm the server announced.
        realm: String,
    },
    /// 401 without REALM and NONCE: the server does not speak the long-term mechanism.
    #[error(
        "the server answered 401 without REALM and NONCE: it does not use TURN long-term \
         credentials; check that the address is a TURN server"
    )]
    MissingRealmOrNonce,
    /// The server kept answering 438 Stale Nonce.
    #[error(
        "the server answered 438 Stale Nonce {attempts} times in a row; its clock or nonce handling is broken"
    )]
    StaleNonceLoop {
        /// How many 438 answers in a row.
        attempts: u32,
    },
    /// 300 Try Alternate: the server redirects us.
    #[error("the TURN server redirects to {alternate} (300 Try Alternate): allocate there instead")]
    TryAlternate {
        /// ALTERNATE-SERVER.
        alternate: SocketAddr,
    },
    /// 403 Forbidden.
    #[error(
        "the TURN server forbids this request (403 {reason}): the peer address may be denied by its policy"
    )]
    Forbidden {
        /// The reason phrase.
        reason: String,
    },
    /// 437 Allocation Mismatch.
    #[error(
        "the TURN server has no allocation for this local address, or already has one \
         (437 Allocation Mismatch): allocate again, from a fresh local port if it persists"
    )]
    AllocationMismatch,
    /// 441 Wrong Credentials: the credentials differ from the allocation's.
    #[error(
        "441 Wrong Credentials: requests must use the credentials the allocation was made with"
    )]
    WrongCredentials,
    /// 442 Unsupported Transport Protocol.
    #[error("the TURN server does not relay UDP (442 Unsupported Transport Protocol)")]
    UnsupportedTransport,
    /// 440 Address Family not Supported for the requested family.
    #[error(
        "the TURN server cannot relay {family:?} (440 Address Family not Supported): \
         request the other family or use another server"
    )]
    AddressFamilyNotSupported {
        /// The family requested.
        family: AddressFamily,
    },
    /// 443 Peer Address Family Mismatch.
    #[error(
        "the peer's address family does not match the relayed address (443): use a dual allocation"
    )]
    PeerAddressFamilyMismatch,
    /// 486 Allocation Quota Reached.
    #[error(
        "the TURN server's allocation quota for this user is reached (486): release unused allocations"
    )]
    QuotaReached,
    /// 508 Insufficient Capacity.
    #[error(
        "the TURN server is out of relay ports (508 Insufficient Capacity): try another server"
    )]
    InsufficientCapacity,
    /// Any other error response.
    #[error("the TURN server answered {code} {reason}")]
    Server {
        /// ERROR-CODE's code.
        code: u16,
        /// ERROR-CODE's reason phrase.
        reason: String,
    },
    /// A success response that lacks what the RFC requires in it.
    #[error(
        "the TURN server's {method} response lacks {missing}; it is not a conforming TURN server"
    )]
    MalformedResponse {
        /// The method.
        method: Method,
        /// What is missing.
        missing: &'static str,
    },
    /// A request could not be written (an oversized username, realm or nonce).
    #[error(
        "cannot write the {method} request: {source}; usernames are limited to 508 bytes, \
         realms and nonces to 763"
    )]
    CannotEncode {
        /// The request.
        method: Method,
        /// What did not fit.
        source: EncodeError,
    },
    /// The allocation's lifetime ran out before a refresh succeeded.
    #[error("the allocation expired before a refresh succeeded: allocate again")]
    Expired,
}

impl Error {
    /// The error for an ERROR-CODE that has no special handling.
    pub(crate) fn from_code(code: u16, reason: &str, family: AddressFamily) -> Error {
        match code {
            403 => Error::Forbidden {
                reason: reason.to_owned(),
            },
            437 => Error::AllocationMismatch,
            440 => Error::AddressFamilyNotSupported { family },
            441 => Error::WrongCredentials,
            442 => Error::UnsupportedTransport,
            443 => Error::PeerAddressFamilyMismatch,
            486 => Error::QuotaReached,
            508 => Error::InsufficientCapacity,
            _ => Error::Server {
                code,
                reason: reason.to_owned(),
            },
        }
    }
}

/// Why a call on [`super::Client`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UseError {
    /// The allocation is not (yet, or any more) in place.
    #[error(
        "no allocation: wait for Event::Allocated before sending, or allocate again after a failure"
    )]
    NotAllocated,
    /// No relayed address of the peer's family.
    #[error(
        "the allocation has no {family:?} relayed address, so it cannot reach {peer}: \
         allocate with RelayFamily::Dual or the peer's family"
    )]
    NoRelayedAddressForFamily {
        /// The peer.
        peer: SocketAddr,
        /// Its family.
        family: AddressFamily,
    },
    /// All 4096 channel numbers are used.
    #[error("all 4096 channel numbers are in use; send to further peers with Send indications")]
    ChannelsExhausted,
    /// The data does not fit one message.
    #[error("{len} bytes do not fit one TURN message; send at most 65000 bytes per datagram")]
    DataTooLong {
        /// Bytes given.
        len: usize,
    },
}
