//! Framing of data towards clients, written in place into the send buffer
//! ([`crate::Datagrams`]): a Data indication's header and XOR-PEER-ADDRESS, then
//! the payload (copied once), then padding. The SDK's `MessageBuilder` would
//! build each indication in its own `Vec`; the tests check the bytes are the same.
//!
//! And the other way, [`parse_send_indication`]: a client's Send indication of
//! the usual shape read in place, without the codec's attribute list (an
//! allocation per message); anything unusual is left to the codec.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// Method DATA (0x007) in class indication.
const DATA_INDICATION: [u8; 2] = [0x00, 0x17];
const XOR_PEER_ADDRESS: [u8; 2] = [0x00, 0x12];
const DATA: [u8; 2] = [0x00, 0x13];
/// Method SEND (0x006) in class indication.
const SEND_INDICATION: [u8; 2] = [0x00, 0x16];
const FINGERPRINT: [u8; 2] = [0x80, 0x28];

/// What [`parse_send_indication`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendIndication<'a> {
    /// Well-formed: relay `data` to `peer` (if allowed).
    Relay {
        /// XOR-PEER-ADDRESS, decoded.
        peer: SocketAddr,
        /// DATA.
        data: &'a [u8],
    },
    /// Well-formed but its FINGERPRINT is wrong: not STUN, drop silently.
    BadFingerprint,
}

/// Reads a Send indication made of exactly one XOR-PEER-ADDRESS and one DATA
/// (either order) and optionally a final FINGERPRINT — what every client
/// sends. `None` for anything else (other or repeated attributes, bad
/// lengths, another message type): the caller then uses the codec, so the
/// outcome for every input is the codec's (the tests compare them).
pub(crate) fn parse_send_indication(packet: &[u8]) -> Option<SendIndication<'_>> {
    let header = packet.get(..20)?;
    if header.get(..2)? != SEND_INDICATION || header.get(4..8)? != MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([*header.get(2)?, *header.get(3)?]));
    if length % 4 != 0 || length != packet.len() - 20 {
        return None;
    }
    let tid = header.get(8..20)?;
    let (mut peer, mut data, mut fingerprint_at) = (None, None, None);
    let mut at = 20;
    while at < packet.len() {
        if fingerprint_at.is_some() {
            return None;
        }
        let typ = [*packet.get(at)?, *packet.get(at + 1)?];
        let len = usize::from(u16::from_be_bytes([
            *packet.get(at + 2)?,
            *packet.get(at + 3)?,
        ]));
        let value = packet.get(at + 4..at + 4 + len)?;
        let next = at + 4 + len.next_multiple_of(4);
        if next > packet.len() {
            return None;
        }
        match typ {
            XOR_PEER_ADDRESS if peer.is_none() => peer = Some(xor_peer_address(value, tid)?),
            DATA if data.is_none() => data = Some(value),
            FINGERPRINT if len == 4 => fingerprint_at = Some(at),
            _ => return None,
        }
        at = next;
    }
    let (peer, data) = (peer?, data?);
    if let Some(at) = fingerprint_at {
        let found = u32::from_be_bytes(packet.get(at + 4..at + 8)?.try_into().ok()?);
        if tsunagi::stun::fingerprint(packet.get(..at)?) != found {
            return Some(SendIndication::BadFingerprint);
        }
    }
    Some(SendIndication::Relay { peer, data })
}

