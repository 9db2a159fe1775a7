//! Long-term credentials (RFC 8489 §9.2) for TURN: static users, coturn-style
//! REST credentials from shared secrets, and stateless nonces.
//!
//! # Nonces
//!
//! A nonce is `TIMESTAMP.MAC` in hex: the Unix second it was minted and
//! HMAC-SHA256(server key, timestamp ‖ client IP ‖ client port), cut to 12 bytes.
//! The server stores nothing per nonce, so a flood of unauthenticated requests
//! costs no memory; a nonce replayed from another address, forged, or older than
//! the nonce lifetime gets 438 Stale Nonce with a fresh one.
//!
//! # REST credentials
//!
//! With `--auth-secret`, a username `EXPIRY:NAME` (EXPIRY in Unix seconds) is
//! accepted until EXPIRY when its password is base64(HMAC-SHA1(secret, username))
//! for any configured secret — what coturn's `use-auth-secret` accepts and what
//! [`tsunagi::relay::rest_credentials`] mints (the formula lives there, once).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tsunagi::stun::{Attribute, AttributeType, IntegrityKey, Message, PasswordAlgorithm};

/// Bytes of the nonce MAC kept (96 bits: forging one is out of reach).
const NONCE_MAC_LEN: usize = 12;

/// The credentials the server accepts.
#[derive(Clone)]
pub(crate) struct Authenticator {
    realm: String,
    /// Static users: name → password.
    users: HashMap<String, String>,
    secrets: Vec<String>,
    nonce_key: [u8; 32],
    nonce_lifetime_secs: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords, secrets and the nonce key stay out of logs.
        f.debug_struct("Authenticator")
            .field("realm", &self.realm)
            .field("users", &self.users.len())
            .field("secrets", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

/// A request whose MESSAGE-INTEGRITY checked out.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    /// The USERNAME.
    pub username: String,
    /// The name quotas count against: the user, or NAME of a REST `EXPIRY:NAME`.
    pub quota_name: String,
    /// The key that verified the request; responses are signed with it.
    pub key: IntegrityKey,
    /// Whether the request used MESSAGE-INTEGRITY-SHA256 (responses do too).
    pub sha256: bool,
}

/// Why a request is not authenticated, and so which error it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// No MESSAGE-INTEGRITY: the first leg of the dance, 401 with REALM and NONCE.
    Challenge,
    /// USERNAME, REALM or NONCE missing next to MESSAGE-INTEGRITY: 400.
    MissingAttributes,
    /// The nonce is not ours, not for this client, or too old: 438.
    StaleNonce,
    /// Unknown user, expired REST username, wrong realm or wrong MAC: 401.
    BadCredentials,
}

impl Authenticator {
    /// Credentials for `realm`; `nonce_key` should be random per process.
    pub fn new(
        realm: String,
        users: HashMap<String, String>,
        secrets: Vec<String>,
        nonce_key: [u8; 32],
        nonce_lifetime_secs: u64,
    ) -> Authenticator {
        Authenticator {
            realm,
            users,
            secrets,
            nonce_key,
            nonce_lifetime_secs,
        }
    }

