//! The rendezvous protocol on the wire: STUN-framed messages, so that signalling shares
//! the game's UDP socket (first byte 0–3 sorts it with STUN) and its NAT binding.
//!
//! | message | attributes |
//! |---|---|
//! | Register request | USERNAME (the token's), PEER-ID, LIFETIME, MESSAGE-INTEGRITY, FINGERPRINT |
//! | Register success | XOR-MAPPED-ADDRESS, LIFETIME, MESSAGE-INTEGRITY, FINGERPRINT |
//! | Signal request | USERNAME, PEER-ID (the recipient), SIGNAL-DATA, MESSAGE-INTEGRITY, FINGERPRINT |
//! | Signal success | MESSAGE-INTEGRITY, FINGERPRINT |
//! | Signal indication (server → recipient) | PEER-ID (the sender), SIGNAL-DATA, MESSAGE-INTEGRITY (the recipient's key), FINGERPRINT |
//! | errors | ERROR-CODE: 400 malformed, 401 bad credentials, 404 peer not registered, 409 identity held by another user, 429 too many signals |
//!
//! MESSAGE-INTEGRITY uses the short-term mechanism with the token's password, which
//! the server re-derives from its shared secret, so servers keep no user table.

use std::net::SocketAddr;

use crate::stun::{
    Attribute, AttributeType, Class, ErrorCode, IntegrityKey, Message, MessageBuilder, Method,
    TransactionId,
};

/// PEER-ID: a 32-byte Ed25519 public key (comprehension-optional private range).
pub const PEER_ID: AttributeType = AttributeType(0xC0A0);
/// SIGNAL-DATA: an opaque signal blob.
pub const SIGNAL_DATA: AttributeType = AttributeType(0xC0A1);

/// 404: the recipient is not registered (offline, or registered elsewhere).
pub const NOT_REGISTERED: u16 = 404;
/// 409: the identity is registered by another user.
pub const IDENTITY_TAKEN: u16 = 409;
/// 429: too many signals per second from this peer.
pub const TOO_MANY: u16 = 429;

/// What a rendezvous message says, once decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire<'a> {
    /// A client registers `peer` under `username`.
    Register {
        username: &'a str,
        peer: [u8; 32],
        lifetime: Option<u32>,
    },
    /// The server accepted a registration.
    Registered {
        mapped: Option<SocketAddr>,
        lifetime: u32,
    },
    /// A client asks to pass `data` to `to`.
    Signal {
        username: &'a str,
        to: [u8; 32],
        data: &'a [u8],
    },
    /// The server took the signal.
    Sent,
    /// The server passes `data` from `from`.
    Deliver { from: [u8; 32], data: &'a [u8] },
    /// The server refused a request.
    Error { code: u16, reason: &'a str },
}

fn raw<'a>(m: &Message<'a>, typ: AttributeType) -> Option<&'a [u8]> {
    m.attributes().iter().find_map(|a| match a {
        Attribute::Unknown { typ: t, value } if *t == typ => Some(*value),
        _ => None,
    })
}

fn peer_id(m: &Message<'_>) -> Option<[u8; 32]> {
    raw(m, PEER_ID)?.try_into().ok()
}

fn username<'a>(m: &Message<'a>) -> Option<&'a str> {
    m.attributes().iter().find_map(|a| match a {
        Attribute::Username(u) => Some(*u),
        _ => None,
    })
}

/// Whether a datagram is a rendezvous message, from its STUN header alone (first
/// two bits zero, the magic cookie, method 0x0C0 or 0x0C1): cheap enough for the
/// receive path, which must sort rendezvous from TURN on the relay's address.
pub fn is_rendezvous(datagram: &[u8]) -> bool {
    let (Some(&[t0, t1]), Some(cookie)) = (datagram.first_chunk::<2>(), datagram.get(4..8)) else {
        return false;
    };
    if datagram.len() < 20 || t0 & 0xC0 != 0 || cookie != [0x21, 0x12, 0xA4, 0x42] {
        return false;
    }
    let t = u16::from_be_bytes([t0, t1]);
    let method = ((t & 0x3E00) >> 2) | ((t & 0x00E0) >> 1) | (t & 0x000F);
    method == 0x0C0 || method == 0x0C1
}

/// Reads the rendezvous meaning of a decoded STUN message, or `None` if it is not a
/// well-formed rendezvous message. Integrity is checked by the caller, who knows the key.
pub fn parse<'a>(m: &Message<'a>) -> Option<Wire<'a>> {
    let method = m.method();
    if method != Method::RENDEZVOUS_REGISTER && method != Method::RENDEZVOUS_SIGNAL {
        return None;
    }
    if m.class() == Class::ErrorResponse {
        let e = m.error_code()?;
        return Some(Wire::Error {
            code: e.code,
            reason: e.reason,
        });
    }
    let lifetime = m.attributes().iter().find_map(|a| match a {
        Attribute::Lifetime(l) => Some(*l),
        _ => None,
    });
    match (method == Method::RENDEZVOUS_REGISTER, m.class()) {
        (true, Class::Request) => Some(Wire::Register {
            username: username(m)?,
            peer: peer_id(m)?,
            lifetime,
        }),
        (true, Class::SuccessResponse) => Some(Wire::Registered {
            mapped: m.xor_mapped_address(),
            lifetime: lifetime?,
        }),
        (false, Class::Request) => Some(Wire::Signal {
            username: username(m)?,
            to: peer_id(m)?,
            data: raw(m, SIGNAL_DATA)?,
        }),
        (false, Class::SuccessResponse) => Some(Wire::Sent),
        (false, Class::Indication) => Some(Wire::Deliver {
            from: peer_id(m)?,
            data: raw(m, SIGNAL_DATA)?,
        }),
        _ => None,
    }
}

