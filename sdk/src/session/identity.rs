//! Player identity: an Ed25519 key pair whose public half is the [`PeerId`].
//!
//! Both texts carry a 16-bit checksum so that a mistyped or truncated id is caught when
//! it is parsed, not later as a failed handshake.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

/// Text prefix of a printed [`PeerId`].
pub const PEER_ID_PREFIX: &str = "tsu";
/// Text prefix of an exported [`Identity`] secret.
pub const SECRET_PREFIX: &str = "tsusecret";

const KEY_LEN: usize = 32;
const CHECK_LEN: usize = 2;
/// Base32 characters for 34 bytes (32-byte key + 2-byte checksum).
const TEXT_LEN: usize = ((KEY_LEN + CHECK_LEN) * 8).div_ceil(5);
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32-byte key follows.
pub(crate) const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A player's public identity: their Ed25519 public key.
///
/// Printed as `tsu` followed by 55 lowercase base32 characters (the key and a 2-byte
/// checksum), e.g. `tsuabc…`. Parse it back with [`str::parse`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; KEY_LEN]);

impl PeerId {
    /// The id of the given raw 32-byte Ed25519 public key.
    pub fn from_public_key(key: [u8; KEY_LEN]) -> Self {
        Self(key)
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as a DER SubjectPublicKeyInfo, the form TLS raw public keys use (RFC 7250).
    pub(crate) fn to_spki(self) -> Vec<u8> {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        der
    }

    /// The id inside a DER SubjectPublicKeyInfo, if it holds an Ed25519 key.
    pub(crate) fn from_spki(der: &[u8]) -> Option<Self> {
        let key = der.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
        Some(Self(key.try_into().ok()?))
    }

    /// A short form for logs and screens: the first 10 characters after the prefix.
    pub fn short(&self) -> String {
        let full = self.to_string();
        full.chars().take(PEER_ID_PREFIX.len() + 10).collect()
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode(PEER_ID_PREFIX, &self.0))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode(PEER_ID_PREFIX, s).map(Self)
    }
}

/// A player's secret identity: an Ed25519 key pair.
///
/// Keep it across runs ([`Identity::to_secret_string`] / [`Identity::from_secret_string`])
/// so that friends can find the player again under the same [`PeerId`]. `Debug` shows only
/// the public id.
#[derive(Clone)]
pub struct Identity {
    seed: [u8; KEY_LEN],
    peer_id: PeerId,
}

impl Identity {
    /// A new random identity from the operating system's secure random source.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut seed = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| IdentityError::NoRandomness)?;
        Self::from_secret_bytes(seed)
    }

    /// The identity with the given 32-byte Ed25519 secret seed.
    pub fn from_secret_bytes(seed: [u8; KEY_LEN]) -> Result<Self, IdentityError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| IdentityError::Rejected(e.to_string()))?;
        let public: [u8; KEY_LEN] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| IdentityError::Rejected("public key is not 32 bytes".into()))?;
        Ok(Self {
            seed,
            peer_id: PeerId(public),
        })
    }

    /// The 32-byte secret seed. Store it as securely as a password.
    pub fn secret_bytes(&self) -> [u8; KEY_LEN] {
        self.seed
    }

    /// The secret as printable text (`tsusecret…`), for a save file or a config.
    pub fn to_secret_string(&self) -> String {
        encode(SECRET_PREFIX, &self.seed)
    }

    /// Parses a secret printed by [`Identity::to_secret_string`].
    pub fn from_secret_string(text: &str) -> Result<Self, IdentityError> {
        let seed = decode(SECRET_PREFIX, text)?;
        Self::from_secret_bytes(seed)
    }

    /// This player's public id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The key pair as PKCS#8 v1 DER, the form rustls loads.
    pub(crate) fn pkcs8_der(&self) -> Vec<u8> {
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&self.seed);
        der
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

/// Why an identity could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The operating system gave no random bytes.
    #[error("the operating system's random source failed: cannot generate an identity")]
    NoRandomness,
    /// The key material was refused by the crypto library.
    #[error("the Ed25519 key was rejected ({0}): the secret is corrupt, generate a new identity")]
    Rejected(String),
    /// The secret text did not parse.
    #[error(transparent)]
    Parse(#[from] ParseIdError),
}

