//! RFC 5769 test vectors and hand-written edge cases.

use std::net::SocketAddr;

use super::*;

/// Parses whitespace-separated hex ("00 01 0a") into bytes.
fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

pub(super) const SHORT_TERM_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

/// RFC 5769 §2.1: sample request with short-term credentials.
pub(super) fn sample_request() -> Vec<u8> {
    hex("00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
         00 24 00 04 6e 00 01 ff
         80 29 00 08 93 2f f9 b1 51 26 3b 36
         00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
         00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
         80 28 00 04 e5 7a 3b cf")
}

/// RFC 5769 §2.2: sample IPv4 response.
pub(super) fn sample_ipv4_response() -> Vec<u8> {
    hex("01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
         00 20 00 08 00 01 a1 47 e1 12 a6 43
         00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
         80 28 00 04 c0 7d 4c 96")
}

/// RFC 5769 §2.3: sample IPv6 response.
pub(super) fn sample_ipv6_response() -> Vec<u8> {
    hex("01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
         00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
         00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
         80 28 00 04 c8 fb 0b 4c")
}

/// RFC 5769 §2.4: sample request with long-term credentials.
pub(super) fn sample_long_term_request() -> Vec<u8> {
    hex("00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
         00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
         00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46
                     53 54 76 79 36 34 73 41
         00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
         00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66")
}

const VECTOR_TID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];
/// The long-term request's user name, "マトリックス" (already SASLprep'd).
const LONG_TERM_USER: &str = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
/// The password "The<U+00AD>M<U+00AA>tr<U+2168>" after SASLprep.
const LONG_TERM_PASSWORD: &str = "TheMatrIX";

/// Builds a message the way the vectors were built: space padding, integrity, fingerprint.
fn rebuild(class: Class, tid: [u8; 12], attrs: &[Attribute<'_>], pad: u8, fp: bool) -> Vec<u8> {
    let mut b = MessageBuilder::new(class, Method::BINDING, TransactionId::new(tid));
    b.padding_byte(pad);
    for a in attrs {
        b.add(a).unwrap();
    }
    if pad == 0x20 {
        b.add_integrity(&IntegrityKey::short_term(SHORT_TERM_PASSWORD));
    } else {
        let key = IntegrityKey::long_term_md5(LONG_TERM_USER, "example.org", LONG_TERM_PASSWORD);
        b.add_integrity(&key);
    }
    if fp {
        b.finish_with_fingerprint()
    } else {
        b.finish()
    }
}

#[test]
fn rfc5769_request_decodes_and_verifies() {
    let bytes = sample_request();
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(m.class(), Class::Request);
    assert_eq!(m.method(), Method::BINDING);
    assert_eq!(m.transaction_id(), TransactionId::new(VECTOR_TID));
    assert_eq!(
        m.get(AttributeType::SOFTWARE),
        Some(&Attribute::Software("STUN test client"))
    );
    assert_eq!(
        m.get(AttributeType::PRIORITY),
        Some(&Attribute::Priority(0x6e00_01ff))
    );
    assert_eq!(
        m.get(AttributeType::ICE_CONTROLLED),
        Some(&Attribute::IceControlled(0x932f_f9b1_5126_3b36))
    );
    assert_eq!(
        m.get(AttributeType::USERNAME),
        Some(&Attribute::Username("evtj:h6vY"))
    );
    m.verify_integrity(&IntegrityKey::short_term(SHORT_TERM_PASSWORD))
        .unwrap();
    m.verify_fingerprint().unwrap();
    assert_eq!(
        m.verify_integrity(&IntegrityKey::short_term("wrong")),
        Err(IntegrityError::Mismatch(AttributeType::MESSAGE_INTEGRITY))
    );
}

#[test]
fn rfc5769_request_encodes_identically() {
    let attrs = [
        Attribute::Software("STUN test client"),
        Attribute::Priority(0x6e00_01ff),
        Attribute::IceControlled(0x932f_f9b1_5126_3b36),
        Attribute::Username("evtj:h6vY"),
    ];
    assert_eq!(
        rebuild(Class::Request, VECTOR_TID, &attrs, 0x20, true),
        sample_request()
    );
}

/// An RFC 5769 response vector (short-term credentials): it maps to `expected`,
/// its integrity and fingerprint verify, and it is rebuilt byte for byte from its
/// attributes.
fn response_vector_both_ways(bytes: &[u8], expected: SocketAddr) -> Message<'_> {
    let m = Message::decode(bytes).unwrap();
    assert_eq!(m.xor_mapped_address(), Some(expected));
    m.verify_integrity(&IntegrityKey::short_term(SHORT_TERM_PASSWORD))
        .unwrap();
    m.verify_fingerprint().unwrap();
    let attrs = [
        Attribute::Software("test vector"),
        Attribute::XorMappedAddress(expected),
    ];
    assert_eq!(
        rebuild(Class::SuccessResponse, VECTOR_TID, &attrs, 0x20, true),
        bytes
    );
    m
}

#[test]
fn rfc5769_ipv4_response_both_ways() {
    let bytes = sample_ipv4_response();
    let expected: SocketAddr = "192.0.2.1:32853".parse().unwrap();
    let m = response_vector_both_ways(&bytes, expected);
    assert_eq!(m.class(), Class::SuccessResponse);
    assert_eq!(
        m.get(AttributeType::SOFTWARE),
        Some(&Attribute::Software("test vector"))
    );
}

#[test]
fn rfc5769_ipv6_response_both_ways() {
    let bytes = sample_ipv6_response();
    let expected: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
        .parse()
        .unwrap();
    response_vector_both_ways(&bytes, expected);
}

#[test]
fn rfc5769_long_term_request_both_ways() {
    let bytes = sample_long_term_request();
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(
        m.get(AttributeType::USERNAME),
        Some(&Attribute::Username(LONG_TERM_USER))
    );
    let nonce = "f//499k954d6OL34oL9FSTvy64sA";
    assert_eq!(m.get(AttributeType::NONCE), Some(&Attribute::Nonce(nonce)));
    assert_eq!(
        m.get(AttributeType::REALM),
        Some(&Attribute::Realm("example.org"))
    );
    let key = IntegrityKey::long_term_md5(LONG_TERM_USER, "example.org", LONG_TERM_PASSWORD);
    m.verify_integrity(&key).unwrap();
    assert!(!m.has_fingerprint());
    assert_eq!(
        m.verify_fingerprint(),
        Err(IntegrityError::FingerprintMissing)
    );
    let tid = [
        0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e,
    ];
    let attrs = [
        Attribute::Username(LONG_TERM_USER),
        Attribute::Nonce(nonce),
        Attribute::Realm("example.org"),
    ];
    assert_eq!(rebuild(Class::Request, tid, &attrs, 0, false), bytes);
}

#[test]
fn tampering_breaks_integrity_and_fingerprint() {
    for vector in [
        sample_request(),
        sample_ipv4_response(),
        sample_ipv6_response(),
    ] {
        let mut bytes = vector.clone();
        bytes[27] ^= 0x01; // inside the first attribute's value
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(
            m.verify_fingerprint(),
            Err(IntegrityError::FingerprintMismatch)
        );
        assert!(
            m.verify_integrity(&IntegrityKey::short_term(SHORT_TERM_PASSWORD))
                .is_err()
        );
    }
}

#[test]
fn integrity_sha256_round_trip_and_order() {
    let key = IntegrityKey::long_term_sha256("user", "realm", "pass");
    let mut b = MessageBuilder::new(
        Class::Request,
        Method::ALLOCATE,
        TransactionId::new([3; 12]),
    );
    b.add(&Attribute::RequestedTransport(17)).unwrap();
    b.add_integrity(&key).add_integrity_sha256(&key);
    let bytes = b.finish_with_fingerprint();
    let m = Message::decode(&bytes).unwrap();
    m.verify_integrity(&key).unwrap();
    m.verify_integrity_sha256(&key).unwrap();
    m.verify_fingerprint().unwrap();
    let other = IntegrityKey::long_term_sha256("user", "realm", "other");
    assert!(m.verify_integrity_sha256(&other).is_err());
}

#[test]
fn attributes_after_integrity_are_ignored() {
    let key = IntegrityKey::short_term("k");
    let mut b = MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([4; 12]));
    b.add_integrity(&key);
    b.add(&Attribute::Software("ignored")).unwrap();
    b.add(&Attribute::Unknown {
        typ: AttributeType(0x7777),
        value: b"x",
    })
    .unwrap();
    let bytes = b.finish();
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(m.get(AttributeType::SOFTWARE), None);
    assert!(m.unknown_comprehension_required().is_empty());
    // The length field covered the ignored attributes when the HMAC was taken?
    // No: it covered only up to MESSAGE-INTEGRITY, so verification still holds.
    m.verify_integrity(&key).unwrap();
}

#[test]
fn unknown_attributes_are_kept_and_required_ones_reported() {
    let mut b = MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([5; 12]));
    b.add(&Attribute::Unknown {
        typ: AttributeType(0x7FFF),
        value: b"abc",
    })
    .unwrap();
    b.add(&Attribute::Unknown {
        typ: AttributeType(0xC001),
        value: b"",
    })
    .unwrap();
    let bytes = b.finish();
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(m.unknown_comprehension_required(), &[AttributeType(0x7FFF)]);
    assert_eq!(m.attributes().len(), 2);
}

#[test]
fn header_errors_are_precise() {
    assert_eq!(
        Message::decode(&[0; 4]),
        Err(DecodeError::TooShort { len: 4 })
    );
    let mut bytes = sample_request();
    bytes[0] = 0x40;
    assert_eq!(Message::decode(&bytes), Err(DecodeError::NotStun));
    let mut bytes = sample_request();
    bytes[4] = 0;
    assert!(matches!(
        Message::decode(&bytes),
        Err(DecodeError::BadMagicCookie { .. })
    ));
    let mut bytes = sample_request();
    bytes.push(0);
    assert!(matches!(
        Message::decode(&bytes),
        Err(DecodeError::LengthMismatch { .. })
    ));
    let mut bytes = sample_request();
    bytes[3] = 0x57;
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::UnalignedLength { length: 0x57 })
    );
}

