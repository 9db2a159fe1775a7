//! Framing of data towards clients, written in place into the send buffer
//! ([`crate::Datagrams`]): a Data indication's header and XOR-PEER-ADDRESS, then
//! the payload (copied once), then padding. The SDK's `MessageBuilder` would
//! build each indication in its own `Vec`; the tests check the bytes are the same.

use std::net::{IpAddr, SocketAddr};

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// Method DATA (0x007) in class indication.
const DATA_INDICATION: [u8; 2] = [0x00, 0x17];
const XOR_PEER_ADDRESS: [u8; 2] = [0x00, 0x12];
const DATA: [u8; 2] = [0x00, 0x13];

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
