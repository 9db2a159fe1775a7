//! Sorting datagrams that share one UDP socket by their first byte
//! (RFC 7983, updated by RFC 9443 for QUIC).

/// What a datagram is, judged by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// 0..=3: STUN (decode it with [`super::Message::decode`]).
    Stun,
    /// 16..=19: ZRTP.
    Zrtp,
    /// 20..=63: DTLS.
    Dtls,
    /// 64..=79: TURN ChannelData (decode it with [`super::ChannelData::decode`]).
    ChannelData,
    /// 80..=127 and 192..=255: QUIC with the fixed bit set (short and long headers).
    /// QUIC short-header packets can also start with 64..=79; a receiver that has
    /// no TURN channel bound from that source treats those as QUIC (RFC 9443 §3).
    Quic,
    /// 128..=191: RTP/RTCP, or QUIC with a greased fixed bit (RFC 9287) — which is
    /// why our QUIC endpoints disable greasing.
    Rtp,
    /// 4..=15: reserved, drop it.
    Unknown,
}

/// Classifies a datagram by its first byte; an empty datagram is `Unknown`.
///
/// ```
/// use tsunagi::stun::{PacketKind, classify};
/// assert_eq!(classify(&[0x00, 0x01]), PacketKind::Stun);
/// assert_eq!(classify(&[0x40, 0x00]), PacketKind::ChannelData);
/// assert_eq!(classify(&[0xC3]), PacketKind::Quic);
/// ```
pub fn classify(datagram: &[u8]) -> PacketKind {
    match datagram.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(16..=19) => PacketKind::Zrtp,
        Some(20..=63) => PacketKind::Dtls,
        Some(64..=79) => PacketKind::ChannelData,
        Some(80..=127 | 192..=255) => PacketKind::Quic,
        Some(128..=191) => PacketKind::Rtp,
        Some(4..=15) | None => PacketKind::Unknown,
    }
}
