//! The binding-lifetime search (RFC 5780 §4.6) as pure arithmetic: which idle times to
//! try next, and what the trials proved.
//!
//! Each trial keeps a *fresh* mapping idle for a while, then asks the server (through
//! RESPONSE-PORT, from the main socket) to answer to that mapping. A fresh mapping per
//! trial matters: an answer that gets through refreshes the mapping, and on Linux a
//! mapping that carries traffic for more than two seconds becomes ASSURED and moves from
//! the short "unreplied" timer (`nf_conntrack_udp_timeout`, 30 s by default) to the long
//! stream timer (`nf_conntrack_udp_timeout_stream`, 120 s). What is measured is the
//! timer of a mapping that saw one request and one response — what a game's mapping
//! gets when it goes quiet right after STUN, and the one keepalives must beat.
//!
//! Trials run in rounds of a few in parallel (one fresh socket each): first an
//! expanding schedule (2, 4, 8 … seconds up to the maximum), then evenly spaced inside
//! the bracket until it is narrower than the resolution.

use std::time::Duration;

/// How the lifetime search is bounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LifetimeConfig {
    /// The longest idle time tried; a mapping alive after it is reported as "at least".
    pub max: Duration,
    /// Trials per round, each on its own short-lived socket (and NAT port).
    pub trials_per_round: u8,
    /// Stop when the bracket is narrower than this, or than `relative_resolution` of
    /// its lower end, whichever is larger.
    pub resolution: Duration,
    /// See `resolution`.
    pub relative_resolution: f64,
}

impl Default for LifetimeConfig {
    fn default() -> LifetimeConfig {
        LifetimeConfig {
            max: Duration::from_secs(180),
            trials_per_round: 3,
            resolution: Duration::from_millis(500),
            relative_resolution: 0.1,
        }
    }
}

/// What the search has proved so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bracket {
    /// Proven alive after this idle time (seconds).
    pub lower: f64,
    /// Proven gone after this idle time (seconds).
    pub upper: Option<f64>,
    /// Trials with a verdict.
    pub trials: u32,
}

impl Bracket {
    pub fn new() -> Bracket {
        Bracket {
            lower: 0.0,
            upper: None,
            trials: 0,
        }
    }

    /// Records a trial: the mapping was (or was not) alive after `idle` seconds. A
    /// verdict that contradicts the bracket (loss, a timer that changed) narrows it to
    /// the trials that agree and is reported by returning `false`.
    pub fn record(&mut self, idle: f64, alive: bool) -> bool {
        self.trials += 1;
        if alive {
            if self.upper.is_some_and(|u| idle >= u) {
                return false;
            }
            self.lower = self.lower.max(idle);
        } else {
            if idle <= self.lower {
                return false;
            }
            self.upper = Some(self.upper.map_or(idle, |u| u.min(idle)));
        }
        true
    }

    /// Whether the search is over.
    pub fn done(&self, cfg: &LifetimeConfig) -> bool {
        let max = cfg.max.as_secs_f64();
        match self.upper {
            None => self.lower >= max * 0.999,
            Some(u) => {
                let res = cfg
                    .resolution
                    .as_secs_f64()
                    .max(self.lower * cfg.relative_resolution);
                u - self.lower <= res
            }
        }
    }

    /// The idle times (seconds) for the next round.
    pub fn next_waits(&self, cfg: &LifetimeConfig) -> Vec<f64> {
        let n = usize::from(cfg.trials_per_round.max(1));
        let max = cfg.max.as_secs_f64();
        match self.upper {
            None => {
                let mut waits: Vec<f64> = (1..16)
                    .map(|k| f64::from(1u32 << k))
                    .filter(|w| *w > self.lower && *w < max)
                    .take(n)
                    .collect();
                if waits.len() < n && self.lower < max {
                    waits.push(max);
                }
                waits
            }
            Some(u) => (1..=n)
                .map(|i| self.lower + (u - self.lower) * i as f64 / (n as f64 + 1.0))
                .collect(),
        }
    }

    /// The estimate: the middle of the bracket, or its lower end when open.
    pub fn estimate(&self) -> Option<f64> {
        match self.upper {
            Some(u) => Some((self.lower + u) / 2.0),
            None => (self.lower > 0.0).then_some(self.lower),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against an exact timer, answering every trial instantly.
    fn search(timer: f64, cfg: &LifetimeConfig) -> (Bracket, f64) {
        let mut b = Bracket::new();
        let mut elapsed = 0.0;
        while !b.done(cfg) {
            let waits = b.next_waits(cfg);
            assert!(!waits.is_empty());
            let mut longest = 0.0f64;
            for w in waits {
                longest = longest.max(w);
                assert!(b.record(w, w < timer));
                if w >= timer {
                    break;
                }
            }
            elapsed += longest;
        }
        (b, elapsed)
    }

    #[test]
    fn finds_short_and_long_timers_within_the_resolution() {
        let cfg = LifetimeConfig::default();
        for timer in [1.3, 5.0, 30.0, 120.0, 179.0] {
            let (b, elapsed) = search(timer, &cfg);
            let est = b.estimate().unwrap();
            assert!((est - timer).abs() <= timer * 0.1, "{timer}: {b:?}");
            assert!(elapsed < 4.0 * cfg.max.as_secs_f64(), "{timer}: {elapsed}");
        }
        let (b, _) = search(500.0, &cfg);
        assert_eq!((b.lower, b.upper), (180.0, None));
    }

    #[test]
    fn contradictions_are_flagged() {
        let mut b = Bracket::new();
        assert!(b.record(4.0, true));
        assert!(b.record(8.0, false));
        assert!(!b.record(9.0, true));
        assert!(!b.record(3.0, false));
        assert_eq!((b.lower, b.upper), (4.0, Some(8.0)));
    }
}
