//! One peer's path table and the rule that picks the active path.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::addr::{PathAddr, PathKind, PeerKey, Via};
use super::event::{PathConfig, PathStats, PeerStats};
use crate::socket::QUIC_CID_LEN;

/// A QUIC connection ID as the path layer sees it (the destination connection
/// ID of a short-header packet from the peer: one of *our* IDs).
pub(crate) type Cid = [u8; QUIC_CID_LEN];

/// How many of a peer's connection IDs are remembered.
pub(crate) const CIDS_PER_PEER: usize = 8;

/// One path in a peer's table.
#[derive(Debug, Clone)]
pub(crate) struct PathEntry {
    pub(crate) addr: PathAddr,
    pub(crate) via: Via,
    /// A probe was answered on this path at least once: only confirmed paths
    /// are chosen, so a spoofed packet cannot redirect our sends.
    pub(crate) confirmed: bool,
    /// A probe answer or a QUIC packet last arrived at this time.
    pub(crate) last_seen: Option<Instant>,
    pub(crate) srtt: Option<Duration>,
    pub(crate) next_probe: Instant,
    pub(crate) retry: Duration,
    /// Liveness at the last evaluation, to report transitions once.
    pub(crate) was_live: bool,
    /// When the peer's QUIC traffic first came by this path, if it was found
    /// that way (a NAT rebinding) rather than added.
    pub(crate) discovered_at: Option<Instant>,
    pub(crate) probes_sent: u64,
    pub(crate) probes_answered: u64,
    pub(crate) packets_sent: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) packets_received: u64,
    pub(crate) bytes_received: u64,
}

impl PathEntry {
    pub(crate) fn new(addr: PathAddr, now: Instant, config: &PathConfig) -> PathEntry {
        PathEntry {
            addr,
            via: addr.via(),
            confirmed: false,
            last_seen: None,
            srtt: None,
            next_probe: now,
            retry: config.initial_retry,
            was_live: false,
            discovered_at: None,
            probes_sent: 0,
            probes_answered: 0,
            packets_sent: 0,
            bytes_sent: 0,
            packets_received: 0,
            bytes_received: 0,
        }
    }

    pub(crate) fn kind(&self) -> PathKind {
        self.addr.kind()
    }

    pub(crate) fn is_live(&self, now: Instant, config: &PathConfig) -> bool {
        self.confirmed
            && self
                .last_seen
                .is_some_and(|t| now.saturating_duration_since(t) < config.live_timeout)
    }

    /// When this path stops being live if nothing arrives, if it is live.
    pub(crate) fn live_until(&self, config: &PathConfig) -> Option<Instant> {
        if !self.confirmed {
            return None;
        }
        self.last_seen.map(|t| t + config.live_timeout)
    }

    pub(crate) fn rtt_sample(&mut self, sample: Duration) {
        self.srtt = Some(match self.srtt {
            // RFC 6298's smoothing, α = 1/8.
            Some(srtt) => (srtt * 7 + sample) / 8,
            None => sample,
        });
    }

    fn stats(&self, now: Instant, config: &PathConfig, active: bool) -> PathStats {
        PathStats {
            path: self.addr,
            kind: self.kind(),
            rtt: self.srtt,
            last_seen: self.last_seen,
            live: self.is_live(now, config),
            active,
            probes_sent: self.probes_sent,
            probes_answered: self.probes_answered,
            packets_sent: self.packets_sent,
            bytes_sent: self.bytes_sent,
            packets_received: self.packets_received,
            bytes_received: self.bytes_received,
        }
    }
}

/// One peer: its virtual address, its paths and the active one.
#[derive(Debug, Clone)]
pub(crate) struct PeerEntry {
    pub(crate) virtual_addr: SocketAddr,
    pub(crate) key: Option<PeerKey>,
    /// Created from an unknown source's first QUIC Initial.
    pub(crate) inbound: bool,
    pub(crate) paths: Vec<PathEntry>,
    pub(crate) active: Option<usize>,
    pub(crate) cids: VecDeque<Cid>,
}

impl PeerEntry {
    pub(crate) fn new(virtual_addr: SocketAddr, key: Option<PeerKey>, inbound: bool) -> PeerEntry {
        PeerEntry {
            virtual_addr,
            key,
            inbound,
            paths: Vec::new(),
            active: None,
            cids: VecDeque::new(),
        }
    }

    pub(crate) fn path_index(&self, via: &Via) -> Option<usize> {
        self.paths.iter().position(|p| p.via == *via)
    }

