//! Parsing and writing attribute values.

use super::address::{self, AddressFamily};
use super::attribute::{Attribute, AttributeType, ErrorCode, PasswordAlgorithm};
use super::error::{AttributeError, EncodeError};
use super::message::{TransactionId, padded, read_u16};

/// USERNAME must be fewer than 509 bytes (RFC 8489 §14.3).
const MAX_USERNAME: usize = 508;
/// REALM, NONCE, SOFTWARE and reason phrases: at most 763 bytes (RFC 8489 §14).
const MAX_TEXT: usize = 763;
/// ALTERNATE-DOMAIN: a DNS name, at most 255 bytes.
const MAX_DOMAIN: usize = 255;

/// The length limit of a text attribute.
fn text_limit(typ: AttributeType) -> usize {
    match typ {
        AttributeType::USERNAME => MAX_USERNAME,
        AttributeType::ALTERNATE_DOMAIN => MAX_DOMAIN,
        _ => MAX_TEXT,
    }
}

fn text(typ: AttributeType, value: &[u8]) -> Result<&str, AttributeError> {
    let max = text_limit(typ);
    if value.len() > max {
        return Err(AttributeError::TooLong {
            actual: value.len(),
            max,
        });
    }
    std::str::from_utf8(value).map_err(|_| AttributeError::InvalidUtf8)
}

fn exact<const N: usize>(value: &[u8]) -> Result<&[u8; N], AttributeError> {
    value.try_into().map_err(|_| AttributeError::InvalidLength {
        actual: value.len(),
    })
}

fn u32_value(value: &[u8]) -> Result<u32, AttributeError> {
    Ok(u32::from_be_bytes(*exact::<4>(value)?))
}

fn u64_value(value: &[u8]) -> Result<u64, AttributeError> {
    Ok(u64::from_be_bytes(*exact::<8>(value)?))
}

/// The first byte of a 4-byte value (family, protocol, flags), checking the length.
fn first_of_four(value: &[u8]) -> Result<u8, AttributeError> {
    Ok(exact::<4>(value)?[0])
}

fn error_code(value: &[u8]) -> Result<ErrorCode<'_>, AttributeError> {
    let invalid = AttributeError::InvalidLength {
        actual: value.len(),
    };
    let (head, reason) = value.split_at_checked(4).ok_or(invalid)?;
    let head = exact::<4>(head)?;
    let class = head[2] & 0x07;
    let number = head[3];
    if !(3..=6).contains(&class) || number > 99 {
        return Err(AttributeError::InvalidErrorCode { class, number });
    }
    let reason = text(AttributeType::ERROR_CODE, reason)?;
    Ok(ErrorCode::new(
        u16::from(class) * 100 + u16::from(number),
        reason,
    ))
}

/// Parses one PASSWORD-ALGORITHM entry; returns it and the bytes it used (padded).
fn password_algorithm(value: &[u8]) -> Result<(PasswordAlgorithm<'_>, usize), AttributeError> {
    let invalid = AttributeError::InvalidLength {
        actual: value.len(),
    };
    let algorithm = read_u16(value, 0).ok_or(invalid.clone())?;
    let len = usize::from(read_u16(value, 2).ok_or(invalid.clone())?);
    let parameters = value.get(4..4 + len).ok_or(invalid)?;
    let used = (4 + padded(len)).min(value.len());
    Ok((
        PasswordAlgorithm {
            algorithm,
            parameters,
        },
        used,
    ))
}