/// Why a printed [`PeerId`] or identity secret did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// The text does not start with the expected prefix.
    #[error(
        "expected text starting with \"{expected}\", found \"{found}\": is this the right kind of id?"
    )]
    WrongPrefix {
        /// The prefix that was expected.
        expected: &'static str,
        /// The start of the text that was given.
        found: String,
    },
    /// The text after the prefix has the wrong length.
    #[error(
        "expected {expected} characters after \"{prefix}\", found {found}: the id was truncated or has extra characters"
    )]
    WrongLength {
        /// The prefix of this kind of text.
        prefix: &'static str,
        /// Expected characters after the prefix.
        expected: usize,
        /// Characters found after the prefix.
        found: usize,
    },
    /// A character outside the base32 alphabet (a–z, 2–7).
    #[error("invalid character {character:?} at position {position}: ids use only a-z and 2-7")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its position in the whole text, counting from 0.
        position: usize,
    },
    /// The checksum does not match: a character was changed.
    #[error("checksum mismatch: the id was mistyped, check it character by character")]
    ChecksumMismatch,
}

fn checksum(data: &[u8]) -> [u8; CHECK_LEN] {
    let digest = Sha256::digest(data);
    [digest[0], digest[1]]
}

fn encode(prefix: &str, key: &[u8; KEY_LEN]) -> String {
    let mut data = key.to_vec();
    data.extend_from_slice(&checksum(key));
    let mut out = String::with_capacity(prefix.len() + TEXT_LEN);
    out.push_str(prefix);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn decode(prefix: &'static str, text: &str) -> Result<[u8; KEY_LEN], ParseIdError> {
    let text = text.trim();
    let Some(body) = text.strip_prefix(prefix) else {
        return Err(ParseIdError::WrongPrefix {
            expected: prefix,
            found: text.chars().take(prefix.len()).collect(),
        });
    };
    let found = body.chars().count();
    if found != TEXT_LEN {
        return Err(ParseIdError::WrongLength {
            prefix,
            expected: TEXT_LEN,
            found,
        });
    }
    let mut data = Vec::with_capacity(KEY_LEN + CHECK_LEN);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for (i, character) in body.chars().enumerate() {
        let lower = character.to_ascii_lowercase();
        let value = ALPHABET
            .iter()
            .position(|&a| char::from(a) == lower)
            .ok_or(ParseIdError::InvalidCharacter {
                character,
                position: prefix.len() + i,
            })?;
        buffer = (buffer << 5) | value as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            data.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    let key: [u8; KEY_LEN] = data[..KEY_LEN]
        .try_into()
        .map_err(|_| ParseIdError::ChecksumMismatch)?;
    // Leftover bits must be zero, or two texts would name the same key.
    if data[KEY_LEN..] != checksum(&key) || buffer & ((1 << bits) - 1) != 0 {
        return Err(ParseIdError::ChecksumMismatch);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn peer_id_round_trips_and_catches_typos() {
        let id = Identity::generate().unwrap().peer_id();
        let text = id.to_string();
        assert!(text.starts_with("tsu"));
        assert_eq!(text.len(), 3 + 55);
        assert_eq!(text.parse::<PeerId>().unwrap(), id);
        assert_eq!(
            text.to_uppercase()
                .replace("TSU", "tsu")
                .parse::<PeerId>()
                .unwrap(),
            id
        );

        let mut typo: Vec<char> = text.chars().collect();
        typo[10] = if typo[10] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(typo.parse::<PeerId>(), Err(ParseIdError::ChecksumMismatch));

        assert!(matches!(
            text[..40].parse::<PeerId>(),
            Err(ParseIdError::WrongLength { found: 37, .. })
        ));
        assert!(matches!(
            "xyz".parse::<PeerId>(),
            Err(ParseIdError::WrongPrefix { .. })
        ));
        let bad = format!("tsu1{}", &text[4..]);
        assert_eq!(
            bad.parse::<PeerId>(),
            Err(ParseIdError::InvalidCharacter {
                character: '1',
                position: 3
            })
        );
    }

    #[test]
    fn identity_exports_and_imports() {
        let identity = Identity::generate().unwrap();
        let again = Identity::from_secret_string(&identity.to_secret_string()).unwrap();
        assert_eq!(again.peer_id(), identity.peer_id());
        let again = Identity::from_secret_bytes(identity.secret_bytes()).unwrap();
        assert_eq!(again.peer_id(), identity.peer_id());
        assert!(!format!("{identity:?}").contains(&identity.to_secret_string()));
        // A secret is not a peer id and vice versa.
        assert!(identity.peer_id().to_string().parse::<PeerId>().is_ok());
        assert!(Identity::from_secret_string(&identity.peer_id().to_string()).is_err());
    }

    #[test]
    fn spki_round_trips() {
        let id = Identity::generate().unwrap().peer_id();
        assert_eq!(PeerId::from_spki(&id.to_spki()), Some(id));
        assert_eq!(PeerId::from_spki(&id.to_spki()[1..]), None);
    }
}