    pub(crate) fn active_kind(&self) -> Option<PathKind> {
        self.active
            .and_then(|i| self.paths.get(i))
            .map(PathEntry::kind)
    }

    /// The path QUIC should take now: the best live path (direct IPv6 > direct
    /// IPv4 > relay; among equals the lower RTT), keeping the active one unless
    /// the best is of a better kind or clearly faster, so equal paths do not
    /// flap.
    pub(crate) fn select(&self, now: Instant, config: &PathConfig) -> Option<usize> {
        let rank = |p: &PathEntry| (p.kind(), p.srtt.unwrap_or(Duration::MAX));
        let best = self
            .paths
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_live(now, config))
            .min_by_key(|(_, p)| rank(p))
            .map(|(i, _)| i)?;
        let current = self
            .active
            .filter(|&i| self.paths.get(i).is_some_and(|p| p.is_live(now, config)));
        let (Some(cur), Some(b)) = (current, self.paths.get(best)) else {
            return Some(best);
        };
        let Some(c) = self.paths.get(cur) else {
            return Some(best);
        };
        if b.kind() < c.kind() {
            return Some(best);
        }
        if b.kind() == c.kind() {
            // The active path went quiet while another of its kind is heard
            // from (a NAT rebinding): move before the active one times out.
            if let (Some(sb), Some(sc)) = (b.last_seen, c.last_seen)
                && sb > sc + config.probe_interval
            {
                return Some(best);
            }
        }
        // The peer's traffic moved to a path found from it (its NAT gave it a
        // new address) and nothing came by the active path since: follow at
        // once (the new path is confirmed by a probe, so a spoofed packet
        // cannot redirect us).
        if let Some(moved) = self.moved_to(cur, now, config) {
            return Some(moved);
        }
        if b.kind() == c.kind()
            && let (Some(rb), Some(rc)) = (b.srtt, c.srtt)
            && rb.as_secs_f64() < rc.as_secs_f64() * config.rtt_switch_ratio
        {
            return Some(best);
        }
        Some(cur)
    }

    /// A live path the peer's traffic moved to from the active path `cur`:
    /// discovered from its QUIC packets after the last thing heard on `cur`.
    fn moved_to(&self, cur: usize, now: Instant, config: &PathConfig) -> Option<usize> {
        let c = self.paths.get(cur)?;
        let heard = c.last_seen?;
        self.paths
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                *i != cur
                    && p.kind() <= c.kind()
                    && p.is_live(now, config)
                    && p.discovered_at.is_some_and(|d| d > heard)
                    && p.last_seen.is_some_and(|s| s > heard)
            })
            .max_by_key(|(_, p)| p.last_seen)
            .map(|(i, _)| i)
    }

    pub(crate) fn stats(&self, now: Instant, config: &PathConfig) -> PeerStats {
        PeerStats {
            peer: self.virtual_addr,
            key: self.key,
            active: self.active_kind(),
            paths: self
                .paths
                .iter()
                .enumerate()
                .map(|(i, p)| p.stats(now, config, self.active == Some(i)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_path(addr: &str, now: Instant, rtt_ms: u64, config: &PathConfig) -> PathEntry {
        let a: SocketAddr = addr.parse().unwrap();
        let mut p = PathEntry::new(PathAddr::Direct(a), now, config);
        p.confirmed = true;
        p.last_seen = Some(now);
        p.srtt = Some(Duration::from_millis(rtt_ms));
        p
    }

    #[test]
    fn better_kind_wins_and_equal_kinds_need_a_clear_rtt_gain() {
        let config = PathConfig::default();
        let now = Instant::now();
        let mut peer = PeerEntry::new("[fd00::1]:1".parse().unwrap(), None, false);
        peer.paths.push(live_path("192.0.2.1:1", now, 30, &config));
        assert_eq!(peer.select(now, &config), Some(0));
        peer.active = Some(0);
        // Same kind, slightly faster: keep the active path.
        peer.paths.push(live_path("192.0.2.2:1", now, 25, &config));
        assert_eq!(peer.select(now, &config), Some(0));
        // Same kind, much faster: switch.
        peer.paths.push(live_path("192.0.2.3:1", now, 10, &config));
        assert_eq!(peer.select(now, &config), Some(2));
        // IPv6 beats IPv4 even when slower.
        peer.paths
            .push(live_path("[2001:db8::1]:1", now, 80, &config));
        assert_eq!(peer.select(now, &config), Some(3));
        // Nothing live: nothing selected.
        let later = now + config.live_timeout;
        assert_eq!(peer.select(later, &config), None);
    }
}