/// An XOR-PEER-ADDRESS value as the codec accepts it (family 1 with 8 bytes,
/// family 2 with 20; the first byte is ignored), decoded.
fn xor_peer_address(value: &[u8], tid: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?])
        ^ u16::from_be_bytes([MAGIC_COOKIE[0], MAGIC_COOKIE[1]]);
    let ip = match (value.get(1)?, value.len()) {
        (0x01, 8) => {
            let mut octets = [0u8; 4];
            for ((o, v), k) in octets.iter_mut().zip(value.get(4..)?).zip(MAGIC_COOKIE) {
                *o = v ^ k;
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        (0x02, 20) => {
            let mut octets = [0u8; 16];
            let key = MAGIC_COOKIE.iter().chain(tid);
            for ((o, v), k) in octets.iter_mut().zip(value.get(4..)?).zip(key) {
                *o = v ^ k;
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Appends a Data indication (RFC 8656 §11.4) with transaction ID `tid`,
/// XOR-PEER-ADDRESS `peer` and DATA `data` to `out`. Returns `false` (having
/// appended nothing) if it would exceed STUN's 64 KiB message length.
pub(crate) fn encode_data_indication(
    tid: &[u8; 12],
    peer: SocketAddr,
    data: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    let address_len: usize = if peer.is_ipv4() { 8 } else { 20 };
    let padding = data.len().next_multiple_of(4) - data.len();
    let (Ok(body_len), Ok(data_len)) = (
        u16::try_from(4 + address_len + 4 + data.len() + padding),
        u16::try_from(data.len()),
    ) else {
        return false;
    };
    out.reserve(20 + usize::from(body_len));
    out.extend_from_slice(&DATA_INDICATION);
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE);
    out.extend_from_slice(tid);
    out.extend_from_slice(&XOR_PEER_ADDRESS);
    out.extend_from_slice(&(address_len as u16).to_be_bytes());
    let port = peer.port() ^ u16::from_be_bytes([MAGIC_COOKIE[0], MAGIC_COOKIE[1]]);
    match peer.ip() {
        IpAddr::V4(ip) => {
            out.extend_from_slice(&[0, 0x01]);
            out.extend_from_slice(&port.to_be_bytes());
            out.extend(ip.octets().iter().zip(MAGIC_COOKIE).map(|(a, k)| a ^ k));
        }
        IpAddr::V6(ip) => {
            out.extend_from_slice(&[0, 0x02]);
            out.extend_from_slice(&port.to_be_bytes());
            let key = MAGIC_COOKIE.iter().chain(tid);
            out.extend(ip.octets().iter().zip(key).map(|(a, k)| a ^ k));
        }
    }
    out.extend_from_slice(&DATA);
    out.extend_from_slice(&data_len.to_be_bytes());
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0, padding));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsunagi::stun::{Attribute, Class, Message, MessageBuilder, Method, TransactionId};

    fn reference(tid: [u8; 12], peer: SocketAddr, data: &[u8]) -> Vec<u8> {
        let mut b = MessageBuilder::new(Class::Indication, Method::DATA, TransactionId::new(tid));
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        b.add(&Attribute::Data(data)).unwrap();
        b.finish()
    }

    #[test]
    fn data_indication_matches_the_codec_byte_for_byte() {
        let tid = [0x5A, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xFF];
        let peers: [SocketAddr; 3] = [
            "192.0.2.7:65535".parse().unwrap(),
            "[2001:db8::1:2]:1".parse().unwrap(),
            "[::ffff:192.0.2.1]:3478".parse().unwrap(),
        ];
        for peer in peers {
            for len in [0, 1, 2, 3, 4, 5, 100, 1000, 1203] {
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut out = b"prefix".to_vec();
                assert!(encode_data_indication(&tid, peer, &data, &mut out));
                assert_eq!(&out[..6], b"prefix", "appends, keeps what was there");
                assert_eq!(out[6..], reference(tid, peer, &data), "{peer} {len}");
                let m = Message::decode(&out[6..]).unwrap();
                assert_eq!((m.class(), m.method()), (Class::Indication, Method::DATA));
            }
        }
    }

    /// The codec's verdict on a Send indication, as the relay acts on it:
    /// `Some(Some((peer, data)))` relay, `Some(None)` drop (bad FINGERPRINT or
    /// missing / unknown attributes), `None` undecodable.
    fn by_codec(packet: &[u8]) -> Option<Option<(SocketAddr, Vec<u8>)>> {
        let m = Message::decode(packet).ok()?;
        if m.has_fingerprint() && m.verify_fingerprint().is_err() {
            return Some(None);
        }
        let (mut peer, mut data) = (None, None);
        for a in m.attributes() {
            match a {
                Attribute::XorPeerAddress(p) => peer = Some(*p),
                Attribute::Data(d) => data = Some(d.to_vec()),
                _ => {}
            }
        }
        if !m.unknown_comprehension_required().is_empty() {
            return Some(None);
        }
        Some(peer.zip(data))
    }

    fn send_indication(tid: [u8; 12], peer: SocketAddr, data: &[u8], fp: bool) -> Vec<u8> {
        let mut b = MessageBuilder::new(Class::Indication, Method::SEND, TransactionId::new(tid));
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        b.add(&Attribute::Data(data)).unwrap();
        if fp {
            b.finish_with_fingerprint()
        } else {
            b.finish()
        }
    }

    #[test]
    fn send_indication_fast_path_reads_the_usual_shape() {
        let peers: [SocketAddr; 2] = [
            "192.0.2.7:65535".parse().unwrap(),
            "[2001:db8::1:2]:1".parse().unwrap(),
        ];
        for peer in peers {
            for len in [0, 1, 3, 4, 100, 1000] {
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                for fp in [false, true] {
                    let packet = send_indication([9; 12], peer, &data, fp);
                    assert_eq!(
                        parse_send_indication(&packet),
                        Some(SendIndication::Relay { peer, data: &data }),
                        "{peer} {len} {fp}"
                    );
                }
            }
        }
        let mut packet = send_indication([9; 12], peers[0], b"x", true);
        let last = packet.len() - 1;
        packet[last] ^= 1;
        assert_eq!(
            parse_send_indication(&packet),
            Some(SendIndication::BadFingerprint)
        );
        // Other shapes are left to the codec.
        let mut b =
            MessageBuilder::new(Class::Indication, Method::SEND, TransactionId::new([1; 12]));
        b.add(&Attribute::Software("x")).unwrap();
        b.add(&Attribute::XorPeerAddress(peers[0])).unwrap();
        b.add(&Attribute::Data(b"y")).unwrap();
        assert_eq!(parse_send_indication(&b.finish()), None);
        assert_eq!(
            parse_send_indication(&reference([1; 12], peers[0], b"y")),
            None,
            "Data indication"
        );
    }

    /// For every input the fast path accepts, it does what the codec path
    /// does: well-formed indications of all shapes and sizes, each also with
    /// every single byte flipped, truncated and extended.
    #[test]
    fn send_indication_fast_path_agrees_with_the_codec() {
        let peers: [SocketAddr; 3] = [
            "198.51.100.9:3478".parse().unwrap(),
            "[2001:db8::7]:40000".parse().unwrap(),
            "[::ffff:192.0.2.1]:9".parse().unwrap(),
        ];
        let mut checked = 0;
        let mut fast = 0;
        let mut compare = |packet: &[u8]| {
            checked += 1;
            match parse_send_indication(packet) {
                None => {}
                Some(SendIndication::BadFingerprint) => {
                    fast += 1;
                    assert_eq!(by_codec(packet), Some(None), "{packet:02x?}");
                }
                Some(SendIndication::Relay { peer, data }) => {
                    fast += 1;
                    assert_eq!(
                        by_codec(packet),
                        Some(Some((peer, data.to_vec()))),
                        "{packet:02x?}"
                    );
                }
            }
        };
        for (i, peer) in peers.into_iter().enumerate() {
            for len in [0, 1, 2, 5, 8, 33] {
                let data: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
                for fp in [false, true] {
                    let good = send_indication([i as u8; 12], peer, &data, fp);
                    compare(&good);
                    for at in 0..good.len() {
                        for bit in [0x01, 0x02, 0x10, 0x80] {
                            let mut bad = good.clone();
                            bad[at] ^= bit;
                            compare(&bad);
                        }
                        compare(&good[..at]);
                    }
                    let mut longer = good.clone();
                    longer.extend([0, 0, 0, 0]);
                    compare(&longer);
                }
            }
        }
        assert!(
            fast > checked / 10,
            "the fast path took {fast} of {checked}"
        );
    }

    #[test]
    fn data_indication_too_large_appends_nothing() {
        let peer: SocketAddr = "192.0.2.7:9".parse().unwrap();
        let mut out = vec![1, 2, 3];
        assert!(!encode_data_indication(
            &[0; 12],
            peer,
            &vec![0; 65_535],
            &mut out
        ));
        assert_eq!(out, [1, 2, 3]);
        let fits = 65_516; // 16 bytes of attribute headers and address, no padding
        assert!(encode_data_indication(
            &[0; 12],
            peer,
            &vec![0; fits],
            &mut out
        ));
    }
}
