//! The rendezvous client: registers this peer's identity with a `tsunagi-relay` and
//! passes offers and answers to other peers through it. Sans-IO: the caller feeds it
//! datagrams from the server and the time, and sends what it returns from the game's
//! one shared UDP socket (so the server also sees the NAT binding peers will use).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::wire::{self, Wire};
use crate::relay::Credentials;
use crate::stun::{Class, IntegrityKey, Message, TransactionId};

/// First retransmission timeout; doubles per try (RFC 8489 §6.2.1).
const RTO: Duration = Duration::from_millis(250);
/// Transmissions per request before giving up.
const TRIES: u32 = 6;
/// Registration lifetime asked for; refreshed at 3/4 of what the server grants, which
/// also keeps the NAT binding to the server alive.
const LIFETIME: u32 = 120;

/// A datagram to send to the rendezvous server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The server.
    pub to: SocketAddr,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The server accepted (or refreshed) the registration; `mapped` is the address it
    /// saw us from (a server-reflexive candidate).
    Registered {
        /// The reflexive address.
        mapped: Option<SocketAddr>,
    },
    /// Registration failed; the message says why and what to do.
    RegistrationFailed(String),
    /// A signal from another peer arrived.
    Received {
        /// The sender's identity.
        from: [u8; 32],
        /// The blob.
        data: Vec<u8>,
    },
    /// The server took our signal for `to`.
    Delivered {
        /// The recipient.
        to: [u8; 32],
    },
    /// A signal could not be passed on.
    Undeliverable {
        /// The recipient.
        to: [u8; 32],
        /// Why, and what to do.
        reason: String,
    },
}

#[derive(Debug)]
struct Pending {
    bytes: Vec<u8>,
    to: Option<[u8; 32]>,
    next: Instant,
    tries: u32,
}

/// The rendezvous client for one server.
#[derive(Debug)]
pub struct Client {
    server: SocketAddr,
    creds: Credentials,
    key: IntegrityKey,
    peer: [u8; 32],
    pending: HashMap<TransactionId, Pending>,
    refresh_at: Option<Instant>,
    registered: bool,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    tid_seed: [u8; 12],
    counter: u64,
}

impl Client {
    /// A client that registers `peer` with `server` using `creds` (from a
    /// `tsunagi token` string). It sends its first Register at once.
    pub fn new(server: SocketAddr, creds: Credentials, peer: [u8; 32], now: Instant) -> Client {
        let mut tid_seed = [0u8; 12];
        // A predictable seed only weakens spoofing resistance, never correctness.
        let _ = getrandom::fill(&mut tid_seed);
        let key = IntegrityKey::short_term(&creds.password);
        let mut c = Client {
            server,
            creds,
            key,
            peer,
            pending: HashMap::new(),
            refresh_at: None,
            registered: false,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            tid_seed,
            counter: 0,
        };
        c.register(now);
        c
    }

    /// Whether the server has accepted our registration.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// The server this client talks to; datagrams from it belong to [`Client::handle_input`].
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    fn next_tid(&mut self) -> TransactionId {
        self.counter = self.counter.wrapping_add(1);
        let mut t = self.tid_seed;
        for (b, c) in t.iter_mut().zip(self.counter.to_be_bytes()) {
            *b ^= c;
        }
        TransactionId::new(t)
    }

    fn request(
        &mut self,
        now: Instant,
        wire: &Wire<'_>,
        to: Option<[u8; 32]>,
    ) -> Result<(), String> {
        let tid = self.next_tid();
        let bytes = wire::encode(wire, tid, None, Some(&self.key)).map_err(|e| e.to_string())?;
        self.outbox.push_back(Transmit {
            to: self.server,
            bytes: bytes.clone(),
        });
        self.pending.insert(
            tid,
            Pending {
                bytes,
                to,
                next: now + RTO,
                tries: 1,
            },
        );
        Ok(())
    }

    fn register(&mut self, now: Instant) {
        let username = self.creds.username.clone();
        let w = Wire::Register {
            username: &username,
            peer: self.peer,
            lifetime: Some(LIFETIME),
        };
        if let Err(e) = self.request(now, &w, None) {
            self.events.push_back(Event::RegistrationFailed(e));
        }
    }

