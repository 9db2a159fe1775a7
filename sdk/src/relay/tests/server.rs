//! A small TURN server for the tests: the long-term credential mechanism,
//! allocations (IPv4, IPv6, dual), permissions, channels and relaying, with
//! knobs for stale nonces, silence and family support.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use crate::stun::{
    AddressFamily, Attribute, ChannelData, Class, ErrorCode, IntegrityKey, Message, MessageBuilder,
    Method, PacketKind, TransactionId, classify,
};

/// How the server answers ADDITIONAL-ADDRESS-FAMILY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DualMode {
    /// Grants both families.
    Both,
    /// Grants IPv4 and reports IPv6 in ADDRESS-ERROR-CODE (RFC 8656 §7.2).
    AddressError,
    /// Rejects the whole request with 440.
    Reject,
    /// Ignores the attribute and grants IPv4 only (coturn with RFC code points).
    Ignore,
}

#[derive(Debug)]
pub struct SimServer {
    pub realm: String,
    pub nonce: String,
    pub password: String,
    pub relayed_v4: SocketAddr,
    /// `None`: no IPv6 relay (440).
    pub relayed_v6: Option<SocketAddr>,
    pub dual: DualMode,
    pub max_lifetime: u32,
    pub allocated: bool,
    pub permissions: HashSet<IpAddr>,
    pub channels: HashMap<u16, SocketAddr>,
    /// Datagrams relayed to peers: (peer, data, came as ChannelData).
    pub relayed: Vec<(SocketAddr, Vec<u8>, bool)>,
    /// Methods of the requests that reached the server.
    pub requests: Vec<Method>,
    /// Answer the next N authenticated requests with 438 (a new nonce each).
    pub stale_next: u32,
    /// Drop the next N requests unanswered.
    pub drop_next: u32,
    /// Answer every request with this error (after authentication).
    pub fail_with: Option<(u16, &'static str)>,
    nonces: u32,
}

impl SimServer {
    pub fn new() -> SimServer {
        SimServer {
            realm: "tsunagi".into(),
            nonce: "nonce-0".into(),
            password: "secret".into(),
            relayed_v4: "192.0.2.1:49152".parse().unwrap(),
            relayed_v6: Some("[2001:db8::1]:49153".parse().unwrap()),
            dual: DualMode::Both,
            max_lifetime: 3600,
            allocated: false,
            permissions: HashSet::new(),
            channels: HashMap::new(),
            relayed: Vec::new(),
            requests: Vec::new(),
            stale_next: 0,
            drop_next: 0,
            fail_with: None,
            nonces: 0,
        }
    }

    pub fn key(&self) -> IntegrityKey {
        IntegrityKey::long_term_md5("alice", &self.realm, &self.password)
    }

    /// A Data indication from `peer`.
    pub fn data_indication(&self, peer: SocketAddr, data: &[u8]) -> Vec<u8> {
        let mut b =
            MessageBuilder::new(Class::Indication, Method::DATA, TransactionId::new([5; 12]));
        b.add(&Attribute::XorPeerAddress(peer)).unwrap();
        b.add(&Attribute::Data(data)).unwrap();
        b.finish()
    }

    /// ChannelData from `peer`, if a channel is bound to it.
    pub fn channel_data(&self, peer: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
        let (channel, _) = self.channels.iter().find(|(_, p)| **p == peer)?;
        let mut out = Vec::new();
        ChannelData {
            channel: *channel,
            data,
        }
        .encode(true, &mut out)
        .unwrap();
        Some(out)
    }

    /// Handles one datagram from the client; returns the answers.
    pub fn handle(&mut self, from: SocketAddr, bytes: &[u8]) -> Vec<Vec<u8>> {
        if classify(bytes) == PacketKind::ChannelData {
            let cd = ChannelData::decode(bytes).unwrap();
            if let Some(peer) = self.channels.get(&cd.channel) {
                self.relayed.push((*peer, cd.data.to_vec(), true));
            }
            return Vec::new();
        }
        let m = Message::decode(bytes).expect("the client sends well-formed STUN");
        if m.class() == Class::Indication {
            assert_eq!(m.method(), Method::SEND);
            let peer = m.attributes().iter().find_map(|a| match a {
                Attribute::XorPeerAddress(p) => Some(*p),
                _ => None,
            });
            let data = m.attributes().iter().find_map(|a| match a {
                Attribute::Data(d) => Some(d.to_vec()),
                _ => None,
            });
            if let (Some(peer), Some(data)) = (peer, data)
                && self.permissions.contains(&peer.ip())
            {
                self.relayed.push((peer, data, false));
            }
            return Vec::new();
        }
        assert_eq!(m.class(), Class::Request);
        self.requests.push(m.method());
        if self.drop_next > 0 {
            self.drop_next -= 1;
            return Vec::new();
        }
        vec![self.answer(from, &m)]
    }

