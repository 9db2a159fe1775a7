//! STUN and TURN messages: one codec for the SDK and the relay server.
//!
//! Covers RFC 8489 (STUN), the RFC 5780 NAT-behaviour-discovery attributes, RFC 8656
//! (TURN) methods, attributes and ChannelData framing, and the RFC 8445 ICE
//! attributes. The codec is sans-IO: it turns bytes into values and back, and
//! never panics on any input.
//!
//! - [`Message::decode`] parses a datagram, borrowing strings and byte strings from
//!   it; [`Message::verify_integrity`], [`Message::verify_integrity_sha256`] and
//!   [`Message::verify_fingerprint`] check it.
//! - [`MessageBuilder`] writes a message and appends MESSAGE-INTEGRITY,
//!   MESSAGE-INTEGRITY-SHA256 and FINGERPRINT over the right prefix.
//! - [`ChannelData`] frames TURN channel data; [`classify`] sorts a datagram by its
//!   first byte (RFC 7983, RFC 9443).
//!
//! ```
//! use tsunagi::stun::{Attribute, Class, Message, MessageBuilder, Method, TransactionId};
//!
//! let tid = TransactionId::new([7; 12]);
//! let mut request = MessageBuilder::new(Class::Request, Method::BINDING, tid);
//! request.add(&Attribute::Software("tsunagi"))?;
//! let bytes = request.finish_with_fingerprint();
//!
//! let decoded = Message::decode(&bytes)?;
//! assert_eq!(decoded.method(), Method::BINDING);
//! assert!(decoded.verify_fingerprint().is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod attribute;
mod attribute_codec;
mod builder;
mod channel_data;
mod demux;
mod error;
mod integrity;
mod message;

pub use address::AddressFamily;
pub use attribute::{Attribute, AttributeType, ErrorCode, PasswordAlgorithm};
pub use builder::MessageBuilder;
pub use channel_data::ChannelData;
pub use demux::{PacketKind, classify};
pub use error::{AttributeError, ChannelDataError, DecodeError, EncodeError, IntegrityError};
pub use integrity::{IntegrityKey, fingerprint, userhash};
pub use message::{Class, HEADER_LEN, Header, MAGIC_COOKIE, Message, Method, TransactionId};

#[cfg(test)]
mod mutation_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