#[test]
fn attribute_errors_are_precise() {
    // XOR-MAPPED-ADDRESS with family 3.
    let mut b = MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([6; 12]));
    b.add(&Attribute::Unknown {
        typ: AttributeType::XOR_MAPPED_ADDRESS,
        value: &[0, 3, 0, 0, 1, 2, 3, 4],
    })
    .unwrap();
    let bytes = b.finish();
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::InvalidAttribute {
            attribute: AttributeType::XOR_MAPPED_ADDRESS,
            source: AttributeError::UnknownAddressFamily(3),
        })
    );
    // ERROR-CODE 700.
    let mut b = MessageBuilder::new(
        Class::ErrorResponse,
        Method::BINDING,
        TransactionId::new([6; 12]),
    );
    b.add(&Attribute::Unknown {
        typ: AttributeType::ERROR_CODE,
        value: &[0, 0, 7, 0],
    })
    .unwrap();
    let bytes = b.finish();
    assert!(matches!(
        Message::decode(&bytes),
        Err(DecodeError::InvalidAttribute {
            source: AttributeError::InvalidErrorCode { .. },
            ..
        })
    ));
}

#[test]
fn fingerprint_must_be_last() {
    let b = MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([8; 12]));
    let mut bytes = b.finish_with_fingerprint();
    bytes.extend_from_slice(&[0x80, 0x22, 0, 0]);
    bytes[3] += 4;
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::AttributeAfterFingerprint)
    );
}

