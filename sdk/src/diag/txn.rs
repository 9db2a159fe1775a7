//! STUN Binding transactions for the diagnosis: building requests, matching responses,
//! and RFC 8489 §6.2.1 retransmission with short, configurable timers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::stun::{Attribute, Class, Message, MessageBuilder, Method, TransactionId};

/// Identifies one of the diagnosis' local UDP sockets. [`MAIN_SOCKET`] is the one the
/// caller opened; the others are opened on request (see `Output::OpenSocket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u32);

/// The socket every test uses unless its method needs another one.
pub const MAIN_SOCKET: SocketId = SocketId(0);

/// Retransmission timers (RFC 8489 §6.2.1, shortened for an interactive diagnosis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// The first retransmission timeout; doubled after every send.
    pub initial_rto: Duration,
    /// The largest timeout between two sends.
    pub max_rto: Duration,
    /// How many times a request is sent before the transaction times out.
    pub max_attempts: u32,
}

impl Default for Retransmit {
    fn default() -> Retransmit {
        Retransmit {
            initial_rto: Duration::from_millis(200),
            max_rto: Duration::from_millis(1600),
            max_attempts: 4,
        }
    }
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A success response.
    Response {
        /// XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS).
        mapped: SocketAddr,
        /// Where the response came from (the datagram's source).
        from: SocketAddr,
        /// The socket it arrived on.
        socket: SocketId,
        /// OTHER-ADDRESS, if the server gave one.
        other: Option<SocketAddr>,
        /// When it arrived.
        at: Instant,
    },
    /// Our own request came back (hairpinning).
    Looped {
        /// The socket it arrived on.
        socket: SocketId,
    },
    /// An error response with this code.
    Error(u16),
    /// No answer after every retransmission.
    Timeout,
}

/// One Binding transaction.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub id: TransactionId,
    pub socket: SocketId,
    pub dest: SocketAddr,
    pub payload: Vec<u8>,
    pub first_sent: Option<Instant>,
    pub next_at: Instant,
    pub attempts: u32,
    pub rto: Duration,
    pub outcome: Option<Outcome>,
}

/// What a request asks of the server (RFC 5780 §7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ask {
    pub change_ip: bool,
    pub change_port: bool,
    pub response_port: Option<u16>,
}

impl Txn {
    /// A transaction to send as soon as the core is polled.
    pub fn new(
        id: TransactionId,
        socket: SocketId,
        dest: SocketAddr,
        ask: Ask,
        now: Instant,
    ) -> Txn {
        let mut b = MessageBuilder::new(Class::Request, Method::BINDING, id);
        // Adding fixed-size attributes to an empty message cannot overflow.
        if ask.change_ip || ask.change_port {
            let _ = b.add(&Attribute::ChangeRequest {
                change_ip: ask.change_ip,
                change_port: ask.change_port,
            });
        }
        if let Some(port) = ask.response_port {
            let _ = b.add(&Attribute::ResponsePort(port));
        }
        Txn {
            id,
            socket,
            dest,
            payload: b.finish(),
            first_sent: None,
            next_at: now,
            attempts: 0,
            rto: Duration::ZERO,
            outcome: None,
        }
    }

    /// Whether the transaction has ended.
    pub fn done(&self) -> bool {
        self.outcome.is_some()
    }

    /// If due at `now`, the payload to (re)send; else `None`. Marks a timeout after the
    /// last attempt's wait.
    pub fn poll_send(
        &mut self,
        now: Instant,
        timers: &Retransmit,
    ) -> Option<(SocketId, SocketAddr, Vec<u8>)> {
        if self.done() || now < self.next_at {
            return None;
        }
        if self.attempts >= timers.max_attempts.max(1) {
            self.outcome = Some(Outcome::Timeout);
            return None;
        }
        self.rto = if self.attempts == 0 {
            timers.initial_rto
        } else {
            (self.rto * 2).min(timers.max_rto)
        };
        self.attempts += 1;
        self.first_sent.get_or_insert(now);
        self.next_at = now + self.rto;
        Some((self.socket, self.dest, self.payload.clone()))
    }

    /// When this transaction next needs attention.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.done()).then_some(self.next_at)
    }
}

/// A datagram parsed as far as the diagnosis cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A Binding response (success or error) for transaction `id`.
    Response {
        id: TransactionId,
        mapped: Option<SocketAddr>,
        other: Option<SocketAddr>,
        error: Option<u16>,
    },
    /// A Binding request (ours coming back when the NAT hairpins).
    Request { id: TransactionId },
}

/// Parses a datagram; anything that is not a STUN Binding message is `None`.
pub(crate) fn parse(data: &[u8]) -> Option<Parsed> {
    let msg = Message::decode(data).ok()?;
    if msg.method() != Method::BINDING {
        return None;
    }
    let id = msg.transaction_id();
    match msg.class() {
        Class::Request => Some(Parsed::Request { id }),
        Class::SuccessResponse | Class::ErrorResponse => Some(Parsed::Response {
            id,
            mapped: msg.xor_mapped_address().or_else(|| msg.mapped_address()),
            other: msg.attributes().iter().find_map(|a| match a {
                Attribute::OtherAddress(addr) => Some(*addr),
                _ => None,
            }),
            error: (msg.class() == Class::ErrorResponse)
                .then(|| msg.error_code().map(|e| e.code).unwrap_or(500)),
        }),
        Class::Indication => None,
    }
}

/// A small deterministic generator for transaction IDs (splitmix64). The driver seeds
/// it from the OS; tests seed it with a constant.
#[derive(Debug, Clone)]
pub(crate) struct IdGen(u64);

impl IdGen {
    pub fn new(seed: u64) -> IdGen {
        IdGen(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn next_id(&mut self) -> TransactionId {
        let a = self.next_u64().to_be_bytes();
        let b = self.next_u64().to_be_bytes();
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&a);
        id[8..].copy_from_slice(&b[..4]);
        TransactionId::new(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmits_double_then_time_out() {
        let t0 = Instant::now();
        let timers = Retransmit::default();
        let dest: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let mut t = Txn::new(
            IdGen::new(1).next_id(),
            MAIN_SOCKET,
            dest,
            Ask::default(),
            t0,
        );
        let mut sends = Vec::new();
        let mut now = t0;
        while !t.done() {
            if t.poll_send(now, &timers).is_some() {
                sends.push(now - t0);
            }
            now = t.deadline().unwrap_or(now);
        }
        let ms: Vec<u128> = sends.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [0, 200, 600, 1400]);
        assert_eq!(now - t0, Duration::from_millis(3000));
        assert_eq!(t.outcome, Some(Outcome::Timeout));
    }

    #[test]
    fn requests_parse_back_and_garbage_is_ignored() {
        let id = IdGen::new(7).next_id();
        let ask = Ask {
            change_ip: true,
            change_port: true,
            response_port: Some(9),
        };
        let t = Txn::new(
            id,
            MAIN_SOCKET,
            "192.0.2.1:1".parse().unwrap(),
            ask,
            Instant::now(),
        );
        assert_eq!(parse(&t.payload), Some(Parsed::Request { id }));
        assert_eq!(parse(b"hello"), None);
        assert_eq!(parse(&[]), None);
    }
}