/// Encodes `wire` as a STUN message with transaction `tid`, integrity under `key` (none
/// for errors to unauthenticated requests) and a fingerprint. Fails only if a field
/// is over the STUN size limits.
pub fn encode(
    wire: &Wire<'_>,
    tid: TransactionId,
    reflexive: Option<SocketAddr>,
    key: Option<&IntegrityKey>,
) -> Result<Vec<u8>, crate::stun::EncodeError> {
    let (class, method) = match wire {
        Wire::Register { .. } => (Class::Request, Method::RENDEZVOUS_REGISTER),
        Wire::Registered { .. } => (Class::SuccessResponse, Method::RENDEZVOUS_REGISTER),
        Wire::Signal { .. } => (Class::Request, Method::RENDEZVOUS_SIGNAL),
        Wire::Sent => (Class::SuccessResponse, Method::RENDEZVOUS_SIGNAL),
        Wire::Deliver { .. } => (Class::Indication, Method::RENDEZVOUS_SIGNAL),
        Wire::Error { .. } => (Class::ErrorResponse, Method::RENDEZVOUS_SIGNAL),
    };
    let mut b = MessageBuilder::new(class, method, tid);
    match wire {
        Wire::Register {
            username,
            peer,
            lifetime,
        } => {
            b.add(&Attribute::Username(username))?;
            b.add(&Attribute::Unknown {
                typ: PEER_ID,
                value: peer,
            })?;
            if let Some(l) = lifetime {
                b.add(&Attribute::Lifetime(*l))?;
            }
        }
        Wire::Registered { mapped, lifetime } => {
            if let Some(a) = mapped.or(reflexive) {
                b.add(&Attribute::XorMappedAddress(a))?;
            }
            b.add(&Attribute::Lifetime(*lifetime))?;
        }
        Wire::Signal { username, to, data } => {
            b.add(&Attribute::Username(username))?;
            b.add(&Attribute::Unknown {
                typ: PEER_ID,
                value: to,
            })?;
            b.add(&Attribute::Unknown {
                typ: SIGNAL_DATA,
                value: data,
            })?;
        }
        Wire::Sent => {}
        Wire::Deliver { from, data } => {
            b.add(&Attribute::Unknown {
                typ: PEER_ID,
                value: from,
            })?;
            b.add(&Attribute::Unknown {
                typ: SIGNAL_DATA,
                value: data,
            })?;
        }
        Wire::Error { code, reason } => {
            b.add(&Attribute::ErrorCode(ErrorCode::new(*code, reason)))?;
        }
    }
    if let Some(k) = key {
        b.add_integrity(k);
    }
    Ok(b.finish_with_fingerprint())
}

/// Encodes an error response for the request `tid` with `method`.
pub fn encode_error(
    method: Method,
    tid: TransactionId,
    code: u16,
    reason: &str,
    key: Option<&IntegrityKey>,
) -> Result<Vec<u8>, crate::stun::EncodeError> {
    let mut b = MessageBuilder::new(Class::ErrorResponse, method, tid);
    b.add(&Attribute::ErrorCode(ErrorCode::new(code, reason)))?;
    if let Some(k) = key {
        b.add_integrity(k);
    }
    Ok(b.finish_with_fingerprint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips_with_integrity() {
        let key = IntegrityKey::short_term("pw");
        let tid = TransactionId::new([1; 12]);
        let cases = [
            Wire::Register {
                username: "1:alice",
                peer: [3; 32],
                lifetime: Some(300),
            },
            Wire::Registered {
                mapped: Some("198.18.1.1:5000".parse().unwrap()),
                lifetime: 300,
            },
            Wire::Signal {
                username: "1:alice",
                to: [4; 32],
                data: b"blob",
            },
            Wire::Sent,
            Wire::Deliver {
                from: [5; 32],
                data: b"blob",
            },
        ];
        for w in cases {
            let bytes = encode(&w, tid, None, Some(&key)).unwrap();
            let m = Message::decode(&bytes).unwrap();
            assert!(m.verify_integrity(&key).is_ok());
            assert!(m.verify_fingerprint().is_ok());
            assert_eq!(parse(&m), Some(w));
        }
        let e = encode_error(
            Method::RENDEZVOUS_SIGNAL,
            tid,
            404,
            "Peer Not Registered",
            None,
        )
        .unwrap();
        let m = Message::decode(&e).unwrap();
        assert_eq!(
            parse(&m),
            Some(Wire::Error {
                code: 404,
                reason: "Peer Not Registered"
            })
        );
    }

    #[test]
    fn other_stun_is_not_rendezvous() {
        let b = MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([0; 12]));
        let bytes = b.finish();
        assert_eq!(parse(&Message::decode(&bytes).unwrap()), None);
    }
}
