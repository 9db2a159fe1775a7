//! Property tests: encode→decode is the identity, and no input makes the decoder
//! panic. `sdk/fuzz` runs the same decoders under libFuzzer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

fn family() -> impl Strategy<Value = AddressFamily> {
    prop_oneof![Just(AddressFamily::V4), Just(AddressFamily::V6)]
}

/// Owned inputs for one attribute; `attribute()` borrows them.
#[derive(Debug, Clone)]
struct Spec {
    kind: u8,
    addr: SocketAddr,
    text: String,
    bytes: Vec<u8>,
    n32: u32,
    n64: u64,
    flag: bool,
    types: Vec<u16>,
    family: AddressFamily,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..38,
        socket_addr(),
        "[a-zA-Z0-9 :./\u{3000}-\u{30ff}]{0,40}",
        vec(any::<u8>(), 0..64),
        any::<u32>(),
        any::<u64>(),
        any::<bool>(),
        vec(any::<u16>(), 0..6),
        family(),
    )
        .prop_map(
            |(kind, addr, text, bytes, n32, n64, flag, types, family)| Spec {
                kind,
                addr,
                text,
                bytes,
                n32,
                n64,
                flag,
                types,
                family,
            },
        )
}

impl Spec {
    fn attribute(&self) -> Attribute<'_> {
        let code = 300 + (self.n32 % 400) as u16;
        let b32: &[u8; 32] = &[7; 32];
        match self.kind {
            0 => Attribute::MappedAddress(self.addr),
            1 => Attribute::XorMappedAddress(self.addr),
            2 => Attribute::Username(&self.text),
            3 => Attribute::Userhash(b32),
            4 => Attribute::Realm(&self.text),
            5 => Attribute::Nonce(&self.text),
            6 => Attribute::PasswordAlgorithm(PasswordAlgorithm {
                algorithm: self.n32 as u16,
                parameters: &self.bytes,
            }),
            7 => Attribute::PasswordAlgorithms(vec![
                PasswordAlgorithm::MD5,
                PasswordAlgorithm {
                    algorithm: 9,
                    parameters: &self.bytes,
                },
            ]),
            8 => Attribute::ErrorCode(ErrorCode::new(code, &self.text)),
            9 => {
                Attribute::UnknownAttributes(self.types.iter().map(|t| AttributeType(*t)).collect())
            }
            10 => Attribute::Software(&self.text),
            11 => Attribute::AlternateServer(self.addr),
            12 => Attribute::AlternateDomain(&self.text),
            13 => Attribute::ChangeRequest {
                change_ip: self.flag,
                change_port: self.n32.is_multiple_of(2),
            },
            14 => Attribute::ResponseOrigin(self.addr),
            15 => Attribute::OtherAddress(self.addr),
            16 => Attribute::ResponsePort(self.n32 as u16),
            17 => Attribute::Padding(&self.bytes),
            18 => Attribute::ChannelNumber(0x4000 + (self.n32 % 0x1000) as u16),
            19 => Attribute::Lifetime(self.n32),
            20 => Attribute::XorPeerAddress(self.addr),
            21 => Attribute::Data(&self.bytes),
            22 => Attribute::XorRelayedAddress(self.addr),
            23 => Attribute::RequestedAddressFamily(self.family),
            24 => Attribute::EvenPort {
                reserve_next: self.flag,
            },
            25 => Attribute::RequestedTransport(self.n32 as u8),
            26 => Attribute::DontFragment,
            27 => Attribute::ReservationToken(&[1, 2, 3, 4, 5, 6, 7, 8]),
            28 => Attribute::AdditionalAddressFamily(self.family),
            29 => Attribute::AddressErrorCode {
                family: self.family,
                error: ErrorCode::new(code, &self.text),
            },
            30 => Attribute::Icmp {
                icmp_type: self.n32 as u8,
                code: (self.n32 >> 8) as u8,
                data: self.n32,
            },
            31 => Attribute::Priority(self.n32),
            32 => Attribute::UseCandidate,
            33 => Attribute::IceControlled(self.n64),
            34 => Attribute::IceControlling(self.n64),
            35 => Attribute::Unknown {
                typ: AttributeType(0xC000 | self.n32 as u16),
                value: &self.bytes,
            },
            36 => Attribute::Unknown {
                typ: AttributeType(0x7F00 | (self.n32 as u16 & 0xFF)),
                value: &self.bytes,
            },
            _ => Attribute::MessageIntegritySha256(&b32[..16 + 4 * (self.n32 % 5) as usize]),
        }
    }
}

