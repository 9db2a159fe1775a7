//! Writing messages, with MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT computed over
//! the right prefix (RFC 8489 §14.5–§14.7).

use super::attribute::{Attribute, AttributeType};
use super::error::EncodeError;
use super::integrity::{self, IntegrityKey, SHA1_LEN, SHA256_LEN};
use super::message::{
    ATTR_HEADER_LEN, Class, HEADER_LEN, MAGIC_COOKIE, Method, TransactionId, message_type, padded,
};

/// Room kept free for MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT,
/// so that appending them can never overflow the 16-bit length field.
const TRAILER_ROOM: usize = (ATTR_HEADER_LEN + SHA1_LEN) + (ATTR_HEADER_LEN + SHA256_LEN) + 8;
/// The largest attribute section (the length field is 16 bits, a multiple of 4).
const MAX_BODY: usize = 0xFFFC;

/// Builds one STUN message.
///
/// Add attributes in order, then optionally MESSAGE-INTEGRITY and/or
/// MESSAGE-INTEGRITY-SHA256, then finish with or without FINGERPRINT. The length
/// field is kept current, so each integrity value covers exactly the prefix
/// RFC 8489 specifies.
///
/// ```
/// use tsunagi::stun::*;
///
/// let key = IntegrityKey::short_term("secret");
/// let mut b = MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([1; 12]));
/// b.add(&Attribute::Username("alice:bob"))?.add(&Attribute::Priority(1))?;
/// b.add_integrity(&key);
/// let bytes = b.finish_with_fingerprint();
/// let m = Message::decode(&bytes)?;
/// assert!(m.verify_integrity(&key).is_ok() && m.verify_fingerprint().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    tid: TransactionId,
    padding_byte: u8,
}

impl MessageBuilder {
    /// Starts a message with its header.
    pub fn new(class: Class, method: Method, tid: TransactionId) -> MessageBuilder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&message_type(class, method).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(tid.as_bytes());
        MessageBuilder {
            buf,
            tid,
            padding_byte: 0,
        }
    }

    /// Sets the byte used to pad attribute values to 32 bits (0 by default).
    /// Receivers ignore padding; RFC 5769's test vectors pad with spaces.
    pub fn padding_byte(&mut self, byte: u8) -> &mut Self {
        self.padding_byte = byte;
        self
    }

    /// The transaction ID in the header.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether only the header is written.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == HEADER_LEN
    }

    fn set_length(&mut self) {
        // `add` keeps the body within MAX_BODY + TRAILER_ROOM, which fits in u16.
        let len = u16::try_from(self.buf.len() - HEADER_LEN).unwrap_or(u16::MAX);
        if let Some(field) = self.buf.get_mut(2..4) {
            field.copy_from_slice(&len.to_be_bytes());
        }
    }

    /// Appends an attribute. Attributes are written as given, MESSAGE-INTEGRITY and
    /// FINGERPRINT values included (use [`Self::add_integrity`] and
    /// [`Self::finish_with_fingerprint`] to compute them).
    pub fn add(&mut self, attribute: &Attribute<'_>) -> Result<&mut Self, EncodeError> {
        let start = self.buf.len();
        let typ = attribute.attribute_type();
        self.buf.extend_from_slice(&typ.0.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        if let Err(e) = attribute.encode_value(&self.tid, &mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let value_len = self.buf.len() - start - ATTR_HEADER_LEN;
        let body = start - HEADER_LEN + ATTR_HEADER_LEN + padded(value_len);
        let Ok(len16) = u16::try_from(value_len) else {
            self.buf.truncate(start);
            return Err(EncodeError::ValueTooLong {
                attribute: typ,
                len: value_len,
                max: usize::from(u16::MAX),
            });
        };
        if body > MAX_BODY - TRAILER_ROOM {
            self.buf.truncate(start);
            return Err(EncodeError::MessageTooLong { len: body });
        }
        if let Some(field) = self.buf.get_mut(start + 2..start + 4) {
            field.copy_from_slice(&len16.to_be_bytes());
        }
        let padding = padded(value_len) - value_len;
        self.buf.resize(self.buf.len() + padding, self.padding_byte);
        self.set_length();
        Ok(self)
    }

    /// Appends MESSAGE-INTEGRITY: HMAC-SHA1 with `key` over everything so far.
    pub fn add_integrity(&mut self, key: &IntegrityKey) -> &mut Self {
        let end = self.buf.len();
        let mac = integrity::hmac_sha1(key, &self.buf, end).unwrap_or([0; SHA1_LEN]);
        self.push_raw(AttributeType::MESSAGE_INTEGRITY, &mac);
        self
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 (the full 32 bytes) with `key`.
    pub fn add_integrity_sha256(&mut self, key: &IntegrityKey) -> &mut Self {
        let end = self.buf.len();
        let mac = integrity::hmac_sha256(key, &self.buf, end, SHA256_LEN).unwrap_or([0; 32]);
        self.push_raw(AttributeType::MESSAGE_INTEGRITY_SHA256, &mac);
        self
    }

    fn push_raw(&mut self, typ: AttributeType, value: &[u8]) {
        self.buf.extend_from_slice(&typ.0.to_be_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
        self.set_length();
    }

    /// The finished message.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The finished message with FINGERPRINT appended.
    pub fn finish_with_fingerprint(mut self) -> Vec<u8> {
        let end = self.buf.len();
        let crc = integrity::fingerprint_over(&self.buf, end).unwrap_or(0);
        self.push_raw(AttributeType::FINGERPRINT, &crc.to_be_bytes());
        self.buf
    }
}
