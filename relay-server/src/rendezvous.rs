//! The rendezvous service: peers register their identity (an Ed25519 public key)
//! with a token minted by the game backend, and pass offers and answers to each
//! other. The wire format is `tsunagi::signal::wire` (STUN-framed, so it shares the
//! game's socket and the relay's listening port).
//!
//! Tokens are coturn-style REST credentials (`EXPIRY:NAME`, password
//! base64(HMAC-SHA1(secret, username))): any relay holding one of the shared secrets
//! accepts them, and nothing is stored per user. Registrations live in memory with a
//! lifetime (refreshed by the client, which also keeps its NAT binding to us alive).
//! An identity stays with the user NAME that registered it until it expires, so a
//! player with a valid token cannot take over another player's identity. A
//! registration of the same NAME from the same address as an earlier one of
//! another identity replaces it (a restarted client that got the same NAT port).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tsunagi::relay::rest_password;
use tsunagi::signal::wire::{self, Wire};
use tsunagi::stun::{Class, IntegrityKey, Message, Method};

use crate::server::Transmit;

/// Longest registration granted.
const MAX_LIFETIME: u32 = 600;
/// Shortest registration granted.
const MIN_LIFETIME: u32 = 30;
/// Signals per second a peer may send (burst: twice that).
const SIGNALS_PER_SEC: f64 = 10.0;

/// Configuration of the rendezvous service.
#[derive(Debug, Clone)]
pub struct RendezvousConfig {
    /// Shared secrets; a token made with any of them is accepted.
    pub secrets: Vec<String>,
    /// Most registrations held at once (memory bound).
    pub max_peers: usize,
}

#[derive(Debug)]
struct Registration {
    addr: SocketAddr,
    local: SocketAddr,
    name: String,
    key: IntegrityKey,
    expires: Instant,
    tokens: f64,
    refilled: Instant,
}

/// The rendezvous service's state (sans-IO).
#[derive(Debug)]
pub struct Rendezvous {
    config: RendezvousConfig,
    peers: HashMap<[u8; 32], Registration>,
}

impl Rendezvous {
    /// A service with no registrations.
    pub fn new(config: RendezvousConfig) -> Rendezvous {
        Rendezvous {
            config,
            peers: HashMap::new(),
        }
    }

    /// How many peers are registered now.
    pub fn registered(&self) -> usize {
        self.peers.len()
    }

    /// Whether `message` is for this service.
    pub fn is_rendezvous(message: &Message<'_>) -> bool {
        let m = message.method();
        m == Method::RENDEZVOUS_REGISTER || m == Method::RENDEZVOUS_SIGNAL
    }

