//! Error types of the STUN codec, one enum per operation.

use super::attribute::AttributeType;

/// Why a datagram is not a well-formed STUN message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the 20-byte header.
    #[error("{len} bytes is too short for a STUN message (the header alone is 20)")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The first two bits are not zero: this is some other protocol.
    #[error("the first two bits are not zero: not a STUN message")]
    NotStun,
    /// The magic cookie is not 0x2112A442 (an RFC 3489 client or another protocol).
    #[error("magic cookie is {found:#010x}, expected 0x2112a442")]
    BadMagicCookie {
        /// The value in the header.
        found: u32,
    },
    /// The length field is not a multiple of 4.
    #[error("message length {length} is not a multiple of 4")]
    UnalignedLength {
        /// The length field.
        length: u16,
    },
    /// The length field does not match the bytes that follow the header.
    #[error("header says {declared} bytes of attributes but {available} follow it")]
    LengthMismatch {
        /// The length field.
        declared: usize,
        /// Bytes after the header.
        available: usize,
    },
    /// An attribute header or value runs past the end of the message.
    #[error("attribute at offset {offset} runs past the end of the message")]
    TruncatedAttribute {
        /// Offset of the attribute header from the start of the message.
        offset: usize,
    },
    /// A known attribute has a value that does not parse.
    #[error("attribute {attribute}: {source}")]
    InvalidAttribute {
        /// Which attribute.
        attribute: AttributeType,
        /// What is wrong with its value.
        source: AttributeError,
    },
    /// FINGERPRINT must be the last attribute.
    #[error("an attribute follows FINGERPRINT, which must be last")]
    AttributeAfterFingerprint,
}

/// Why the value of one attribute does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    /// The value has a length this attribute cannot have.
    #[error("value is {actual} bytes, which is not a valid length for it")]
    InvalidLength {
        /// Bytes in the value.
        actual: usize,
    },
    /// The value is longer than the RFC allows.
    #[error("value is {actual} bytes; at most {max} are allowed")]
    TooLong {
        /// Bytes in the value.
        actual: usize,
        /// The limit.
        max: usize,
    },
    /// An address family other than 0x01 (IPv4) or 0x02 (IPv6).
    #[error("unknown address family {0:#04x}")]
    UnknownAddressFamily(u8),
    /// Text that is not UTF-8.
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// An error code outside 300..=699 (class 3 to 6, number 0 to 99).
    #[error("error code class {class} number {number} is outside 300..=699")]
    InvalidErrorCode {
        /// The class (hundreds).
        class: u8,
        /// The number (0..=99 when valid).
        number: u8,
    },
    /// A CHANNEL-NUMBER outside 0x4000..=0x4FFF.
    #[error("channel number {0:#06x} is outside 0x4000..=0x4fff")]
    InvalidChannelNumber(u16),
}

/// Why a message could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// An attribute value does not fit the 16-bit length field or the RFC's limit.
    #[error("attribute {attribute} value is {len} bytes, more than {max} allowed")]
    ValueTooLong {
        /// Which attribute.
        attribute: AttributeType,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The whole message would exceed the 16-bit length field.
    #[error("message would be {len} bytes of attributes, more than 65535; split the data")]
    MessageTooLong {
        /// Bytes of attributes it would have.
        len: usize,
    },
    /// A value that cannot be represented (an error code outside 300..=699, a channel
    /// number outside 0x4000..=0x4FFF, a MESSAGE-INTEGRITY-SHA256 of a bad length).
    #[error("attribute {attribute} has a value that cannot be encoded: {source}")]
    InvalidValue {
        /// Which attribute.
        attribute: AttributeType,
        /// What is wrong.
        source: AttributeError,
    },
}

/// Why an integrity or fingerprint check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    /// The message has no MESSAGE-INTEGRITY (or -SHA256) attribute.
    #[error("the message carries no {0} attribute")]
    Missing(AttributeType),
    /// The HMAC does not match: wrong key or altered message.
    #[error("{0} does not match: wrong credentials or an altered message")]
    Mismatch(AttributeType),
    /// The message has no FINGERPRINT attribute.
    #[error("the message carries no FINGERPRINT attribute")]
    FingerprintMissing,
    /// The CRC does not match.
    #[error("FINGERPRINT does not match: the message was altered or is not STUN")]
    FingerprintMismatch,
}

/// Why a datagram is not a well-formed ChannelData message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelDataError {
    /// Shorter than the 4-byte header.
    #[error("{len} bytes is too short for ChannelData (the header alone is 4)")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The channel number is outside 0x4000..=0x4FFF.
    #[error("channel number {0:#06x} is outside 0x4000..=0x4fff")]
    InvalidChannel(u16),
    /// The length field promises more data than the datagram holds.
    #[error("length field says {declared} bytes but only {available} follow the header")]
    Truncated {
        /// The length field.
        declared: usize,
        /// Bytes after the header.
        available: usize,
    },
    /// More than 3 bytes of padding follow the data.
    #[error("{extra} bytes follow the data; at most 3 bytes of padding are allowed")]
    TrailingBytes {
        /// Bytes after the data.
        extra: usize,
    },
    /// The data does not fit the 16-bit length field.
    #[error("{len} bytes of data do not fit a ChannelData message (at most 65535)")]
    DataTooLong {
        /// Bytes of data.
        len: usize,
    },
}
