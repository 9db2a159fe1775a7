//! Offers and answers as opaque byte blobs.
//!
//! A game may carry these through its own matchmaking (a Steam lobby, EOS, its own
//! server) instead of the rendezvous service: `to_blob` gives bytes to send,
//! `from_blob` checks and decodes what arrived. The encoding is postcard (see
//! `docs/src/decisions/0001-postcard-instead-of-bincode.md`) behind a version byte, and
//! nothing is decoded beyond [`MAX_BLOB_LEN`] bytes.
//!
//! Versions:
//! - **1**: `[1]` + postcard([`Signal`] without `nat`).
//! - **2**: `[2]` + the same body + extensions, each `[tag, len, value…]` with
//!   `len < 256`, at most [`MAX_EXTENSIONS`]. Tag 1 is a postcard
//!   [`NatDescription`]. Unknown tags are skipped, so a later version-2 writer
//!   can add extensions this reader ignores; a NAT description this reader
//!   cannot decode is dropped (it only helps hard-NAT traversal) rather than
//!   failing the whole signal.
//!
//! A signal without a NAT description is written as version 1, so peers built
//! before version 2 still read it; every reader here reads both.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::nat::NatDescription;

/// The newest blob format version written by this crate (a signal without a
/// NAT description is still written as version 1).
pub const BLOB_VERSION: u8 = 2;
/// The most extensions a version-2 blob may carry.
pub const MAX_EXTENSIONS: usize = 8;
/// Extension tag: the sender's [`NatDescription`].
const EXT_NAT: u8 = 1;
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
    /// The sender's NAT, when it measured it (blob version 2): what the peer
    /// needs to predict its mappings. `None` in version-1 blobs.
    #[serde(skip)]
    pub nat: Option<NatDescription>,
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
        "signal blob version {0} is not supported (this build reads versions 1 to {BLOB_VERSION}): update both games to the same Tsunagi version"
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
        let version = if self.nat.is_some() { 2 } else { 1 };
        let mut out = vec![version];
        let body = postcard::to_allocvec(self).map_err(|e| BlobError::Malformed(e.to_string()))?;
        out.extend_from_slice(&body);
        if let Some(nat) = &self.nat {
            let value =
                postcard::to_allocvec(nat).map_err(|e| BlobError::Malformed(e.to_string()))?;
            let len = u8::try_from(value.len())
                .map_err(|_| BlobError::OutOfBounds("NAT description over 255 bytes"))?;
            out.extend_from_slice(&[EXT_NAT, len]);
            out.extend_from_slice(&value);
        }
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
        if !(1..=BLOB_VERSION).contains(&version) {
            return Err(BlobError::Version(version));
        }
        let (mut signal, rest): (Signal, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| BlobError::Malformed(e.to_string()))?;
        if version == 1 && !rest.is_empty() {
            return Err(BlobError::Malformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        if version >= 2 {
            signal.nat = read_extensions(rest)?;
        }
        signal.check()?;
        Ok(signal)
    }

    fn check(&self) -> Result<(), BlobError> {
        if let Some(nat) = &self.nat {
            nat.check().map_err(BlobError::OutOfBounds)?;
        }
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

/// Reads version-2 extensions: returns the NAT description if one decodes.
fn read_extensions(mut rest: &[u8]) -> Result<Option<NatDescription>, BlobError> {
    let mut nat = None;
    let mut count = 0;
    while let Some((&tag, after)) = rest.split_first() {
        count += 1;
        if count > MAX_EXTENSIONS {
            return Err(BlobError::OutOfBounds("more than 8 extensions"));
        }
        let (&len, after) = after
            .split_first()
            .ok_or_else(|| BlobError::Malformed("extension without a length".into()))?;
        let len = usize::from(len);
        let value = after.get(..len).ok_or_else(|| {
            BlobError::Malformed(format!(
                "extension {tag} claims {len} bytes, {} left",
                after.len()
            ))
        })?;
        rest = after.get(len..).unwrap_or_default();
        if tag != EXT_NAT {
            continue;
        }
        match postcard::from_bytes::<NatDescription>(value) {
            Ok(d) if d.check().is_ok() => nat = Some(d),
            Ok(_) | Err(_) => {
                tracing::debug!("undecodable or out-of-bounds NAT description ignored");
                nat = None;
            }
        }
    }
    Ok(nat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::nat::{NatMapping, PortAllocation, PortRange, PortSetDescription};
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
            nat: None,
        }
    }

    fn with_nat() -> Signal {
        Signal {
            nat: Some(NatDescription {
                mapping: NatMapping::EndpointDependent,
                allocation: PortAllocation::Random,
                port_set: Some(PortSetDescription::Ranges(vec![PortRange {
                    first: 20000,
                    count: 16,
                }])),
                observed: vec![20003, 20011, 20007],
            }),
            ..sample()
        }
    }

    #[test]
    fn version_two_carries_the_nat_and_version_one_still_reads() {
        let v1 = sample().to_blob().unwrap();
        assert_eq!(v1[0], 1, "no NAT description: a blob old peers read");
        let v2 = with_nat().to_blob().unwrap();
        assert_eq!(v2[0], 2);
        assert_eq!(Signal::from_blob(&v2).unwrap(), with_nat());
        // The v2 body up to the extensions is the v1 body.
        assert_eq!(&v2[1..v1.len()], &v1[1..]);
        // A v1 blob with a v2 header is a v2 blob without extensions.
        let mut relabelled = v1.clone();
        relabelled[0] = 2;
        assert_eq!(Signal::from_blob(&relabelled).unwrap(), sample());
    }

    #[test]
    fn unknown_extensions_are_skipped_and_broken_ones_refused() {
        let mut blob = with_nat().to_blob().unwrap();
        blob.extend_from_slice(&[99, 3, 1, 2, 3]);
        assert_eq!(Signal::from_blob(&blob).unwrap(), with_nat());
        // A length running past the end.
        let mut cut = with_nat().to_blob().unwrap();
        cut.extend_from_slice(&[99, 10, 1]);
        assert!(matches!(
            Signal::from_blob(&cut),
            Err(BlobError::Malformed(_))
        ));
        // A tag without a length.
        let mut bare = with_nat().to_blob().unwrap();
        bare.push(7);
        assert!(matches!(
            Signal::from_blob(&bare),
            Err(BlobError::Malformed(_))
        ));
        // Too many extensions.
        let mut many = sample().to_blob().unwrap();
        many[0] = 2;
        for _ in 0..9 {
            many.extend_from_slice(&[50, 0]);
        }
        assert!(matches!(
            Signal::from_blob(&many),
            Err(BlobError::OutOfBounds(_))
        ));
        // A NAT description that does not decode is dropped, not fatal.
        let mut garbage = sample().to_blob().unwrap();
        garbage[0] = 2;
        garbage.extend_from_slice(&[1, 2, 0xff, 0xff]);
        assert_eq!(Signal::from_blob(&garbage).unwrap(), sample());
    }

    #[test]
    fn out_of_bounds_nat_descriptions_are_refused_when_writing() {
        let mut s = with_nat();
        if let Some(n) = &mut s.nat {
            n.observed = vec![1; 5];
        }
        assert!(matches!(s.to_blob(), Err(BlobError::OutOfBounds(_))));
        let mut s = with_nat();
        if let Some(n) = &mut s.nat {
            n.port_set = Some(PortSetDescription::Ranges(vec![
                PortRange {
                    first: 1,
                    count: 1
                };
                17
            ]));
        }
        assert!(matches!(s.to_blob(), Err(BlobError::OutOfBounds(_))));
        let mut s = with_nat();
        if let Some(n) = &mut s.nat {
            n.allocation = PortAllocation::Sequential { delta: 0 };
        }
        assert!(matches!(s.to_blob(), Err(BlobError::OutOfBounds(_))));
    }

    #[test]
    fn the_largest_signal_still_fits() {
        let mut s = with_nat();
        s.candidates = (0..MAX_CANDIDATES)
            .map(|i| Candidate {
                addr: format!("[2001:db8::{i}]:65535").parse().unwrap(),
                kind: CandidateKind::ServerReflexive,
                priority: u32::MAX,
            })
            .collect();
        s.ice_ufrag = "u".repeat(64);
        s.ice_pwd = "p".repeat(64);
        if let Some(n) = &mut s.nat {
            n.port_set = Some(PortSetDescription::Ranges(vec![
                PortRange {
                    first: 60000,
                    count: 16
                };
                16
            ]));
            n.observed = vec![65535; 4];
        }
        let blob = s.to_blob().unwrap();
        assert!(blob.len() <= MAX_BLOB_LEN, "{}", blob.len());
        assert_eq!(Signal::from_blob(&blob).unwrap(), s);
    }

    #[test]
    fn round_trips() {
        let blob = sample().to_blob().unwrap();
        assert_eq!(blob[0], 1);
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
        let mut blob = vec![1, 0];
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
        fn mutated_blobs_never_panic(pos in 0usize..200, byte in any::<u8>(), nat in any::<bool>()) {
            let mut blob = if nat { with_nat() } else { sample() }.to_blob().unwrap();
            let i = pos % blob.len();
            blob[i] = byte;
            let _ = Signal::from_blob(&blob);
        }
    }
}
