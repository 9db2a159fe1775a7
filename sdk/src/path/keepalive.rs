//! Keepalives for the NAT mappings toward servers (TURN relays, the
//! rendezvous server), sized by [`crate::keepalive::Keepalive`].
//!
//! Linux-style NATs keep one conntrack entry, with its own timer, per remote
//! address: the mapping toward a relay or the rendezvous server expires after
//! the NAT's UDP session timer unless something goes there, however busy the
//! socket is with peers. A listener waiting in a lobby, or a session whose
//! relay path is not probed, would then stop being reachable through the
//! server long before the TURN refresh (minutes) or the registration refresh
//! (90 s). So every server address gets a STUN Binding request whenever
//! nothing was sent to it for one keepalive interval; real traffic (TURN
//! refreshes, ChannelData, signalling) counts, so busy mappings get none.
//!
//! The answer's XOR-MAPPED-ADDRESS is compared with the last one seen: a new
//! one means the mapping expired (or the network changed) since the last
//! refresh, so the timer is shorter than that gap and every interval shortens
//! at once ([`crate::keepalive::Keepalive::mapping_expired`]); the path layer
//! reports [`super::PathEvent::MappingChanged`] so the relay allocation and
//! the registration move to the new mapping.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::addr::canonical;
use super::event::PathEvent;
use crate::keepalive::{Keepalive, KeepaliveConfig, Target};
use crate::stun::{Class, Message, MessageBuilder, Method, TransactionId};

/// How long a keepalive request waits for its answer before it is forgotten
/// (the keepalive itself worked on the way out; the answer only reports the
/// mapping).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Server {
    target: Target,
    last_sent: Instant,
    mapped: Option<SocketAddr>,
    /// The outstanding request: its transaction, when it went, and how long
    /// the mapping had been idle before it.
    outstanding: Option<(TransactionId, Instant, Duration)>,
    sent: u64,
    answered: u64,
}

/// What the path layer knows about one server mapping it keeps alive
/// ([`super::PathHandle::keepalive_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeepaliveStats {
    /// Keepalive requests sent to the server.
    pub sent: u64,
    /// Of those, answered.
    pub answered: u64,
    /// The address the server last saw us at.
    pub mapped: Option<SocketAddr>,
}

/// The server mappings of one path socket and the keepalive timer knowledge.
#[derive(Debug)]
pub(crate) struct ServerKeepalives {
    /// `None`: keepalives are off (`PathConfig::keepalive`).
    timer: Option<Keepalive>,
    servers: BTreeMap<SocketAddr, Server>,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<PathEvent>,
    counter: u64,
    seed: u64,
}

impl ServerKeepalives {
    pub(crate) fn new(
        config: Option<KeepaliveConfig>,
        nat_timer: Option<Duration>,
        now: Instant,
        seed: u64,
    ) -> ServerKeepalives {
        let timer = config.map(|c| {
            let mut k = Keepalive::new(c, now);
            k.set_measured(nat_timer);
            k
        });
        ServerKeepalives {
            timer,
            servers: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            counter: 0,
            seed,
        }
    }