    fn error(&self, m: &Message<'_>, code: u16, reason: &str, signed: bool) -> Vec<u8> {
        let mut b = MessageBuilder::new(Class::ErrorResponse, m.method(), m.transaction_id());
        b.add(&Attribute::ErrorCode(ErrorCode::new(code, reason)))
            .unwrap();
        if code == 401 || code == 438 {
            b.add(&Attribute::Realm(&self.realm)).unwrap();
            b.add(&Attribute::Nonce(&self.nonce)).unwrap();
        }
        if code == 300 {
            b.add(&Attribute::AlternateServer(
                "192.0.2.2:3478".parse().unwrap(),
            ))
            .unwrap();
        }
        if signed {
            b.add_integrity(&self.key());
        }
        b.finish()
    }

    fn answer(&mut self, from: SocketAddr, m: &Message<'_>) -> Vec<u8> {
        let username = m.attributes().iter().find_map(|a| match a {
            Attribute::Username(u) => Some(*u),
            _ => None,
        });
        let nonce = m.attributes().iter().find_map(|a| match a {
            Attribute::Nonce(n) => Some(*n),
            _ => None,
        });
        if username.is_none() || !m.has_integrity() {
            return self.error(m, 401, "Unauthenticated", false);
        }
        if nonce != Some(self.nonce.as_str()) || self.stale_next > 0 {
            self.stale_next = self.stale_next.saturating_sub(1);
            self.nonces += 1;
            self.nonce = format!("nonce-{}", self.nonces);
            return self.error(m, 438, "Stale Nonce", false);
        }
        if username != Some("alice") || m.verify_integrity(&self.key()).is_err() {
            return self.error(m, 401, "Unauthenticated", false);
        }
        if let Some((code, reason)) = self.fail_with {
            return self.error(m, code, reason, true);
        }
        let mut b = MessageBuilder::new(Class::SuccessResponse, m.method(), m.transaction_id());
        let lifetime = m.attributes().iter().find_map(|a| match a {
            Attribute::Lifetime(l) => Some(*l),
            _ => None,
        });
        let peer = m.attributes().iter().find_map(|a| match a {
            Attribute::XorPeerAddress(p) => Some(*p),
            _ => None,
        });
        match m.method() {
            Method::ALLOCATE => {
                if self.allocated {
                    return self.error(m, 437, "Allocation Mismatch", true);
                }
                let v6 = m
                    .get(crate::stun::AttributeType::REQUESTED_ADDRESS_FAMILY)
                    .is_some();
                let dual = m
                    .get(crate::stun::AttributeType::ADDITIONAL_ADDRESS_FAMILY)
                    .is_some();
                if v6 && dual {
                    return self.error(m, 400, "Bad Request", true);
                }
                if v6 {
                    let Some(r6) = self.relayed_v6 else {
                        return self.error(m, 440, "Address Family not Supported", true);
                    };
                    b.add(&Attribute::XorRelayedAddress(r6)).unwrap();
                } else {
                    b.add(&Attribute::XorRelayedAddress(self.relayed_v4))
                        .unwrap();
                }
                if dual && self.dual != DualMode::Ignore {
                    match (self.dual, self.relayed_v6) {
                        (DualMode::Reject, _) => {
                            return self.error(m, 440, "Address Family not Supported", true);
                        }
                        (DualMode::Both, Some(r6)) => {
                            b.add(&Attribute::XorRelayedAddress(r6)).unwrap();
                        }
                        _ => {
                            let error = ErrorCode::new(440, "Address Family not Supported");
                            b.add(&Attribute::AddressErrorCode {
                                family: AddressFamily::V6,
                                error,
                            })
                            .unwrap();
                        }
                    }
                }
                self.allocated = true;
                let granted = lifetime.unwrap_or(600).min(self.max_lifetime);
                b.add(&Attribute::Lifetime(granted)).unwrap();
                b.add(&Attribute::XorMappedAddress(from)).unwrap();
            }
            Method::REFRESH => {
                if !self.allocated {
                    return self.error(m, 437, "Allocation Mismatch", true);
                }
                let granted = lifetime.unwrap_or(600).min(self.max_lifetime);
                if granted == 0 {
                    self.allocated = false;
                    self.permissions.clear();
                    self.channels.clear();
                }
                b.add(&Attribute::Lifetime(granted)).unwrap();
            }
            Method::CREATE_PERMISSION => {
                self.permissions.insert(peer.unwrap().ip());
            }
            Method::CHANNEL_BIND => {
                let channel = m.attributes().iter().find_map(|a| match a {
                    Attribute::ChannelNumber(c) => Some(*c),
                    _ => None,
                });
                let peer = peer.unwrap();
                self.channels.insert(channel.unwrap(), peer);
                self.permissions.insert(peer.ip());
            }
            other => panic!("unexpected request {other}"),
        }
        b.add_integrity(&self.key());
        b.finish()
    }
}