    /// Forgets expired registrations.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.peers.retain(|_, r| r.expires > now);
    }

    /// Handles a rendezvous request received on `local` from `from`; appends answers
    /// (and a delivery to another peer) to `out`. Never panics on any input.
    pub fn handle(
        &mut self,
        now: Instant,
        now_unix: u64,
        local: SocketAddr,
        from: SocketAddr,
        message: &Message<'_>,
        out: &mut Vec<Transmit>,
    ) {
        if message.class() != Class::Request {
            return;
        }
        let method = message.method();
        let tid = message.transaction_id();
        let mut reply = |payload: Option<Vec<u8>>| {
            if let Some(payload) = payload {
                out.push(Transmit {
                    local,
                    destination: from,
                    payload,
                });
            }
        };
        let error = |code: u16, reason: &str, key: Option<&IntegrityKey>| {
            wire::encode_error(method, tid, code, reason, key).ok()
        };
        let Some(w) = wire::parse(message) else {
            reply(error(400, "Bad Request", None));
            return;
        };
        let username = match &w {
            Wire::Register { username, .. } | Wire::Signal { username, .. } => *username,
            _ => return,
        };
        // Which secret made it is unknown: try each until the integrity verifies.
        let auth = self.authenticate(username, now_unix, message);
        let Some((name, key)) = auth else {
            reply(error(401, "Unauthenticated", None));
            return;
        };
        match w {
            Wire::Register { peer, lifetime, .. } => {
                if let Some(r) = self.peers.get(&peer)
                    && r.name != name
                    && r.expires > now
                {
                    reply(error(
                        wire::IDENTITY_TAKEN,
                        "Identity Registered By Another User",
                        Some(&key),
                    ));
                    return;
                }
                // Another identity of this user registered from this very
                // address: a restarted client behind a NAT that gave it the
                // same port (a 5-tuple is one flow at a time). The old one is
                // unreachable; keeping it would credit this client's signals to
                // it, so the authenticated newcomer replaces it.
                // (Refreshes from where the identity already is skip the scan.)
                let moved = self
                    .peers
                    .get(&peer)
                    .is_none_or(|r| r.addr != from || r.local != local);
                if moved {
                    let before = self.peers.len();
                    self.peers.retain(|id, r| {
                        *id == peer || r.addr != from || r.local != local || r.name != name
                    });
                    if self.peers.len() < before {
                        tracing::debug!(%from, "registration replaces a stale one at its address");
                    }
                }
                if !self.peers.contains_key(&peer) && self.peers.len() >= self.config.max_peers {
                    self.handle_timeout(now);
                    if self.peers.len() >= self.config.max_peers {
                        reply(error(508, "Insufficient Capacity", Some(&key)));
                        return;
                    }
                }
                let granted = lifetime
                    .unwrap_or(MAX_LIFETIME)
                    .clamp(MIN_LIFETIME, MAX_LIFETIME);
                let expires = now + Duration::from_secs(u64::from(granted));
                let (tokens, refilled) = self
                    .peers
                    .get(&peer)
                    .map_or((2.0 * SIGNALS_PER_SEC, now), |r| (r.tokens, r.refilled));
                let reg = Registration {
                    addr: from,
                    local,
                    name,
                    key: key.clone(),
                    expires,
                    tokens,
                    refilled,
                };
                self.peers.insert(peer, reg);
                tracing::debug!(%from, "rendezvous registration");
                let ok = Wire::Registered {
                    mapped: Some(from),
                    lifetime: granted,
                };
                reply(wire::encode(&ok, tid, None, Some(&key)).ok());
            }
            Wire::Signal { to, data, .. } => {
                // The sender is the registration at this address under this name.
                let sender = self
                    .peers
                    .iter_mut()
                    .find(|(_, r)| r.addr == from && r.name == name && r.expires > now);
                let Some((&from_id, reg)) = sender else {
                    reply(error(403, "Register First", Some(&key)));
                    return;
                };
                let elapsed = now.saturating_duration_since(reg.refilled).as_secs_f64();
                reg.tokens = (reg.tokens + elapsed * SIGNALS_PER_SEC).min(2.0 * SIGNALS_PER_SEC);
                reg.refilled = now;
                if reg.tokens < 1.0 {
                    reply(error(wire::TOO_MANY, "Too Many Signals", Some(&key)));
                    return;
                }
                reg.tokens -= 1.0;
                let Some(target) = self.peers.get(&to).filter(|r| r.expires > now) else {
                    reply(error(
                        wire::NOT_REGISTERED,
                        "Peer Not Registered",
                        Some(&key),
                    ));
                    return;
                };
                let deliver = Wire::Deliver {
                    from: from_id,
                    data,
                };
                let forward = wire::encode(&deliver, tid, None, Some(&target.key))
                    .ok()
                    .map(|payload| Transmit {
                        local: target.local,
                        destination: target.addr,
                        payload,
                    });
                reply(wire::encode(&Wire::Sent, tid, None, Some(&key)).ok());
                out.extend(forward);
            }
            _ => {}
        }
    }

    fn authenticate(
        &self,
        username: &str,
        now_unix: u64,
        message: &Message<'_>,
    ) -> Option<(String, IntegrityKey)> {
        let (expiry, name) = username.split_once(':')?;
        let expiry: u64 = expiry.parse().ok()?;
        if expiry <= now_unix || name.is_empty() {
            return None;
        }
        self.config.secrets.iter().find_map(|s| {
            let key = IntegrityKey::short_term(&rest_password(s, username));
            message
                .verify_integrity(&key)
                .ok()
                .map(|()| (name.to_owned(), key))
        })
    }
}

#[cfg(test)]
mod tests;