    /// The keepalive interval, `None` when keepalives are off.
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.timer
            .as_ref()
            .map(|k| k.interval(Target::ServerMapping))
    }

    /// The best knowledge of the NAT session timer.
    pub(crate) fn nat_timer(&self) -> Option<Duration> {
        self.timer.as_ref().and_then(Keepalive::timer)
    }

    /// The measured (or configured, or cached) binding lifetime.
    pub(crate) fn set_measured(&mut self, lifetime: Option<Duration>) {
        if let Some(k) = &mut self.timer {
            k.set_measured(lifetime);
            tracing::info!(?lifetime, interval = ?k.interval(Target::ServerMapping), "NAT session timer set; keepalive interval");
        }
    }

    /// Keeps the mapping toward `server` alive from now on.
    pub(crate) fn watch(&mut self, now: Instant, server: SocketAddr, target: Target) {
        let server = canonical(server);
        self.servers.entry(server).or_insert_with(|| {
            tracing::debug!(%server, ?target, "keeping the NAT mapping toward this server alive");
            Server {
                target,
                last_sent: now,
                mapped: None,
                outstanding: None,
                sent: 0,
                answered: 0,
            }
        });
    }

    /// Stops keeping `server`'s mapping alive.
    pub(crate) fn unwatch(&mut self, server: SocketAddr) {
        self.servers.remove(&canonical(server));
    }

    /// Something went to `to`: if it is a watched server, its mapping is fresh.
    pub(crate) fn on_sent(&mut self, now: Instant, to: SocketAddr) {
        if let Some(s) = self.servers.get_mut(&canonical(to)) {
            s.last_sent = now;
        }
    }

    /// The keepalive statistics of `server`'s mapping.
    pub(crate) fn stats(&self, server: SocketAddr) -> Option<KeepaliveStats> {
        self.servers
            .get(&canonical(server))
            .map(|s| KeepaliveStats {
                sent: s.sent,
                answered: s.answered,
                mapped: s.mapped,
            })
    }

    /// The address `server` saw us at (an allocation's or registration's
    /// mapped address, or a keepalive answer). A change means the mapping
    /// expired while idle: the timer shortens and the change is reported.
    pub(crate) fn observed(&mut self, server: SocketAddr, mapped: SocketAddr) {
        let server = canonical(server);
        let mapped = canonical(mapped);
        let Some(s) = self.servers.get_mut(&server) else {
            return;
        };
        // How long the mapping was idle before the request that found the
        // change; unknown for an allocation's or registration's answer.
        let idle = s.outstanding.map(|(_, _, idle)| idle);
        if let Some(old) = s.mapped.replace(mapped)
            && old != mapped
        {
            tracing::warn!(%server, target = ?s.target, from = %old, to = %mapped, ?idle, "our mapping toward the server changed: the NAT dropped it while idle, or the network changed");
            if let (Some(k), Some(idle)) = (&mut self.timer, idle) {
                k.mapping_expired(idle);
            }
            self.events.push_back(PathEvent::MappingChanged {
                server,
                from: old,
                to: mapped,
            });
        }
    }

    /// A datagram from `from`: consumed (returns true) if it answers one of
    /// our keepalive requests.
    pub(crate) fn handle_input(&mut self, from: SocketAddr, bytes: &[u8]) -> bool {
        let from = canonical(from);
        let Some(s) = self.servers.get(&from) else {
            return false;
        };
        let Some((tid, _, _)) = s.outstanding else {
            return false;
        };
        let Ok(message) = Message::decode(bytes) else {
            return false;
        };
        if message.transaction_id() != tid || message.method() != Method::BINDING {
            return false;
        }
        if message.class() == Class::SuccessResponse
            && let Some(mapped) = message.xor_mapped_address()
        {
            self.observed(from, mapped);
        }
        if let Some(s) = self.servers.get_mut(&from) {
            s.outstanding = None;
            s.answered += 1;
        }
        true
    }

    /// Sends a Binding request to every watched server idle for an interval.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let Some(interval) = self.interval() else {
            return;
        };
        let mut due = Vec::new();
        for (server, s) in &mut self.servers {
            if s.outstanding
                .is_some_and(|(_, at, _)| now.saturating_duration_since(at) >= ANSWER_TIMEOUT)
            {
                s.outstanding = None;
            }
            if s.last_sent + interval <= now {
                due.push(*server);
            }
        }
        for server in due {
            self.counter = self.counter.wrapping_add(1);
            let mut t = [0u8; 12];
            t[..8].copy_from_slice(&(self.seed ^ self.counter).to_le_bytes());
            t[8..].copy_from_slice(&(self.counter as u32).to_be_bytes());
            let tid = TransactionId::new(t);
            let Some(s) = self.servers.get_mut(&server) else {
                continue;
            };
            let idle = now.saturating_duration_since(s.last_sent);
            tracing::trace!(%server, ?idle, "keepalive to the server");
            s.outstanding = Some((tid, now, idle));
            s.last_sent = now;
            s.sent += 1;
            self.out.push_back((
                server,
                MessageBuilder::new(Class::Request, Method::BINDING, tid).finish_with_fingerprint(),
            ));
        }
    }

    /// When [`ServerKeepalives::handle_timeout`] must next run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let interval = self.interval()?;
        self.servers.values().map(|s| s.last_sent + interval).min()
    }

    /// The next keepalive to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.out.pop_front()
    }

    /// The next event.
    pub(crate) fn poll_event(&mut self) -> Option<PathEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::stun::Attribute;

    fn answer(request: &[u8], mapped: SocketAddr) -> Vec<u8> {
        let tid = Message::decode(request).unwrap().transaction_id();
        let mut b = MessageBuilder::new(Class::SuccessResponse, Method::BINDING, tid);
        b.add(&Attribute::XorMappedAddress(mapped)).unwrap();
        b.finish()
    }

    #[test]
    fn only_idle_servers_get_keepalives_and_a_new_mapping_shortens_them() {
        let t0 = Instant::now();
        let server: SocketAddr = "198.51.100.1:3478".parse().unwrap();
        let busy: SocketAddr = "198.51.100.2:3478".parse().unwrap();
        let mut k = ServerKeepalives::new(Some(KeepaliveConfig::default()), None, t0, 7);
        k.watch(t0, server, Target::RelayAllocation);
        k.watch(t0, busy, Target::ServerMapping);
        k.observed(server, "203.0.113.5:4000".parse().unwrap());
        assert_eq!(k.interval(), Some(Duration::from_secs(15)));
        // Real traffic to `busy` every 10 s: it never needs a keepalive.
        for s in (10..=30).step_by(10) {
            k.on_sent(t0 + Duration::from_secs(s), busy);
        }
        k.handle_timeout(t0 + Duration::from_secs(15));
        let (to, request) = k.poll_transmit().unwrap();
        assert_eq!(to, server);
        assert!(k.poll_transmit().is_none());
        assert_eq!(
            k.poll_timeout(),
            Some(t0 + Duration::from_secs(30)),
            "next: the idle server again"
        );
        // The answer shows a new mapping: the NAT dropped it within 15 s.
        assert!(k.handle_input(
            server,
            &answer(&request, "203.0.113.5:4999".parse().unwrap())
        ));
        assert!(matches!(
            k.poll_event(),
            Some(PathEvent::MappingChanged { .. })
        ));
        assert_eq!(k.nat_timer(), Some(Duration::from_secs(15)));
        assert_eq!(k.interval(), Some(Duration::from_secs(6)));
        // Not ours: left for others.
        assert!(!k.handle_input(server, &answer(&request, "203.0.113.5:1".parse().unwrap())));
    }

    #[test]
    fn a_known_timer_sizes_the_interval_and_off_sends_nothing() {
        let t0 = Instant::now();
        let server: SocketAddr = "198.51.100.1:3478".parse().unwrap();
        let k = ServerKeepalives::new(
            Some(KeepaliveConfig::default()),
            Some(Duration::from_secs(10)),
            t0,
            1,
        );
        assert_eq!(k.interval(), Some(Duration::from_secs(4)));
        let mut off = ServerKeepalives::new(None, None, t0, 1);
        off.watch(t0, server, Target::ServerMapping);
        off.handle_timeout(t0 + Duration::from_secs(600));
        assert!(off.poll_transmit().is_none());
        assert_eq!(off.poll_timeout(), None);
    }
}
