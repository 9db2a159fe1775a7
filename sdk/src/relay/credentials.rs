//! TURN long-term credentials: static ones, coturn-style REST credentials minted
//! from a shared secret, and the one-string token that carries them.
//!
//! # The token format
//!
//! A token is `tsunagi1.` followed by two or three parts separated by `.`, each the
//! unpadded base64url (RFC 4648 §5) of a UTF-8 string: the TURN username, the
//! password and, optionally, the realm the credentials are meant for:
//!
//! ```text
//! tsunagi1.<base64url(username)>.<base64url(password)>[.<base64url(realm)>]
//! ```
//!
//! With REST credentials the username is `EXPIRY:NAME` (EXPIRY in Unix seconds) and
//! the password is `base64(HMAC-SHA1(secret, username))`, which is what coturn's
//! `--use-auth-secret` expects. A game backend mints one in a few lines, e.g. in a
//! shell:
//!
//! ```text
//! user="$(( $(date +%s) + 3600 )):player42"
//! pass=$(printf %s "$user" | openssl dgst -sha1 -hmac "$SECRET" -binary | base64)
//! b64url() { printf %s "$1" | basenc --base64url | tr -d '='; }
//! echo "tsunagi1.$(b64url "$user").$(b64url "$pass").$(b64url tsunagi)"
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The prefix that marks (and versions) a token.
pub const TOKEN_PREFIX: &str = "tsunagi1.";

/// A TURN username and password (RFC 8489 §9.2 long-term credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The USERNAME sent to the server.
    pub username: String,
    /// The password; only its MD5 key, never the password itself, goes on the wire.
    pub password: String,
    /// The realm the credentials are meant for, if known. The server's REALM is
    /// what counts; a different one is logged, as it usually means a wrong server.
    pub realm_hint: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Passwords stay out of logs.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"..")
            .field("realm_hint", &self.realm_hint)
            .finish()
    }
}

impl Credentials {
    /// Static credentials, as configured on the server (`--user NAME:PASS`).
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
            realm_hint: None,
        }
    }

    /// When REST credentials stop being accepted (the `EXPIRY` of an
    /// `EXPIRY:NAME` username), in Unix seconds; `None` for other usernames.
    pub fn expires_at_unix(&self) -> Option<u64> {
        let expiry = self.username.split(':').next()?;
        expiry.parse().ok()
    }

    /// The one-string token for these credentials (see the module docs).
    pub fn to_token(&self) -> String {
        let mut token = format!(
            "{TOKEN_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(&self.username),
            URL_SAFE_NO_PAD.encode(&self.password)
        );
        if let Some(realm) = &self.realm_hint {
            token.push('.');
            token.push_str(&URL_SAFE_NO_PAD.encode(realm));
        }
        token
    }

    /// Parses a token (see the module docs), reporting precisely what is wrong.
    pub fn from_token(token: &str) -> Result<Credentials, TokenError> {
        let body = token
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::MissingPrefix)?;
        let parts: Vec<&str> = body.split('.').collect();
        let (user, pass, realm) = match parts.as_slice() {
            [user, pass] => (*user, *pass, None),
            [user, pass, realm] => (*user, *pass, Some(*realm)),
            _ => return Err(TokenError::PartCount { found: parts.len() }),
        };
        let username = decode_part(TokenPart::Username, user)?;
        if username.is_empty() {
            return Err(TokenError::Empty(TokenPart::Username));
        }
        let password = decode_part(TokenPart::Password, pass)?;
        let realm_hint = realm
            .map(|r| decode_part(TokenPart::Realm, r))
            .transpose()?;
        Ok(Credentials {
            username,
            password,
            realm_hint,
        })
    }
}

impl FromStr for Credentials {
    type Err = TokenError;

    fn from_str(token: &str) -> Result<Credentials, TokenError> {
        Credentials::from_token(token)
    }
}

fn decode_part(part: TokenPart, text: &str) -> Result<String, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| TokenError::NotBase64url(part))?;
    String::from_utf8(bytes).map_err(|_| TokenError::NotUtf8(part))
}

