//! The STUN header (RFC 8489 §5) and the decoded message.

use std::fmt;
use std::net::SocketAddr;

use super::attribute::{Attribute, AttributeType, ErrorCode};
use super::error::DecodeError;

/// The fixed value in bytes 4..8 of every RFC 5389/8489 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Length of the STUN header in bytes.
pub const HEADER_LEN: usize = 20;
/// Length of an attribute header (type and length) in bytes.
pub(crate) const ATTR_HEADER_LEN: usize = 4;

/// The class of a message: the two C bits of the message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request, answered by a success or error response.
    Request,
    /// An indication: no answer is expected.
    Indication,
    /// A success response.
    SuccessResponse,
    /// An error response (carries ERROR-CODE).
    ErrorResponse,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::SuccessResponse => 0b10,
            Class::ErrorResponse => 0b11,
        }
    }

    fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }
}

/// A 12-bit STUN method. Constants name the ones STUN and TURN define.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(u16);

impl Method {
    /// Binding (RFC 8489).
    pub const BINDING: Method = Method(0x001);
    /// Allocate (RFC 8656).
    pub const ALLOCATE: Method = Method(0x003);
    /// Refresh (RFC 8656).
    pub const REFRESH: Method = Method(0x004);
    /// Send, an indication (RFC 8656).
    pub const SEND: Method = Method(0x006);
    /// Data, an indication (RFC 8656).
    pub const DATA: Method = Method(0x007);
    /// CreatePermission (RFC 8656).
    pub const CREATE_PERMISSION: Method = Method(0x008);
    /// ChannelBind (RFC 8656).
    pub const CHANNEL_BIND: Method = Method(0x009);
    /// Tsunagi rendezvous: register a peer identity (private use, `tsunagi::signal`).
    pub const RENDEZVOUS_REGISTER: Method = Method(0x0C0);
    /// Tsunagi rendezvous: pass an offer or answer to a registered peer.
    pub const RENDEZVOUS_SIGNAL: Method = Method(0x0C1);

    /// A method from its number, or `None` if it does not fit in 12 bits.
    pub const fn new(value: u16) -> Option<Method> {
        if value <= 0x0FFF {
            Some(Method(value))
        } else {
            None
        }
    }