    /// The REALM.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn nonce_mac(&self, timestamp: u64, client: SocketAddr) -> Option<[u8; NONCE_MAC_LEN]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.nonce_key).ok()?;
        mac.update(&timestamp.to_be_bytes());
        match client.ip() {
            IpAddr::V4(a) => mac.update(&a.octets()),
            IpAddr::V6(a) => mac.update(&a.octets()),
        }
        mac.update(&client.port().to_be_bytes());
        let full = mac.finalize().into_bytes();
        full.get(..NONCE_MAC_LEN)?.try_into().ok()
    }

    /// A fresh nonce for `client` (41 ASCII bytes at most).
    pub fn nonce(&self, now_unix: u64, client: SocketAddr) -> String {
        let mut nonce = format!("{now_unix:x}.");
        for byte in self.nonce_mac(now_unix, client).unwrap_or_default() {
            let _ = write!(nonce, "{byte:02x}");
        }
        nonce
    }

    fn nonce_is_fresh(&self, nonce: &str, now_unix: u64, client: SocketAddr) -> bool {
        let Some((ts, mac_hex)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(ts) = u64::from_str_radix(ts, 16) else {
            return false;
        };
        // A nonce from the future was not minted by this clock.
        if ts > now_unix.saturating_add(5) || now_unix.saturating_sub(ts) > self.nonce_lifetime_secs
        {
            return false;
        }
        let Some(expected) = self.nonce_mac(ts, client) else {
            return false;
        };
        let mut found = [0u8; NONCE_MAC_LEN];
        if mac_hex.len() != NONCE_MAC_LEN * 2 {
            return false;
        }
        for (i, byte) in found.iter_mut().enumerate() {
            let Some(Ok(b)) = mac_hex
                .get(i * 2..i * 2 + 2)
                .map(|h| u8::from_str_radix(h, 16))
            else {
                return false;
            };
            *byte = b;
        }
        // Not secret-dependent timing in a way that matters: the MAC is over
        // public data, but compare in constant time anyway.
        found
            .iter()
            .zip(expected)
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
    }

    /// Checks a request's long-term credentials (RFC 8489 §9.2.4 order: integrity
    /// present, attributes present, nonce fresh, user known, MAC right).
    /// `raw_check`, when given, replaces the MESSAGE-INTEGRITY check (for a
    /// request decoded from a rewritten copy, see `turn::legacy`).
    pub fn authenticate(
        &self,
        request: &Message<'_>,
        client: SocketAddr,
        now_unix: u64,
        raw_check: Option<&dyn Fn(&IntegrityKey) -> bool>,
    ) -> Result<Authenticated, Rejection> {
        let sha256 = request.has_integrity_sha256();
        if !sha256 && !request.has_integrity() {
            return Err(Rejection::Challenge);
        }
        let mut username = None;
        let mut realm = None;
        let mut nonce = None;
        let mut algorithm = None;
        for attribute in request.attributes() {
            match attribute {
                Attribute::Username(u) => username = Some(*u),
                Attribute::Realm(r) => realm = Some(*r),
                Attribute::Nonce(n) => nonce = Some(*n),
                Attribute::PasswordAlgorithm(a) => algorithm = Some(*a),
                _ => {}
            }
        }
        let (Some(username), Some(realm), Some(nonce)) = (username, realm, nonce) else {
            return Err(Rejection::MissingAttributes);
        };
        if !self.nonce_is_fresh(nonce, now_unix, client) {
            return Err(Rejection::StaleNonce);
        }
        if realm != self.realm {
            return Err(Rejection::BadCredentials);
        }
        let use_sha256_key = algorithm == Some(PasswordAlgorithm::SHA256);
        let key_for = |password: &str| {
            if use_sha256_key {
                IntegrityKey::long_term_sha256(username, realm, password)
            } else {
                IntegrityKey::long_term_md5(username, realm, password)
            }
        };
        let verifies = |key: &IntegrityKey| {
            if let Some(check) = raw_check {
                check(key)
            } else if sha256 {
                request.verify_integrity_sha256(key).is_ok()
            } else {
                request.verify_integrity(key).is_ok()
            }
        };
        let found = |key: IntegrityKey, quota_name: &str| Authenticated {
            username: username.to_string(),
            quota_name: quota_name.to_string(),
            key,
            sha256,
        };
        if let Some(password) = self.users.get(username) {
            let key = key_for(password);
            return if verifies(&key) {
                Ok(found(key, username))
            } else {
                Err(Rejection::BadCredentials)
            };
        }
        let Some((expiry, name)) = parse_rest_username(username) else {
            return Err(Rejection::BadCredentials);
        };
        if expiry < now_unix {
            tracing::debug!(%client, username, "REST username expired");
            return Err(Rejection::BadCredentials);
        }
        for secret in &self.secrets {
            let key = key_for(&tsunagi::relay::rest_password(secret, username));
            if verifies(&key) {
                return Ok(found(key, name));
            }
        }
        Err(Rejection::BadCredentials)
    }

    /// Whether a request's USERNAME is `username` (for requests on an allocation,
    /// which must come from its owner).
    pub fn same_user(request: &Message<'_>, username: &str) -> bool {
        matches!(request.get(AttributeType::USERNAME), Some(Attribute::Username(u)) if *u == username)
    }
}

/// `EXPIRY` and `NAME` of a REST username `EXPIRY:NAME` (or just `EXPIRY`).
pub(crate) fn parse_rest_username(username: &str) -> Option<(u64, &str)> {
    let (expiry, name) = username.split_once(':').unwrap_or((username, ""));
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((expiry.parse().ok()?, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new("r".into(), HashMap::new(), vec![], [7; 32], 600)
    }

    #[test]
    fn nonces_are_bound_to_client_and_time() {
        let a = auth();
        let c1: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        let c2: SocketAddr = "192.0.2.1:1001".parse().unwrap();
        let n = a.nonce(1_000_000, c1);
        assert!(n.len() <= 41, "{n}");
        assert!(a.nonce_is_fresh(&n, 1_000_000, c1));
        assert!(a.nonce_is_fresh(&n, 1_000_600, c1));
        assert!(!a.nonce_is_fresh(&n, 1_000_601, c1), "expired");
        assert!(!a.nonce_is_fresh(&n, 1_000_000, c2), "other client");
        assert!(!a.nonce_is_fresh(&n, 999_000, c1), "from the future");
        let forged = format!("{:x}.{}", 1_000_500, &n[n.len() - 24..]);
        assert!(
            !a.nonce_is_fresh(&forged, 1_000_500, c1),
            "timestamp changed"
        );
        for junk in ["", ".", "zz.00", "f4240.", "f4240.0g"] {
            assert!(!a.nonce_is_fresh(junk, 1_000_000, c1), "{junk:?}");
        }
    }

    #[test]
    fn rest_usernames() {
        assert_eq!(parse_rest_username("123:bob"), Some((123, "bob")));
        assert_eq!(parse_rest_username("123"), Some((123, "")));
        assert_eq!(parse_rest_username("123:a:b"), Some((123, "a:b")));
        assert_eq!(parse_rest_username("bob"), None);
        assert_eq!(parse_rest_username(":bob"), None);
        assert_eq!(parse_rest_username("99999999999999999999999:x"), None);
    }
}