impl<'a> Attribute<'a> {
    /// Parses the value of an attribute of type `typ` (padding already removed).
    pub(crate) fn decode(
        typ: AttributeType,
        value: &'a [u8],
        tid: &TransactionId,
    ) -> Result<Attribute<'a>, AttributeError> {
        let invalid = AttributeError::InvalidLength {
            actual: value.len(),
        };
        Ok(match typ {
            AttributeType::MAPPED_ADDRESS => {
                Attribute::MappedAddress(address::decode(value, None)?)
            }
            AttributeType::XOR_MAPPED_ADDRESS => {
                Attribute::XorMappedAddress(address::decode(value, Some(tid))?)
            }
            AttributeType::USERNAME => Attribute::Username(text(typ, value)?),
            AttributeType::USERHASH => Attribute::Userhash(exact::<32>(value)?),
            AttributeType::REALM => Attribute::Realm(text(typ, value)?),
            AttributeType::NONCE => Attribute::Nonce(text(typ, value)?),
            AttributeType::PASSWORD_ALGORITHM => {
                let (algorithm, used) = password_algorithm(value)?;
                if used != value.len() {
                    return Err(invalid);
                }
                Attribute::PasswordAlgorithm(algorithm)
            }
            AttributeType::PASSWORD_ALGORITHMS => {
                let mut list = Vec::new();
                let mut rest = value;
                while !rest.is_empty() {
                    let (algorithm, used) = password_algorithm(rest)?;
                    list.push(algorithm);
                    rest = rest.get(used..).unwrap_or_default();
                }
                Attribute::PasswordAlgorithms(list)
            }
            AttributeType::MESSAGE_INTEGRITY => Attribute::MessageIntegrity(exact::<20>(value)?),
            AttributeType::MESSAGE_INTEGRITY_SHA256 => {
                if !(16..=32).contains(&value.len()) || !value.len().is_multiple_of(4) {
                    return Err(invalid);
                }
                Attribute::MessageIntegritySha256(value)
            }
            AttributeType::FINGERPRINT => Attribute::Fingerprint(u32_value(value)?),
            AttributeType::ERROR_CODE => Attribute::ErrorCode(error_code(value)?),
            AttributeType::UNKNOWN_ATTRIBUTES => {
                if !value.len().is_multiple_of(2) {
                    return Err(invalid);
                }
                let types = value
                    .chunks_exact(2)
                    .map(|c| AttributeType(u16::from_be_bytes([c[0], c[1]])))
                    .collect();
                Attribute::UnknownAttributes(types)
            }
            AttributeType::SOFTWARE => Attribute::Software(text(typ, value)?),
            AttributeType::ALTERNATE_SERVER => {
                Attribute::AlternateServer(address::decode(value, None)?)
            }
            AttributeType::ALTERNATE_DOMAIN => Attribute::AlternateDomain(text(typ, value)?),
            AttributeType::CHANGE_REQUEST => {
                let flags = u32_value(value)?;
                Attribute::ChangeRequest {
                    change_ip: flags & 0x4 != 0,
                    change_port: flags & 0x2 != 0,
                }
            }
            AttributeType::RESPONSE_ORIGIN => {
                Attribute::ResponseOrigin(address::decode(value, None)?)
            }
            AttributeType::OTHER_ADDRESS => Attribute::OtherAddress(address::decode(value, None)?),
            AttributeType::RESPONSE_PORT => {
                Attribute::ResponsePort(read_u16(exact::<4>(value)?, 0).ok_or(invalid)?)
            }
            AttributeType::PADDING => Attribute::Padding(value),
            AttributeType::CHANNEL_NUMBER => {
                let channel = read_u16(exact::<4>(value)?, 0).ok_or(invalid)?;
                if !(0x4000..=0x4FFF).contains(&channel) {
                    return Err(AttributeError::InvalidChannelNumber(channel));
                }
                Attribute::ChannelNumber(channel)
            }
            AttributeType::LIFETIME => Attribute::Lifetime(u32_value(value)?),
            AttributeType::XOR_PEER_ADDRESS => {
                Attribute::XorPeerAddress(address::decode(value, Some(tid))?)
            }
            AttributeType::DATA => Attribute::Data(value),
            AttributeType::XOR_RELAYED_ADDRESS => {
                Attribute::XorRelayedAddress(address::decode(value, Some(tid))?)
            }
            AttributeType::REQUESTED_ADDRESS_FAMILY => {
                Attribute::RequestedAddressFamily(AddressFamily::from_byte(first_of_four(value)?)?)
            }
            AttributeType::EVEN_PORT => Attribute::EvenPort {
                reserve_next: exact::<1>(value)?[0] & 0x80 != 0,
            },
            AttributeType::REQUESTED_TRANSPORT => {
                Attribute::RequestedTransport(first_of_four(value)?)
            }
            AttributeType::DONT_FRAGMENT => {
                exact::<0>(value)?;
                Attribute::DontFragment
            }
            AttributeType::RESERVATION_TOKEN => Attribute::ReservationToken(exact::<8>(value)?),
            AttributeType::ADDITIONAL_ADDRESS_FAMILY => {
                Attribute::AdditionalAddressFamily(AddressFamily::from_byte(first_of_four(value)?)?)
            }
            AttributeType::ADDRESS_ERROR_CODE => {
                let family = AddressFamily::from_byte(*value.first().ok_or(invalid)?)?;
                Attribute::AddressErrorCode {
                    family,
                    error: error_code(value)?,
                }
            }
            AttributeType::ICMP => {
                let v = exact::<8>(value)?;
                Attribute::Icmp {
                    icmp_type: v[2],
                    code: v[3],
                    data: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                }
            }
            AttributeType::PRIORITY => Attribute::Priority(u32_value(value)?),
            AttributeType::USE_CANDIDATE => {
                exact::<0>(value)?;
                Attribute::UseCandidate
            }
            AttributeType::ICE_CONTROLLED => Attribute::IceControlled(u64_value(value)?),
            AttributeType::ICE_CONTROLLING => Attribute::IceControlling(u64_value(value)?),
            _ => Attribute::Unknown { typ, value },
        })
    }

    /// The attribute's type.
    pub fn attribute_type(&self) -> AttributeType {
        match self {
            Attribute::MappedAddress(_) => AttributeType::MAPPED_ADDRESS,
            Attribute::XorMappedAddress(_) => AttributeType::XOR_MAPPED_ADDRESS,
            Attribute::Username(_) => AttributeType::USERNAME,
            Attribute::Userhash(_) => AttributeType::USERHASH,
            Attribute::Realm(_) => AttributeType::REALM,
            Attribute::Nonce(_) => AttributeType::NONCE,
            Attribute::PasswordAlgorithm(_) => AttributeType::PASSWORD_ALGORITHM,
            Attribute::PasswordAlgorithms(_) => AttributeType::PASSWORD_ALGORITHMS,
            Attribute::MessageIntegrity(_) => AttributeType::MESSAGE_INTEGRITY,
            Attribute::MessageIntegritySha256(_) => AttributeType::MESSAGE_INTEGRITY_SHA256,
            Attribute::Fingerprint(_) => AttributeType::FINGERPRINT,
            Attribute::ErrorCode(_) => AttributeType::ERROR_CODE,
            Attribute::UnknownAttributes(_) => AttributeType::UNKNOWN_ATTRIBUTES,
            Attribute::Software(_) => AttributeType::SOFTWARE,
            Attribute::AlternateServer(_) => AttributeType::ALTERNATE_SERVER,
            Attribute::AlternateDomain(_) => AttributeType::ALTERNATE_DOMAIN,
            Attribute::ChangeRequest { .. } => AttributeType::CHANGE_REQUEST,
            Attribute::ResponseOrigin(_) => AttributeType::RESPONSE_ORIGIN,
            Attribute::OtherAddress(_) => AttributeType::OTHER_ADDRESS,
            Attribute::ResponsePort(_) => AttributeType::RESPONSE_PORT,
            Attribute::Padding(_) => AttributeType::PADDING,
            Attribute::ChannelNumber(_) => AttributeType::CHANNEL_NUMBER,
            Attribute::Lifetime(_) => AttributeType::LIFETIME,
            Attribute::XorPeerAddress(_) => AttributeType::XOR_PEER_ADDRESS,
            Attribute::Data(_) => AttributeType::DATA,
            Attribute::XorRelayedAddress(_) => AttributeType::XOR_RELAYED_ADDRESS,
            Attribute::RequestedAddressFamily(_) => AttributeType::REQUESTED_ADDRESS_FAMILY,
            Attribute::EvenPort { .. } => AttributeType::EVEN_PORT,
            Attribute::RequestedTransport(_) => AttributeType::REQUESTED_TRANSPORT,
            Attribute::DontFragment => AttributeType::DONT_FRAGMENT,
            Attribute::ReservationToken(_) => AttributeType::RESERVATION_TOKEN,
            Attribute::AdditionalAddressFamily(_) => AttributeType::ADDITIONAL_ADDRESS_FAMILY,
            Attribute::AddressErrorCode { .. } => AttributeType::ADDRESS_ERROR_CODE,
            Attribute::Icmp { .. } => AttributeType::ICMP,
            Attribute::Priority(_) => AttributeType::PRIORITY,
            Attribute::UseCandidate => AttributeType::USE_CANDIDATE,
            Attribute::IceControlled(_) => AttributeType::ICE_CONTROLLED,
            Attribute::IceControlling(_) => AttributeType::ICE_CONTROLLING,
            Attribute::Unknown { typ, .. } => *typ,
        }
    }

    /// Appends the value (without header or padding) to `out`.
    pub(crate) fn encode_value(
        &self,
        tid: &TransactionId,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let typ = self.attribute_type();
        let invalid = |source| EncodeError::InvalidValue {
            attribute: typ,
            source,
        };
        let check_text = |s: &str| {
            let max = text_limit(typ);
            if s.len() > max {
                Err(EncodeError::ValueTooLong {
                    attribute: typ,
                    len: s.len(),
                    max,
                })
            } else {
                Ok(())
            }
        };
        let four = |first: u8, out: &mut Vec<u8>| out.extend_from_slice(&[first, 0, 0, 0]);
        match self {
            Attribute::MappedAddress(a)
            | Attribute::AlternateServer(a)
            | Attribute::ResponseOrigin(a)
            | Attribute::OtherAddress(a) => address::encode(*a, None, out),
            Attribute::XorMappedAddress(a)
            | Attribute::XorPeerAddress(a)
            | Attribute::XorRelayedAddress(a) => address::encode(*a, Some(tid), out),
            Attribute::Username(s)
            | Attribute::Realm(s)
            | Attribute::Nonce(s)
            | Attribute::Software(s)
            | Attribute::AlternateDomain(s) => {
                check_text(s)?;
                out.extend_from_slice(s.as_bytes());
            }
            Attribute::Userhash(h) => out.extend_from_slice(*h),
            Attribute::PasswordAlgorithm(a) => encode_password_algorithm(a, typ, out)?,
            Attribute::PasswordAlgorithms(list) => {
                for a in list {
                    encode_password_algorithm(a, typ, out)?;
                }
            }
            Attribute::MessageIntegrity(h) => out.extend_from_slice(*h),
            Attribute::MessageIntegritySha256(h) => {
                if !(16..=32).contains(&h.len()) || !h.len().is_multiple_of(4) {
                    return Err(invalid(AttributeError::InvalidLength { actual: h.len() }));
                }
                out.extend_from_slice(h);
            }
            Attribute::Fingerprint(v) | Attribute::Lifetime(v) | Attribute::Priority(v) => {
                out.extend_from_slice(&v.to_be_bytes());
            }
            Attribute::ErrorCode(e) => encode_error_code(e, 0, typ, out)?,
            Attribute::AddressErrorCode { family, error } => {
                encode_error_code(error, family.to_byte(), typ, out)?;
            }
            Attribute::UnknownAttributes(types) => {
                for t in types {
                    out.extend_from_slice(&t.0.to_be_bytes());
                }
            }
            Attribute::ChangeRequest {
                change_ip,
                change_port,
            } => {
                let flags = (u32::from(*change_ip) << 2) | (u32::from(*change_port) << 1);
                out.extend_from_slice(&flags.to_be_bytes());
            }
            Attribute::ResponsePort(port) => {
                out.extend_from_slice(&port.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
            Attribute::Padding(d) | Attribute::Data(d) => out.extend_from_slice(d),
            Attribute::ChannelNumber(channel) => {
                if !(0x4000..=0x4FFF).contains(channel) {
                    return Err(invalid(AttributeError::InvalidChannelNumber(*channel)));
                }
                out.extend_from_slice(&channel.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
            Attribute::RequestedAddressFamily(f) | Attribute::AdditionalAddressFamily(f) => {
                four(f.to_byte(), out);
            }
            Attribute::EvenPort { reserve_next } => out.push(if *reserve_next { 0x80 } else { 0 }),
            Attribute::RequestedTransport(protocol) => four(*protocol, out),
            Attribute::DontFragment | Attribute::UseCandidate => {}
            Attribute::ReservationToken(t) => out.extend_from_slice(*t),
            Attribute::Icmp {
                icmp_type,
                code,
                data,
            } => {
                out.extend_from_slice(&[0, 0, *icmp_type, *code]);
                out.extend_from_slice(&data.to_be_bytes());
            }
            Attribute::IceControlled(v) | Attribute::IceControlling(v) => {
                out.extend_from_slice(&v.to_be_bytes());
            }
            Attribute::Unknown { value, .. } => out.extend_from_slice(value),
        }
        Ok(())
    }
}

fn encode_password_algorithm(
    a: &PasswordAlgorithm<'_>,
    typ: AttributeType,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let len = u16::try_from(a.parameters.len()).map_err(|_| EncodeError::ValueTooLong {
        attribute: typ,
        len: a.parameters.len(),
        max: usize::from(u16::MAX),
    })?;
    out.extend_from_slice(&a.algorithm.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(a.parameters);
    out.resize(
        out.len() + padded(a.parameters.len()) - a.parameters.len(),
        0,
    );
    Ok(())
}

fn encode_error_code(
    e: &ErrorCode<'_>,
    first: u8,
    typ: AttributeType,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let class = e.code / 100;
    let number = e.code % 100;
    if !(3..=6).contains(&class) {
        return Err(EncodeError::InvalidValue {
            attribute: typ,
            source: AttributeError::InvalidErrorCode {
                class: u8::try_from(class).unwrap_or(u8::MAX),
                number: number as u8,
            },
        });
    }
    if e.reason.len() > MAX_TEXT {
        return Err(EncodeError::ValueTooLong {
            attribute: typ,
            len: e.reason.len(),
            max: MAX_TEXT,
        });
    }
    out.extend_from_slice(&[first, 0, class as u8, number as u8]);
    out.extend_from_slice(e.reason.as_bytes());
    Ok(())
}