    /// The method's number.
    pub const fn value(self) -> u16 {
        self.0
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Method::BINDING => "Binding",
            Method::ALLOCATE => "Allocate",
            Method::REFRESH => "Refresh",
            Method::SEND => "Send",
            Method::DATA => "Data",
            Method::CREATE_PERMISSION => "CreatePermission",
            Method::CHANNEL_BIND => "ChannelBind",
            _ => return None,
        })
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Method({:#05x})", self.0),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Packs a class and method into the 14-bit message type (RFC 8489 §5, Figure 3).
pub(crate) fn message_type(class: Class, method: Method) -> u16 {
    let m = method.0;
    let c = class.bits();
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
}

/// Splits a message type into class and method. The top two bits are ignored.
pub(crate) fn split_message_type(t: u16) -> (Class, Method) {
    let m = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80);
    let c = ((t >> 4) & 1) | ((t >> 7) & 2);
    (Class::from_bits(c), Method(m))
}

/// The 96-bit transaction ID that pairs a response with its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId([u8; 12]);

impl TransactionId {
    /// Wraps 12 bytes. Requests need them cryptographically random (RFC 8489 §6).
    pub const fn new(bytes: [u8; 12]) -> TransactionId {
        TransactionId(bytes)
    }

    /// The 12 bytes.
    pub const fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

/// Reads a big-endian u16 at `offset`, or `None` past the end.
pub(crate) fn read_u16(buf: &[u8], offset: usize) -> Option<u16> {
    let bytes = buf.get(offset..offset.checked_add(2)?)?;
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// Reads a big-endian u32 at `offset`, or `None` past the end.
pub(crate) fn read_u32(buf: &[u8], offset: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(offset..offset.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// Rounds up to the next multiple of 4 (attribute values are padded to 32 bits).
pub(crate) const fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// The 20-byte header of a message, checked on its own (RFC 8489 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The message class.
    pub class: Class,
    /// The method.
    pub method: Method,
    /// The length field: bytes of attributes after the header.
    pub length: u16,
    /// The transaction ID.
    pub transaction_id: TransactionId,
}

impl Header {
    /// Checks the header of a datagram: size, the two zero bits, the magic cookie,
    /// and a length field that is a multiple of 4 and matches the datagram. A
    /// server uses it to tell a malformed request (answer 400) from noise (drop).
    pub fn decode(buf: &[u8]) -> Result<Header, DecodeError> {
        let too_short = DecodeError::TooShort { len: buf.len() };
        let header = buf.get(..HEADER_LEN).ok_or(too_short.clone())?;
        let msg_type = read_u16(header, 0).ok_or(too_short.clone())?;
        if msg_type & 0xC000 != 0 {
            return Err(DecodeError::NotStun);
        }
        let length = read_u16(header, 2).ok_or(too_short.clone())?;
        let cookie = read_u32(header, 4).ok_or(too_short.clone())?;
        if cookie != MAGIC_COOKIE {
            return Err(DecodeError::BadMagicCookie { found: cookie });
        }
        if !length.is_multiple_of(4) {
            return Err(DecodeError::UnalignedLength { length });
        }
        let available = buf.len() - HEADER_LEN;
        if usize::from(length) != available {
            return Err(DecodeError::LengthMismatch {
                declared: usize::from(length),
                available,
            });
        }
        let tid: [u8; 12] = header
            .get(8..HEADER_LEN)
            .and_then(|t| t.try_into().ok())
            .ok_or(too_short)?;
        let (class, method) = split_message_type(msg_type);
        Ok(Header {
            class,
            method,
            length,
            transaction_id: TransactionId(tid),
        })
    }
}

/// A decoded STUN message. Text and byte-string attributes borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    class: Class,
    method: Method,
    transaction_id: TransactionId,
    attributes: Vec<Attribute<'a>>,
    unknown_required: Vec<AttributeType>,
    /// Offsets (from the message start) of the integrity and fingerprint attributes.
    pub(crate) integrity_at: Option<usize>,
    pub(crate) integrity_sha256_at: Option<usize>,
    pub(crate) fingerprint_at: Option<usize>,
    raw: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses one STUN message that fills `buf` exactly (one UDP datagram).
    ///
    /// Unknown comprehension-optional attributes are kept as [`Attribute::Unknown`];
    /// unknown comprehension-required ones are kept too and also listed by
    /// [`Message::unknown_comprehension_required`], so a server can answer 420.
    /// Attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and
    /// FINGERPRINT are ignored, as RFC 8489 §14.5 requires.
    pub fn decode(buf: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let Header {
            class,
            method,
            transaction_id,
            ..
        } = Header::decode(buf)?;
        let mut message = Message {
            class,
            method,
            transaction_id,
            attributes: Vec::new(),
            unknown_required: Vec::new(),
            integrity_at: None,
            integrity_sha256_at: None,
            fingerprint_at: None,
            raw: buf,
        };
        message.parse_attributes()?;
        Ok(message)
    }

    fn parse_attributes(&mut self) -> Result<(), DecodeError> {
        let buf = self.raw;
        let mut offset = HEADER_LEN;
        while offset < buf.len() {
            if self.fingerprint_at.is_some() {
                return Err(DecodeError::AttributeAfterFingerprint);
            }
            let truncated = DecodeError::TruncatedAttribute { offset };
            let typ = AttributeType(read_u16(buf, offset).ok_or(truncated.clone())?);
            let len = usize::from(read_u16(buf, offset + 2).ok_or(truncated.clone())?);
            let start = offset + ATTR_HEADER_LEN;
            let value = buf.get(start..start + len).ok_or(truncated.clone())?;
            let next = start + padded(len);
            if next > buf.len() {
                return Err(truncated);
            }
            let at = offset;
            offset = next;

            // RFC 8489 §14.5/§14.6: after MESSAGE-INTEGRITY(-SHA256) only the
            // stronger integrity and FINGERPRINT count; anything else is ignored.
            let after_integrity = self.integrity_at.is_some() || self.integrity_sha256_at.is_some();
            match typ {
                AttributeType::FINGERPRINT => self.fingerprint_at = Some(at),
                AttributeType::MESSAGE_INTEGRITY_SHA256 if self.integrity_sha256_at.is_none() => {
                    self.integrity_sha256_at = Some(at);
                }
                AttributeType::MESSAGE_INTEGRITY if !after_integrity => {
                    self.integrity_at = Some(at);
                }
                _ if after_integrity => continue,
                _ => {}
            }
            let attribute =
                Attribute::decode(typ, value, &self.transaction_id).map_err(|source| {
                    DecodeError::InvalidAttribute {
                        attribute: typ,
                        source,
                    }
                })?;
            if let Attribute::Unknown { typ, .. } = attribute
                && typ.is_comprehension_required()
            {
                self.unknown_required.push(typ);
            }
            self.attributes.push(attribute);
        }
        Ok(())
    }

    /// The message class.
    pub fn class(&self) -> Class {
        self.class
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The transaction ID.
    pub fn transaction_id(&self) -> TransactionId {
        self.transaction_id
    }

    /// All attributes that count, in order (duplicates included; the first wins).
    pub fn attributes(&self) -> &[Attribute<'a>] {
        &self.attributes
    }

    /// The first attribute of a type, if any.
    pub fn get(&self, typ: AttributeType) -> Option<&Attribute<'a>> {
        self.attributes.iter().find(|a| a.attribute_type() == typ)
    }

    /// Unknown comprehension-required attributes (type < 0x8000): a server answers a
    /// request carrying any with 420 and these types in UNKNOWN-ATTRIBUTES.
    pub fn unknown_comprehension_required(&self) -> &[AttributeType] {
        &self.unknown_required
    }

    /// The bytes this message was decoded from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// XOR-MAPPED-ADDRESS, if present.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::XorMappedAddress(addr) => Some(*addr),
            _ => None,
        })
    }

    /// MAPPED-ADDRESS, if present.
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::MappedAddress(addr) => Some(*addr),
            _ => None,
        })
    }

    /// ERROR-CODE, if present.
    pub fn error_code(&self) -> Option<&ErrorCode<'a>> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::ErrorCode(e) => Some(e),
            _ => None,
        })
    }

    /// Whether the message ends with a FINGERPRINT attribute.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint_at.is_some()
    }

    /// Whether the message carries MESSAGE-INTEGRITY.
    pub fn has_integrity(&self) -> bool {
        self.integrity_at.is_some()
    }

    /// Whether the message carries MESSAGE-INTEGRITY-SHA256.
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256_at.is_some()
    }
}
