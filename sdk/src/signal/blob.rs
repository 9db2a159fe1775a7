//! Offers and answers as opaque byte blobs.
//!
//! A game may carry these through its own matchmaking (a Steam lobby, EOS, its own
//! server) instead of the rendezvous service: `to_blob` gives bytes to send,
//! `from_blob` checks and decodes what arrived. The encoding is postcard (see
//! `docs/src/decisions/0001-postcard-instead-of-bincode.md`) behind a version byte, and
//! nothing is decoded beyond [`MAX_BLOB_LEN`] bytes.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The blob format version written by this crate.
pub const BLOB_VERSION: u8 = 1;
/// The largest blob accepted: it must fit one UDP datagram through the rendezvous
/// service with room for STUN framing and integrity.
pub const MAX_BLOB_LEN: usize = 1100;
/// The most candidates one blob may carry.
pub const MAX_CANDIDATES: usize = 24;

/// Whether a blob opens a connection attempt or answers one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The first message of an attempt.
    Offer,
    /// The reply to an offer.
    Answer,
}

/// How a candidate address was learnt (RFC 8445 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CandidateKind {
    /// A local interface address.
    Host,
    /// The address a STUN server saw (the NAT's mapping).
    ServerReflexive,
    /// A TURN relay's address allocated for this peer.
    Relayed,
    /// A mapping made on the router with UPnP-IGD, NAT-PMP or PCP.
    PortMapped,
}

/// One transport address at which the sender may be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The address.
    pub addr: SocketAddr,
    /// How it was learnt.
    pub kind: CandidateKind,
    /// Its ICE priority (RFC 8445 §5.1.2; native IPv6 first per RFC 8421).
    pub priority: u32,
}

/// An offer or answer: who the sender is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// Offer or answer.
    pub role: Role,
    /// The sender's identity (its Ed25519 public key).
    pub from: [u8; 32],
    /// The connection attempt this belongs to; an answer repeats the offer's.
    pub attempt: u64,
    /// ICE username fragment (RFC 8445 §5.3).
    pub ice_ufrag: String,
    /// ICE password.
    pub ice_pwd: String,
    /// Candidates, best first.
    pub candidates: Vec<Candidate>,
}

/// Why a blob was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    /// Larger than [`MAX_BLOB_LEN`].
    #[error(
        "signal blob of {0} bytes exceeds the {MAX_BLOB_LEN}-byte limit: it was not made by Tsunagi or was corrupted in transit"
    )]
    TooLarge(usize),
    /// Empty input.
    #[error("empty signal blob: pass the bytes the other peer's to_blob() produced")]
    Empty,
    /// Written by an unknown format version.
    #[error(
        "signal blob version {0} is not supported (this build reads version {BLOB_VERSION}): update both games to the same Tsunagi version"
    )]
    Version(u8),
    /// The body did not decode, or was followed by extra bytes.
    #[error("signal blob is malformed: {0}")]
    Malformed(String),
    /// Too many candidates or oversized fields.
    #[error("signal blob is out of bounds: {0}")]
    OutOfBounds(&'static str),
}

impl Signal {
    /// Encodes as a versioned blob.
    pub fn to_blob(&self) -> Result<Vec<u8>, BlobError> {
        self.check()?;
        let mut out = vec![BLOB_VERSION];
        let body = postcard::to_allocvec(self).map_err(|e| BlobError::Malformed(e.to_string()))?;
        out.extend_from_slice(&body);
        if out.len() > MAX_BLOB_LEN {
            return Err(BlobError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// Checks and decodes a blob made by [`Signal::to_blob`].
    pub fn from_blob(blob: &[u8]) -> Result<Signal, BlobError> {
        if blob.len() > MAX_BLOB_LEN {
            return Err(BlobError::TooLarge(blob.len()));
        }
        let (&version, body) = blob.split_first().ok_or(BlobError::Empty)?;
        if version != BLOB_VERSION {
            return Err(BlobError::Version(version));
        }
        let (signal, rest): (Signal, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| BlobError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(BlobError::Malformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        signal.check()?;
        Ok(signal)
    }

    fn check(&self) -> Result<(), BlobError> {
        if self.candidates.len() > MAX_CANDIDATES {
            return Err(BlobError::OutOfBounds("more than 24 candidates"));
        }
        // RFC 8445 §5.3: ufrag 4..=256 and pwd 22..=256 characters of ice-char; we
        // bound both at 64 to keep blobs small.
        let ice_char = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        };
        if !(4..=64).contains(&self.ice_ufrag.len()) || !ice_char(&self.ice_ufrag) {
            return Err(BlobError::OutOfBounds("ICE ufrag must be 4-64 ice-chars"));
        }
        if !(22..=64).contains(&self.ice_pwd.len()) || !ice_char(&self.ice_pwd) {
            return Err(BlobError::OutOfBounds(
                "ICE password must be 22-64 ice-chars",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Signal {
        Signal {
            role: Role::Offer,
            from: [7; 32],
            attempt: 42,
            ice_ufrag: "abcd".into(),
            ice_pwd: "0123456789abcdefghijkl".into(),
            candidates: vec![
                Candidate {
                    addr: "[2001:db8::10]:4000".parse().unwrap(),
                    kind: CandidateKind::Host,
                    priority: 2_130_706_431,
                },
                Candidate {
                    addr: "198.18.1.3:4000".parse().unwrap(),
                    kind: CandidateKind::ServerReflexive,
                    priority: 1_694_498_815,
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let blob = sample().to_blob().unwrap();
        assert_eq!(blob[0], BLOB_VERSION);
        assert_eq!(Signal::from_blob(&blob).unwrap(), sample());
    }

    #[test]
    fn refuses_what_it_must() {
        assert_eq!(Signal::from_blob(&[]), Err(BlobError::Empty));
        assert_eq!(Signal::from_blob(&[9, 0]), Err(BlobError::Version(9)));
        assert!(matches!(
            Signal::from_blob(&vec![1; 5000]),
            Err(BlobError::TooLarge(5000))
        ));
        let mut blob = sample().to_blob().unwrap();
        blob.push(0);
        assert!(matches!(
            Signal::from_blob(&blob),
            Err(BlobError::Malformed(_))
        ));
        let mut many = sample();
        many.candidates = vec![many.candidates[0].clone(); 25];
        assert!(matches!(many.to_blob(), Err(BlobError::OutOfBounds(_))));
        let mut bad = sample();
        bad.ice_pwd = "short".into();
        assert!(matches!(bad.to_blob(), Err(BlobError::OutOfBounds(_))));
    }

    #[test]
    fn a_forged_huge_length_is_refused_without_allocating() {
        // Version, role, 32-byte key, attempt, then a ufrag claiming 2^35 bytes.
        let mut blob = vec![BLOB_VERSION, 0];
        blob.extend_from_slice(&[1; 32]);
        blob.push(5);
        blob.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(matches!(
            Signal::from_blob(&blob),
            Err(BlobError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let _ = Signal::from_blob(&bytes);
        }

        #[test]
        fn mutated_blobs_never_panic(pos in 0usize..200, byte in any::<u8>()) {
            let mut blob = sample().to_blob().unwrap();
            let i = pos % blob.len();
            blob[i] = byte;
            let _ = Signal::from_blob(&blob);
        }
    }
}
