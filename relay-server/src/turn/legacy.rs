//! RFC 5766 channel numbers, for interoperability.
//!
//! RFC 8656 narrowed channel numbers to 0x4000–0x4FFF; RFC 5766 allowed
//! 0x4000–0x7FFF, and coturn's clients (`turnutils_uclient`) still pick from the
//! old range, as coturn's server accepts. Our codec follows RFC 8656 and refuses
//! to decode CHANNEL-NUMBER 0x5000–0x7FFF, so the relay handles that one case
//! here: it decodes a copy of the ChannelBind with the number replaced, and
//! checks MESSAGE-INTEGRITY (HMAC-SHA1) over the bytes as received. ChannelData
//! on those channels is framed by hand. The relay never *chooses* such numbers;
//! clients do, and the demultiplexing concern that made RFC 8656 narrow the range
//! (first bytes 0x50–0x7F look like QUIC) does not arise on the server's port.

use std::ops::RangeInclusive;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use tsunagi::stun::IntegrityKey;

/// Every channel number accepted from clients.
pub(crate) const CHANNELS: RangeInclusive<u16> = 0x4000..=0x7FFF;

const CHANNEL_NUMBER: u16 = 0x000C;
const MESSAGE_INTEGRITY: u16 = 0x0008;

/// A ChannelBind that only an RFC 5766 channel number kept from decoding.
#[derive(Debug)]
pub(crate) struct LegacyBind {
    /// The packet with CHANNEL-NUMBER rewritten to 0x4000 (decodes).
    pub copy: Vec<u8>,
    /// The channel number the client asked for.
    pub channel: u16,
    /// Offset of MESSAGE-INTEGRITY in the packet.
    integrity_at: usize,
}

/// Finds the attributes' offsets: `(type, offset of the attribute header)`.
fn attributes(packet: &[u8]) -> Option<Vec<(u16, usize)>> {
    let mut at = 20;
    let mut found = Vec::new();
    while at < packet.len() {
        let typ = u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]);
        let len = usize::from(u16::from_be_bytes([
            *packet.get(at + 2)?,
            *packet.get(at + 3)?,
        ]));
        found.push((typ, at));
        at = at.checked_add(4 + len.next_multiple_of(4))?;
    }
    Some(found)
}

impl LegacyBind {
    /// Recognizes a ChannelBind request (method 0x009, class request) carrying
    /// an RFC 5766-only channel number and MESSAGE-INTEGRITY.
    pub fn parse(packet: &[u8]) -> Option<LegacyBind> {
        if packet.get(..2)? != [0x00, 0x09] {
            return None;
        }
        let attributes = attributes(packet)?;
        let (_, number_at) = *attributes.iter().find(|(t, _)| *t == CHANNEL_NUMBER)?;
        let (_, integrity_at) = *attributes.iter().find(|(t, _)| *t == MESSAGE_INTEGRITY)?;
        let value = number_at + 4;
        let channel = u16::from_be_bytes([*packet.get(value)?, *packet.get(value + 1)?]);
        if !CHANNELS.contains(&channel) || channel <= 0x4FFF || number_at > integrity_at {
            return None;
        }
        let mut copy = packet.to_vec();
        copy.get_mut(value..value + 2)?
            .copy_from_slice(&0x4000u16.to_be_bytes());
        Some(LegacyBind {
            copy,
            channel,
            integrity_at,
        })
    }

    /// Checks the original packet's MESSAGE-INTEGRITY with `key` (RFC 8489
    /// §14.5: HMAC-SHA1 over the header, length adjusted, and what precedes it).
    pub fn verify(&self, original: &[u8], key: &IntegrityKey) -> bool {
        let at = self.integrity_at;
        let (Some(header), Some(body), Some(found)) = (
            original.get(..20),
            original.get(20..at),
            original.get(at + 4..at + 24),
        ) else {
            return false;
        };
        let Ok(length) = u16::try_from(at + 24 - 20) else {
            return false;
        };
        let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(key.as_bytes()) else {
            return false;
        };
        mac.update(header.get(..2).unwrap_or_default());
        mac.update(&length.to_be_bytes());
        mac.update(header.get(4..).unwrap_or_default());
        mac.update(body);
        mac.verify_slice(found).is_ok()
    }
}

/// ChannelData framing for any accepted channel (the codec refuses > 0x4FFF).
pub(crate) fn encode_channel_data(channel: u16, data: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(len) = u16::try_from(data.len()) else {
        return false;
    };
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    true
}

/// Parses a client's ChannelData on any accepted channel: `(channel, data)`.
/// Over UDP up to 3 bytes of padding may follow the data.
pub(crate) fn decode_channel_data(packet: &[u8]) -> Option<(u16, &[u8])> {
    let channel = u16::from_be_bytes([*packet.first()?, *packet.get(1)?]);
    let len = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    if !CHANNELS.contains(&channel) || packet.len() - 4 > len.next_multiple_of(4) {
        return None;
    }
    Some((channel, packet.get(4..4 + len)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_framing() {
        let mut out = Vec::new();
        assert!(encode_channel_data(0x7E32, b"abc", &mut out));
        assert_eq!(decode_channel_data(&out), Some((0x7E32, &b"abc"[..])));
        out.push(0);
        assert_eq!(
            decode_channel_data(&out),
            Some((0x7E32, &b"abc"[..])),
            "padding"
        );
        out.extend([0; 4]);
        assert_eq!(decode_channel_data(&out), None, "trailing bytes");
        assert_eq!(decode_channel_data(&[0x80, 0, 0, 0]), None);
        assert_eq!(decode_channel_data(&[0x40, 0, 0, 9, 1]), None, "truncated");
        assert_eq!(decode_channel_data(&[0x40]), None);
    }
}