    /// Registers again now (the NAT mapping toward the server changed, so the
    /// server must learn where to deliver signals).
    pub fn renew(&mut self, now: Instant) {
        self.refresh_at = None;
        self.register(now);
    }

    /// Sends `blob` (see [`super::Signal::to_blob`]) to the peer `to` through the
    /// server. The outcome arrives as [`Event::Delivered`] or [`Event::Undeliverable`].
    pub fn send(&mut self, now: Instant, to: [u8; 32], blob: &[u8]) {
        let username = self.creds.username.clone();
        let w = Wire::Signal {
            username: &username,
            to,
            data: blob,
        };
        if let Err(e) = self.request(now, &w, Some(to)) {
            self.events
                .push_back(Event::Undeliverable { to, reason: e });
        }
    }

    /// Feeds a datagram that came from the server. Returns `false` if it was not a
    /// rendezvous message (the caller may hand it to another consumer).
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> bool {
        if from != self.server {
            return false;
        }
        let Ok(m) = Message::decode(datagram) else {
            return false;
        };
        let Some(w) = wire::parse(&m) else {
            return false;
        };
        if m.class() == Class::Indication {
            if m.verify_integrity(&self.key).is_ok()
                && let Wire::Deliver { from, data } = w
            {
                self.events.push_back(Event::Received {
                    from,
                    data: data.to_vec(),
                });
            }
            return true;
        }
        let tid = m.transaction_id();
        let Some(p) = self.pending.get(&tid) else {
            return true;
        };
        // Success must carry our integrity; errors to unauthenticated requests cannot.
        if m.class() == Class::SuccessResponse && m.verify_integrity(&self.key).is_err() {
            return true;
        }
        let to = p.to;
        self.pending.remove(&tid);
        match (w, to) {
            (Wire::Registered { mapped, lifetime }, _) => {
                self.registered = true;
                let secs = u64::from(lifetime.clamp(10, 3600)) * 3 / 4;
                self.refresh_at = Some(now + Duration::from_secs(secs));
                self.events.push_back(Event::Registered { mapped });
            }
            (Wire::Sent, Some(to)) => self.events.push_back(Event::Delivered { to }),
            (Wire::Error { code, reason }, None) => {
                self.registered = false;
                self.events
                    .push_back(Event::RegistrationFailed(describe(code, reason)));
            }
            (Wire::Error { code, reason }, Some(to)) => {
                if code == wire::NOT_REGISTERED {
                    // The server may have restarted and forgotten us as well.
                    self.register(now);
                }
                self.events.push_back(Event::Undeliverable {
                    to,
                    reason: describe(code, reason),
                });
            }
            _ => {}
        }
        true
    }

    /// Advances timers: retransmissions and registration refresh.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut gave_up = Vec::new();
        for (tid, p) in &mut self.pending {
            if p.next > now {
                continue;
            }
            if p.tries >= TRIES {
                gave_up.push(*tid);
                continue;
            }
            p.tries += 1;
            p.next = now + RTO * 2u32.pow(p.tries - 1);
            self.outbox.push_back(Transmit {
                to: self.server,
                bytes: p.bytes.clone(),
            });
        }
        for tid in gave_up {
            if let Some(p) = self.pending.remove(&tid) {
                let reason = format!(
                    "no answer from the rendezvous server {} after {TRIES} tries: is it running and is UDP to it allowed?",
                    self.server
                );
                match p.to {
                    Some(to) => self.events.push_back(Event::Undeliverable { to, reason }),
                    None => {
                        self.registered = false;
                        self.events.push_back(Event::RegistrationFailed(reason));
                    }
                }
            }
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            self.register(now);
        }
    }

    /// When [`Client::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.next)
            .chain(self.refresh_at)
            .min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

fn describe(code: u16, reason: &str) -> String {
    let hint = match code {
        401 => {
            "the token was refused: mint a fresh one from the game backend (is it expired, or made with another secret?)"
        }
        404 => {
            "the other player is not registered with this rendezvous server (offline, or using another server)"
        }
        409 => "this identity is registered by another user: each player needs its own identity",
        429 => "too many signals: slow down",
        _ => "the rendezvous server refused the request",
    };
    format!("{code} {reason}: {hint}")
}
