//! Sorting datagrams that arrive on the shared socket (RFC 7983 as updated by
//! RFC 9443): by source address first, then by first byte.
//!
//! Source first matters because TURN ChannelData (0x40..=0x4F) overlaps QUIC
//! short headers (0x40..=0x7F): only a datagram from a configured TURN server can
//! be ChannelData. Everything else starting with 0x40..=0x7F is QUIC.

use crate::stun::{PacketKind, classify};

/// Where a received datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// From a configured TURN server: a STUN response, a Data indication or
    /// ChannelData. Hand it to that server's TURN client.
    Turn,
    /// A STUN message (first byte 0..=3) from anyone else: path probes, ICE
    /// checks, NAT diagnosis.
    Stun,
    /// QUIC (first byte 64..=255, fixed bit set or not) from a non-TURN source.
    Quic,
    /// Nothing we speak (DTLS, ZRTP, reserved, empty): drop it.
    Drop,
}

/// Decides where one datagram goes. `from_turn_server` says whether its source
/// address is one of the TURN servers this socket uses.
///
/// ```
/// use tsunagi::socket::{Route, route};
/// assert_eq!(route(&[0x40, 0x00, 0x00, 0x00], true), Route::Turn);
/// assert_eq!(route(&[0x40, 0x00, 0x00, 0x00], false), Route::Quic);
/// assert_eq!(route(&[0x00, 0x01], false), Route::Stun);
/// ```
pub fn route(datagram: &[u8], from_turn_server: bool) -> Route {
    if from_turn_server {
        // A TURN server sends STUN (responses, Data indications) and ChannelData;
        // anything else from it is not ours to interpret.
        return match classify(datagram) {
            PacketKind::Stun | PacketKind::ChannelData => Route::Turn,
            _ => Route::Drop,
        };
    }
    match classify(datagram) {
        PacketKind::Stun => Route::Stun,
        // 64..=79 is QUIC when no TURN server sent it (RFC 9443 §3); 128..=191 is
        // QUIC with a greased fixed bit if a peer greases despite our config.
        PacketKind::ChannelData | PacketKind::Quic | PacketKind::Rtp => Route::Quic,
        PacketKind::Zrtp | PacketKind::Dtls | PacketKind::Unknown => Route::Drop,
    }
}

/// Whether a QUIC datagram has a short header (first bit 0): such packets carry
/// only the destination connection ID, which the path layer uses to recognise a
/// peer whose address changed.
pub fn is_quic_short_header(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| b & 0x80 == 0)
}

/// Whether a QUIC datagram is a long-header Initial packet (QUIC v1: type 0),
/// the only packet that may open a new connection.
pub fn is_quic_initial(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| b & 0xB0 == 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_range_is_turn_only_from_the_server() {
        for first in 0x40..=0x4Fu8 {
            assert_eq!(route(&[first, 0, 0, 0], true), Route::Turn);
            assert_eq!(route(&[first, 0, 0, 0], false), Route::Quic);
        }
    }

    #[test]
    fn quic_short_headers_above_channel_data_are_quic() {
        for first in 0x50..=0x7Fu8 {
            assert_eq!(route(&[first, 1, 2, 3], false), Route::Quic);
            assert!(is_quic_short_header(&[first]));
        }
    }

    #[test]
    fn stun_from_anyone_and_from_the_turn_server() {
        for first in 0..=3u8 {
            assert_eq!(route(&[first, 1], false), Route::Stun);
            assert_eq!(route(&[first, 1], true), Route::Turn);
        }
    }

    #[test]
    fn long_headers_and_greased_bits_are_quic() {
        for first in 0x80..=0xFFu8 {
            assert_eq!(route(&[first], false), Route::Quic);
            assert!(!is_quic_short_header(&[first]));
        }
        assert!(is_quic_initial(&[0xC3]));
        assert!(!is_quic_initial(&[0xE3])); // Handshake
        assert!(!is_quic_initial(&[0x43]));
    }

    #[test]
    fn everything_else_is_dropped() {
        assert_eq!(route(&[], false), Route::Drop);
        assert_eq!(route(&[], true), Route::Drop);
        assert_eq!(route(&[20], false), Route::Drop); // DTLS
        assert_eq!(route(&[0xC0], true), Route::Drop); // QUIC from a TURN server
        assert_eq!(route(&[7], false), Route::Drop);
    }
}
