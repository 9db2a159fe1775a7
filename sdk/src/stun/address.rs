//! Address attribute values: MAPPED-ADDRESS style and XOR-MAPPED-ADDRESS style
//! (RFC 8489 §14.1, §14.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::error::AttributeError;
use super::message::{MAGIC_COOKIE, TransactionId};

/// An IP address family as STUN and TURN encode it (0x01 IPv4, 0x02 IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// IPv4 (0x01).
    V4,
    /// IPv6 (0x02).
    V6,
}

impl AddressFamily {
    /// The family byte on the wire.
    pub const fn to_byte(self) -> u8 {
        match self {
            AddressFamily::V4 => 0x01,
            AddressFamily::V6 => 0x02,
        }
    }

    /// The family for a wire byte.
    pub fn from_byte(byte: u8) -> Result<AddressFamily, AttributeError> {
        match byte {
            0x01 => Ok(AddressFamily::V4),
            0x02 => Ok(AddressFamily::V6),
            other => Err(AttributeError::UnknownAddressFamily(other)),
        }
    }

    /// The family of an address.
    pub const fn of(addr: &SocketAddr) -> AddressFamily {
        match addr {
            SocketAddr::V4(_) => AddressFamily::V4,
            SocketAddr::V6(_) => AddressFamily::V6,
        }
    }
}

/// The 16 bytes IPv6 addresses are XORed with: magic cookie then transaction ID.
fn xor_key(tid: &TransactionId) -> [u8; 16] {
    let mut key = [0u8; 16];
    let (cookie, rest) = key.split_at_mut(4);
    cookie.copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    rest.copy_from_slice(tid.as_bytes());
    key
}

fn xor_addr(addr: SocketAddr, tid: &TransactionId) -> SocketAddr {
    let key = xor_key(tid);
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match addr.ip() {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) ^ MAGIC_COOKIE;
            IpAddr::V4(Ipv4Addr::from(bits))
        }
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            for (o, k) in octets.iter_mut().zip(key) {
                *o ^= k;
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
    };
    SocketAddr::new(ip, port)
}

/// Parses a MAPPED-ADDRESS-style value; `tid` is given for the XOR variants.
pub(crate) fn decode(
    value: &[u8],
    tid: Option<&TransactionId>,
) -> Result<SocketAddr, AttributeError> {
    let invalid = AttributeError::InvalidLength {
        actual: value.len(),
    };
    let family = AddressFamily::from_byte(*value.get(1).ok_or(invalid.clone())?)?;
    let port = u16::from_be_bytes([
        *value.get(2).ok_or(invalid.clone())?,
        *value.get(3).ok_or(invalid.clone())?,
    ]);
    let ip = match family {
        AddressFamily::V4 => {
            let bytes: [u8; 4] = value
                .get(4..)
                .and_then(|b| b.try_into().ok())
                .ok_or(invalid)?;
            IpAddr::V4(Ipv4Addr::from(bytes))
        }
        AddressFamily::V6 => {
            let bytes: [u8; 16] = value
                .get(4..)
                .and_then(|b| b.try_into().ok())
                .ok_or(invalid)?;
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
    };
    let addr = SocketAddr::new(ip, port);
    Ok(match tid {
        Some(tid) => xor_addr(addr, tid),
        None => addr,
    })
}

/// Writes a MAPPED-ADDRESS-style value; `tid` is given for the XOR variants.
pub(crate) fn encode(addr: SocketAddr, tid: Option<&TransactionId>, out: &mut Vec<u8>) {
    let addr = match tid {
        Some(tid) => xor_addr(addr, tid),
        None => addr,
    };
    out.push(0);
    out.push(AddressFamily::of(&addr).to_byte());
    out.extend_from_slice(&addr.port().to_be_bytes());
    match addr.ip() {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
}