/// coturn-compatible REST credentials (`--use-auth-secret --static-auth-secret`):
/// username `EXPIRY:NAME` with EXPIRY = `now_unix + ttl`, password
/// `base64(HMAC-SHA1(secret, username))`.
///
/// ```
/// use std::time::Duration;
/// use tsunagi::relay::rest_credentials;
///
/// let c = rest_credentials("S", "player42", Duration::from_secs(3600), 1_700_000_000);
/// assert_eq!(c.username, "1700003600:player42");
/// assert_eq!(c.expires_at_unix(), Some(1_700_003_600));
/// ```
pub fn rest_credentials(secret: &str, name: &str, ttl: Duration, now_unix: u64) -> Credentials {
    let expiry = now_unix.saturating_add(ttl.as_secs());
    let username = if name.is_empty() {
        expiry.to_string()
    } else {
        format!("{expiry}:{name}")
    };
    let password = rest_password(secret, &username);
    Credentials::new(username, password)
}

/// The REST password for a username: `base64(HMAC-SHA1(secret, username))`.
pub fn rest_password(secret: &str, username: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC would only
    // make the server reject the credentials.
    match <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// A part of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPart {
    /// The TURN username.
    Username,
    /// The password.
    Password,
    /// The realm hint.
    Realm,
}

impl fmt::Display for TokenPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenPart::Username => "username",
            TokenPart::Password => "password",
            TokenPart::Realm => "realm",
        })
    }
}

/// Why a string is not a credential token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// It does not start with `tsunagi1.`.
    #[error(
        "a token starts with \"tsunagi1.\"; copy the whole string that `tsunagi token` printed"
    )]
    MissingPrefix,
    /// Not two or three `.`-separated parts after the prefix.
    #[error("a token has 2 or 3 parts separated by '.', this one has {found}; it may be cut short")]
    PartCount {
        /// Parts found.
        found: usize,
    },
    /// A part is not unpadded base64url.
    #[error("the token's {0} is not base64url (A-Z a-z 0-9 - _, no padding); it may be damaged")]
    NotBase64url(TokenPart),
    /// A part does not decode to UTF-8.
    #[error("the token's {0} is not UTF-8 text")]
    NotUtf8(TokenPart),
    /// A required part is empty.
    #[error("the token's {0} is empty")]
    Empty(TokenPart),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_password_matches_coturn_reference() {
        // echo -n "1700003600:player42" | openssl dgst -sha1 -hmac S -binary | base64
        let c = rest_credentials("S", "player42", Duration::from_secs(3600), 1_700_000_000);
        let expected = {
            let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(b"S").unwrap();
            mac.update(b"1700003600:player42");
            STANDARD.encode(mac.finalize().into_bytes())
        };
        assert_eq!(c.password, expected);
        assert_eq!(c.password.len(), 28);
        assert_eq!(rest_credentials("S", "", Duration::ZERO, 5).username, "5");
    }

    #[test]
    fn token_round_trips_with_and_without_realm() {
        let mut c = Credentials::new("1700003600:a:b", "p:w.d/+=");
        assert_eq!(Credentials::from_token(&c.to_token()), Ok(c.clone()));
        c.realm_hint = Some("tsunagi".into());
        let token = c.to_token();
        assert!(token.chars().all(|ch| ch.is_ascii_graphic()));
        assert_eq!(format!(" {token}\n").parse::<Credentials>(), Ok(c));
    }

    #[test]
    fn token_errors_are_precise() {
        use TokenError::*;
        assert_eq!(Credentials::from_token("abc"), Err(MissingPrefix));
        assert_eq!(
            Credentials::from_token("tsunagi1.YQ"),
            Err(PartCount { found: 1 })
        );
        assert_eq!(
            Credentials::from_token("tsunagi1.a.b.c.d"),
            Err(PartCount { found: 4 })
        );
        assert_eq!(
            Credentials::from_token("tsunagi1.YQ==.YQ"),
            Err(NotBase64url(TokenPart::Username))
        );
        assert_eq!(
            Credentials::from_token("tsunagi1.YQ.YQ.!"),
            Err(NotBase64url(TokenPart::Realm))
        );
        assert_eq!(
            Credentials::from_token("tsunagi1._w.YQ"),
            Err(NotUtf8(TokenPart::Username))
        );
        assert_eq!(
            Credentials::from_token("tsunagi1..YQ"),
            Err(Empty(TokenPart::Username))
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::new("alice", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
