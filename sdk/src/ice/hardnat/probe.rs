//! [`Prober`]: sends a [`Plan`]'s probes, paced, and recognises the answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{HardNatConfig, Plan};

/// At most this many probes leave in one call, even when the caller is late:
/// pacing, never a burst.
const MAX_BURST: usize = 4;

/// Where probing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeState {
    /// Probes are still going out.
    Running,
    /// A probe was answered from this address.
    Succeeded(SocketAddr),
    /// Every round went out; answers are still recognised.
    Exhausted,
    /// Stopped early (another path was found).
    Stopped,
}

/// Sends the probes of one [`Plan`]: `targets` in order, `pace` apart, then the
/// next round `round_gap` later, never more than [`Plan::packets`] in all.
/// The caller builds each datagram (an ICE check with a fresh transaction ID)
/// and reports answers by transaction ID.
#[derive(Debug)]
pub struct Prober<T: Ord + Copy> {
    plan: Plan,
    pace: Duration,
    round_gap: Duration,
    next: Instant,
    round: u8,
    index: usize,
    sent: u32,
    outstanding: BTreeMap<T, SocketAddr>,
    state: ProbeState,
}

impl<T: Ord + Copy> Prober<T> {
    /// Starts probing at `now`.
    pub fn new(plan: Plan, config: &HardNatConfig, now: Instant) -> Prober<T> {
        Prober {
            plan,
            pace: config.pace,
            round_gap: config.round_gap,
            next: now,
            round: 0,
            index: 0,
            sent: 0,
            outstanding: BTreeMap::new(),
            state: ProbeState::Running,
        }
    }

    /// The plan being run.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Where probing stands.
    pub fn state(&self) -> ProbeState {
        self.state
    }

    /// Probes sent so far.
    pub fn packets_sent(&self) -> u32 {
        self.sent
    }

    /// When [`Prober::handle_timeout`] must next run (`None` once no probe is
    /// left to send).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == ProbeState::Running).then_some(self.next)
    }

    /// Sends what is due: calls `send(target)` for each probe, which returns
    /// the transaction ID it used.
    pub fn handle_timeout(&mut self, now: Instant, mut send: impl FnMut(SocketAddr) -> T) {
        let mut burst = 0;
        while self.state == ProbeState::Running && self.next <= now && burst < MAX_BURST {
            let Some(&target) = self.plan.targets.get(self.index) else {
                self.state = ProbeState::Exhausted;
                break;
            };
            if self.sent >= self.plan.packets() {
                self.state = ProbeState::Exhausted;
                break;
            }
            let tid = send(target);
            self.outstanding.insert(tid, target);
            self.sent += 1;
            burst += 1;
            self.index += 1;
            if self.index < self.plan.targets.len() {
                self.next += self.pace;
            } else {
                self.index = 0;
                self.round += 1;
                if self.round >= self.plan.rounds {
                    self.state = ProbeState::Exhausted;
                } else {
                    self.next = now + self.round_gap;
                }
            }
        }
        if self.state == ProbeState::Running && self.next < now {
            // Late: continue from now at the same pace rather than catching up.
            self.next = now;
        }
    }

    /// A success response with transaction ID `tid` arrived from `from`:
    /// returns `from` if it answers one of our probes (probing then stops).
    pub fn handle_response(&mut self, tid: T, from: SocketAddr) -> Option<SocketAddr> {
        let target = self.outstanding.get(&tid).copied()?;
        if target != from {
            tracing::debug!(%target, %from, "probe answered from another address; taken as the peer's");
        }
        self.outstanding.clear();
        self.state = ProbeState::Succeeded(from);
        Some(from)
    }

    /// Stops sending (a direct path was found some other way).
    pub fn stop(&mut self) {
        if self.state == ProbeState::Running {
            self.state = ProbeState::Stopped;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::Technique;
    use super::*;

    fn plan(n: u16, rounds: u8) -> Plan {
        Plan {
            technique: Technique::Sweep,
            targets: (0..n)
                .map(|i| SocketAddr::from(([198, 51, 100, 7], 20000 + i)))
                .collect(),
            rounds,
        }
    }

    #[test]
    fn paced_rounds_and_never_more_than_planned() {
        let t0 = Instant::now();
        let config = HardNatConfig::default();
        let mut p: Prober<u32> = Prober::new(plan(16, 2), &config, t0);
        let mut sent = Vec::new();
        let mut now = t0;
        let mut id = 0;
        while let Some(t) = p.poll_timeout() {
            now = now.max(t);
            p.handle_timeout(now, |to| {
                sent.push((now, to));
                id += 1;
                id
            });
            assert!(sent.len() <= 32);
        }
        assert_eq!(sent.len(), 32);
        assert_eq!(p.state(), ProbeState::Exhausted);
        // 15 gaps of 4 ms within a round, one round gap of 1 s between them.
        assert_eq!(sent[15].0 - sent[0].0, config.pace * 15);
        assert_eq!(sent[16].0 - sent[15].0, config.round_gap);
        // Late callers get at most a small burst.
        let mut q: Prober<u32> = Prober::new(plan(16, 1), &config, t0);
        let mut n = 0;
        q.handle_timeout(t0 + Duration::from_secs(5), |_| {
            n += 1;
            n
        });
        assert_eq!(n, MAX_BURST as u32);
    }

    #[test]
    fn an_answer_stops_probing_and_others_are_ignored() {
        let t0 = Instant::now();
        let mut p: Prober<u32> = Prober::new(plan(4, 1), &HardNatConfig::default(), t0);
        let mut id = 0;
        p.handle_timeout(t0 + Duration::from_secs(1), |_| {
            id += 1;
            id
        });
        assert_eq!(id, 4);
        assert_eq!(
            p.handle_response(99, "198.51.100.7:20000".parse().unwrap()),
            None
        );
        let hit: SocketAddr = "198.51.100.7:20001".parse().unwrap();
        assert_eq!(p.handle_response(2, hit), Some(hit));
        assert_eq!(p.state(), ProbeState::Succeeded(hit));
        assert_eq!(p.poll_timeout(), None);
        let mut q: Prober<u32> = Prober::new(plan(4, 1), &HardNatConfig::default(), t0);
        q.stop();
        assert_eq!(q.state(), ProbeState::Stopped);
        assert_eq!(q.poll_timeout(), None);
    }
}