fn class() -> impl Strategy<Value = Class> {
    prop_oneof![
        Just(Class::Request),
        Just(Class::Indication),
        Just(Class::SuccessResponse),
        Just(Class::ErrorResponse),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_is_identity(
        class in class(),
        method in 0u16..0x1000,
        tid in any::<[u8; 12]>(),
        specs in vec(spec(), 0..8),
        integrity in any::<bool>(),
        fingerprint in any::<bool>(),
    ) {
        let method = Method::new(method).unwrap();
        let tid = TransactionId::new(tid);
        // MESSAGE-INTEGRITY-SHA256 given as a plain attribute would hide those after
        // it, so keep it last among the plain ones.
        let mut attrs: Vec<Attribute<'_>> = specs.iter().map(Spec::attribute).collect();
        attrs.sort_by_key(|a| matches!(a, Attribute::MessageIntegritySha256(_)));
        if let Some(i) = attrs.iter().position(|a| matches!(a, Attribute::MessageIntegritySha256(_))) {
            attrs.truncate(i + 1);
        }
        let mut b = MessageBuilder::new(class, method, tid);
        for a in &attrs {
            b.add(a).unwrap();
        }
        let key = IntegrityKey::short_term("pw");
        let has_sha256 = attrs.iter().any(|a| matches!(a, Attribute::MessageIntegritySha256(_)));
        if integrity && !has_sha256 {
            b.add_integrity(&key);
        }
        let bytes = if fingerprint { b.finish_with_fingerprint() } else { b.finish() };
        let m = Message::decode(&bytes).unwrap();
        prop_assert_eq!(m.class(), class);
        prop_assert_eq!(m.method(), method);
        prop_assert_eq!(m.transaction_id(), tid);
        let decoded = m.attributes();
        prop_assert_eq!(&decoded[..attrs.len()], &attrs[..]);
        if integrity && !has_sha256 {
            prop_assert!(m.verify_integrity(&key).is_ok());
        }
        if fingerprint {
            prop_assert!(m.verify_fingerprint().is_ok());
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..256)) {
        let _ = Message::decode(&bytes);
        let _ = ChannelData::decode(&bytes);
        let _ = classify(&bytes);
    }

    #[test]
    fn decoding_stun_shaped_bytes_never_panics(
        msg_type in 0u16..0x4000,
        body in vec(any::<u8>(), 0..64).prop_map(|mut v| { v.truncate(v.len() / 4 * 4); v }),
        tid in any::<[u8; 12]>(),
    ) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&msg_type.to_be_bytes());
        bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        bytes.extend_from_slice(&tid);
        bytes.extend_from_slice(&body);
        if let Ok(m) = Message::decode(&bytes) {
            let _ = m.verify_fingerprint();
            let _ = m.verify_integrity(&IntegrityKey::short_term("x"));
            let _ = m.verify_integrity_sha256(&IntegrityKey::short_term("x"));
        }
    }

    #[test]
    fn channel_data_round_trip(channel in 0x4000u16..=0x4FFF, data in vec(any::<u8>(), 0..100), pad in any::<bool>()) {
        let cd = ChannelData { channel, data: &data };
        let mut out = Vec::new();
        cd.encode(pad, &mut out).unwrap();
        prop_assert_eq!(ChannelData::decode(&out), Ok(cd));
    }
}