#[test]
fn encoder_rejects_bad_values() {
    let mut b = MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([9; 12]));
    let long = "x".repeat(600);
    assert!(matches!(
        b.add(&Attribute::Username(&long)),
        Err(EncodeError::ValueTooLong { .. })
    ));
    assert!(b.add(&Attribute::ChannelNumber(0x3FFF)).is_err());
    assert!(
        b.add(&Attribute::ErrorCode(ErrorCode::new(200, "OK")))
            .is_err()
    );
    let big = vec![0u8; 70_000];
    assert!(b.add(&Attribute::Data(&big)).is_err());
    let nearly = vec![0u8; 65_500];
    assert!(matches!(
        b.add(&Attribute::Data(&nearly)),
        Err(EncodeError::MessageTooLong { .. })
    ));
    // Failed adds leave the builder untouched.
    assert!(b.is_empty());
}

#[test]
fn message_type_packing_matches_rfc() {
    let check = |class, method, value: u16| {
        let b = MessageBuilder::new(class, method, TransactionId::new([0; 12]));
        assert_eq!(&b.finish()[..2], &value.to_be_bytes());
    };
    check(Class::Request, Method::BINDING, 0x0001);
    check(Class::SuccessResponse, Method::BINDING, 0x0101);
    check(Class::ErrorResponse, Method::BINDING, 0x0111);
    check(Class::Indication, Method::SEND, 0x0016);
    check(Class::Indication, Method::DATA, 0x0017);
    check(Class::SuccessResponse, Method::ALLOCATE, 0x0103);
    check(Class::Request, Method::new(0xFFF).unwrap(), 0x3EEF);
}

