//! Path probes: STUN Binding requests without USERNAME (RFC 8489), answered by
//! the peer's path layer with a success response carrying the address it saw.
//! ICE connectivity checks carry USERNAME and are left to the ICE agent.

use std::net::SocketAddr;

use crate::stun::{
    Attribute, AttributeType, Class, Message, MessageBuilder, Method, TransactionId,
};

/// A STUN message the path layer recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A peer probes a path to us: answer it.
    Request(TransactionId),
    /// An answer to a probe of ours (or someone else's transaction).
    Response(TransactionId),
}

/// Recognises path probes and their answers; `None` for any other STUN.
pub(crate) fn parse(datagram: &[u8]) -> Option<Probe> {
    let message = Message::decode(datagram).ok()?;
    if message.method() != Method::BINDING {
        return None;
    }
    if message.has_fingerprint() && message.verify_fingerprint().is_err() {
        return None;
    }
    match message.class() {
        Class::Request if message.get(AttributeType::USERNAME).is_none() => {
            Some(Probe::Request(message.transaction_id()))
        }
        Class::SuccessResponse => Some(Probe::Response(message.transaction_id())),
        _ => None,
    }
}

/// A probe: a Binding request with FINGERPRINT.
pub(crate) fn request(tid: TransactionId) -> Vec<u8> {
    MessageBuilder::new(Class::Request, Method::BINDING, tid).finish_with_fingerprint()
}

/// The answer to a probe from `seen_from`: a Binding success response with
/// XOR-MAPPED-ADDRESS and FINGERPRINT.
pub(crate) fn response(tid: TransactionId, seen_from: SocketAddr) -> Vec<u8> {
    let mut b = MessageBuilder::new(Class::SuccessResponse, Method::BINDING, tid);
    // An address always fits; if encoding failed the answer still proves the path.
    let _ = b.add(&Attribute::XorMappedAddress(seen_from));
    b.finish_with_fingerprint()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_round_trip() {
        let tid = TransactionId::new([9; 12]);
        assert_eq!(parse(&request(tid)), Some(Probe::Request(tid)));
        let from: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let resp = response(tid, from);
        assert_eq!(parse(&resp), Some(Probe::Response(tid)));
        assert_eq!(
            Message::decode(&resp).unwrap().xor_mapped_address(),
            Some(from)
        );
    }

    #[test]
    fn ice_checks_and_garbage_are_not_probes() {
        let mut b =
            MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([1; 12]));
        b.add(&Attribute::Username("a:b")).unwrap();
        assert_eq!(parse(&b.finish()), None);
        assert_eq!(parse(&[0, 1, 0, 0]), None);
        assert_eq!(parse(&[]), None);
    }
}
