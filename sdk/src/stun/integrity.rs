//! MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
//! (RFC 8489 §9, §14.5–§14.7, §18.5).

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::attribute::AttributeType;
use super::error::IntegrityError;
use super::message::{ATTR_HEADER_LEN, HEADER_LEN, Message};

/// FINGERPRINT is CRC-32 XOR this ("STUN" in ASCII).
const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// Bytes of a MESSAGE-INTEGRITY value (HMAC-SHA1).
pub(crate) const SHA1_LEN: usize = 20;
/// Bytes of a full MESSAGE-INTEGRITY-SHA256 value.
pub(crate) const SHA256_LEN: usize = 32;

/// The HMAC key of a STUN credential.
///
/// The strings are used as given: callers that need RFC 8265 OpaqueString
/// preparation (SASLprep in RFC 5389) apply it first.
#[derive(Clone, PartialEq, Eq)]
pub struct IntegrityKey(Vec<u8>);

impl IntegrityKey {
    /// Short-term credential (ICE, RFC 8489 §9.1): the key is the password.
    pub fn short_term(password: &str) -> IntegrityKey {
        IntegrityKey(password.as_bytes().to_vec())
    }

    /// Long-term credential with MD5 (RFC 8489 §9.2.2, the RFC 5389 key):
    /// `MD5(username ":" realm ":" password)`.
    pub fn long_term_md5(username: &str, realm: &str, password: &str) -> IntegrityKey {
        let mut h = Md5::new();
        for part in [username, ":", realm, ":", password] {
            h.update(part.as_bytes());
        }
        IntegrityKey(h.finalize().to_vec())
    }

    /// Long-term credential with PASSWORD-ALGORITHM SHA-256:
    /// `SHA-256(username ":" realm ":" password)`.
    pub fn long_term_sha256(username: &str, realm: &str, password: &str) -> IntegrityKey {
        let mut h = Sha256::new();
        for part in [username, ":", realm, ":", password] {
            h.update(part.as_bytes());
        }
        IntegrityKey(h.finalize().to_vec())
    }

    /// A key from raw bytes (e.g. one cached by a TURN server).
    pub fn from_bytes(bytes: &[u8]) -> IntegrityKey {
        IntegrityKey(bytes.to_vec())
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A key is a secret: never print it.
        f.write_str("IntegrityKey(..)")
    }
}

/// USERHASH: `SHA-256(username ":" realm)` (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [username, ":", realm] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// The header with its length field replaced, as HMAC and CRC inputs need it.
fn header_with_length(message: &[u8], length: usize) -> Option<[u8; HEADER_LEN]> {
    let mut header: [u8; HEADER_LEN] = message.get(..HEADER_LEN)?.try_into().ok()?;
    let length = u16::try_from(length).ok()?;
    header[2..4].copy_from_slice(&length.to_be_bytes());
    Some(header)
}

/// HMAC-SHA1 over `message[..end]`, the length field set to cover up to
/// `end + 24` (the MESSAGE-INTEGRITY attribute that follows).
pub(crate) fn hmac_sha1(key: &IntegrityKey, message: &[u8], end: usize) -> Option<[u8; 20]> {
    let header = header_with_length(message, end + ATTR_HEADER_LEN + SHA1_LEN - HEADER_LEN)?;
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&key.0).ok()?;
    mac.update(&header);
    mac.update(message.get(HEADER_LEN..end)?);
    Some(mac.finalize().into_bytes().into())
}

/// HMAC-SHA256 over `message[..end]`, the length field covering a following
/// MESSAGE-INTEGRITY-SHA256 of `mac_len` bytes.
pub(crate) fn hmac_sha256(
    key: &IntegrityKey,
    message: &[u8],
    end: usize,
    mac_len: usize,
) -> Option<[u8; 32]> {
    let header = header_with_length(message, end + ATTR_HEADER_LEN + mac_len - HEADER_LEN)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).ok()?;
    mac.update(&header);
    mac.update(message.get(HEADER_LEN..end)?);
    Some(mac.finalize().into_bytes().into())
}

/// The FINGERPRINT value for `message[..end]`, the length field covering the
/// 8-byte FINGERPRINT attribute that follows.
pub(crate) fn fingerprint_over(message: &[u8], end: usize) -> Option<u32> {
    let header = header_with_length(message, end + ATTR_HEADER_LEN + 4 - HEADER_LEN)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    crc.update(message.get(HEADER_LEN..end)?);
    Some(crc.finalize() ^ FINGERPRINT_XOR)
}

/// CRC-32 of `bytes` XOR 0x5354554e: the FINGERPRINT of a message whose length
/// field already covers the FINGERPRINT attribute.
pub fn fingerprint(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes) ^ FINGERPRINT_XOR
}

/// Compares two MACs in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value bytes of the attribute whose header starts at `at`.
fn value_at(message: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    let start = at.checked_add(ATTR_HEADER_LEN)?;
    message.get(start..start.checked_add(len)?)
}

impl Message<'_> {
    /// Checks MESSAGE-INTEGRITY (HMAC-SHA1) with `key`.
    pub fn verify_integrity(&self, key: &IntegrityKey) -> Result<(), IntegrityError> {
        let typ = AttributeType::MESSAGE_INTEGRITY;
        let at = self.integrity_at.ok_or(IntegrityError::Missing(typ))?;
        let raw = self.as_bytes();
        let found = value_at(raw, at, SHA1_LEN).ok_or(IntegrityError::Missing(typ))?;
        let expected = hmac_sha1(key, raw, at).ok_or(IntegrityError::Mismatch(typ))?;
        if constant_time_eq(found, &expected) {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch(typ))
        }
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 (possibly truncated) with `key`.
    pub fn verify_integrity_sha256(&self, key: &IntegrityKey) -> Result<(), IntegrityError> {
        let typ = AttributeType::MESSAGE_INTEGRITY_SHA256;
        let at = self
            .integrity_sha256_at
            .ok_or(IntegrityError::Missing(typ))?;
        let raw = self.as_bytes();
        let len = super::message::read_u16(raw, at + 2).ok_or(IntegrityError::Missing(typ))?;
        let len = usize::from(len);
        let found = value_at(raw, at, len).ok_or(IntegrityError::Missing(typ))?;
        let expected = hmac_sha256(key, raw, at, len).ok_or(IntegrityError::Mismatch(typ))?;
        let expected = expected.get(..len).ok_or(IntegrityError::Mismatch(typ))?;
        if constant_time_eq(found, expected) {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch(typ))
        }
    }

    /// Checks FINGERPRINT.
    pub fn verify_fingerprint(&self) -> Result<(), IntegrityError> {
        let at = self
            .fingerprint_at
            .ok_or(IntegrityError::FingerprintMissing)?;
        let raw = self.as_bytes();
        let found = super::message::read_u32(raw, at + ATTR_HEADER_LEN)
            .ok_or(IntegrityError::FingerprintMissing)?;
        match fingerprint_over(raw, at) {
            Some(expected) if expected == found => Ok(()),
            _ => Err(IntegrityError::FingerprintMismatch),
        }
    }
}