#[test]
fn channel_data_framing() {
    let cd = ChannelData {
        channel: 0x4001,
        data: b"hello",
    };
    let mut padded = Vec::new();
    cd.encode(true, &mut padded).unwrap();
    assert_eq!(padded, hex("40 01 00 05 68 65 6c 6c 6f 00 00 00"));
    assert_eq!(ChannelData::decode(&padded), Ok(cd));
    assert_eq!(ChannelData::decode(&padded[..9]), Ok(cd));
    assert_eq!(ChannelData::framed_len(&padded), Some(12));
    let mut extra = padded.clone();
    extra.push(0);
    assert_eq!(
        ChannelData::decode(&extra),
        Err(ChannelDataError::TrailingBytes { extra: 4 })
    );
    assert!(matches!(
        ChannelData::decode(&padded[..8]),
        Err(ChannelDataError::Truncated { .. })
    ));
    assert_eq!(
        ChannelData::decode(&hex("50 00 00 00")),
        Err(ChannelDataError::InvalidChannel(0x5000))
    );
    let bad = ChannelData {
        channel: 0x3FFF,
        data: b"",
    };
    assert!(bad.encode(false, &mut Vec::new()).is_err());
}

#[test]
fn demultiplexing_by_first_byte() {
    assert_eq!(classify(&sample_request()), PacketKind::Stun);
    assert_eq!(classify(&[0x41]), PacketKind::ChannelData);
    assert_eq!(classify(&[0x17]), PacketKind::Dtls);
    assert_eq!(classify(&[0x80]), PacketKind::Rtp);
    assert_eq!(classify(&[0x50]), PacketKind::Quic);
    assert_eq!(classify(&[0xff]), PacketKind::Quic);
    assert_eq!(classify(&[0x05]), PacketKind::Unknown);
    assert_eq!(classify(&[]), PacketKind::Unknown);
}

#[test]
fn userhash_is_sha256_of_user_and_realm() {
    // SHA-256("user:realm"), computed independently.
    let h = userhash("user", "realm");
    assert_eq!(h.len(), 32);
    assert_ne!(h, userhash("user", "realm2"));
}
