//! How a [`super::Client`] allocates: server, credentials, families, timers.

use std::net::SocketAddr;
use std::time::Duration;

use super::credentials::Credentials;

/// Which relayed address families to ask for (RFC 8656 §7.1, §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RelayFamily {
    /// One IPv4 relayed address (the RFC default: no REQUESTED-ADDRESS-FAMILY).
    #[default]
    V4,
    /// One IPv6 relayed address (REQUESTED-ADDRESS-FAMILY = IPv6).
    V6,
    /// An IPv4 and an IPv6 relayed address (ADDITIONAL-ADDRESS-FAMILY = IPv6). If
    /// the server cannot relay IPv6 (440, or ADDRESS-ERROR-CODE in the success
    /// response), the client keeps the IPv4 allocation and says so in
    /// [`super::Event::Allocated`].
    Dual,
}

/// STUN retransmission over UDP (RFC 8489 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// The first retransmission timeout (RTO); it doubles after each try.
    pub initial_rto: Duration,
    /// How many times a request is sent in all (Rc).
    pub max_transmissions: u32,
    /// After the last transmission, wait this many initial RTOs (Rm) before giving up.
    pub last_wait_factor: u32,
}

impl Default for Retransmit {
    /// RFC 8489's defaults: RTO 500 ms, Rc = 7, Rm = 16 (39.5 s until giving up).
    fn default() -> Retransmit {
        Retransmit {
            initial_rto: Duration::from_millis(500),
            max_transmissions: 7,
            last_wait_factor: 16,
        }
    }
}

impl Retransmit {
    /// How long to wait after transmission number `sent` (1-based) before the next
    /// one, or before giving up after the last one.
    pub(crate) fn wait_after(&self, sent: u32) -> Duration {
        if sent >= self.max_transmissions {
            return self.initial_rto.saturating_mul(self.last_wait_factor);
        }
        let doublings = sent.saturating_sub(1).min(16);
        self.initial_rto.saturating_mul(1u32 << doublings)
    }
}

/// Everything a [`super::Client`] needs to allocate on one TURN server.
///
/// ```
/// use tsunagi::relay::{Config, Credentials, RelayFamily};
///
/// let mut config = Config::new(
///     "127.0.0.1:3478".parse()?,
///     Credentials::new("alice", "secret"),
/// );
/// config.family = RelayFamily::Dual;
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The TURN server's UDP address.
    pub server: SocketAddr,
    /// The long-term credentials (static, or minted from a shared secret).
    pub credentials: Credentials,
    /// Which relayed address families to request.
    pub family: RelayFamily,
    /// The allocation lifetime to ask for; the server may grant less (or more).
    pub lifetime: Duration,
    /// When to refresh the allocation, as a fraction of the granted lifetime
    /// (0.8: a 600 s allocation is refreshed after 480 s).
    pub refresh_fraction: f64,
    /// How often to refresh permissions, which servers keep for 300 s.
    pub permission_refresh: Duration,
    /// How often to refresh channel bindings, which servers keep for 600 s.
    pub channel_refresh: Duration,
    /// Request retransmission.
    pub retransmit: Retransmit,
    /// The SOFTWARE attribute to send, if any.
    pub software: Option<String>,
}

impl Config {
    /// A configuration with RFC defaults: IPv4 relay, a 600 s lifetime refreshed
    /// at 80 %, permissions refreshed every 240 s and channels every 480 s.
    pub fn new(server: SocketAddr, credentials: Credentials) -> Config {
        Config {
            server,
            credentials,
            family: RelayFamily::V4,
            lifetime: Duration::from_secs(600),
            refresh_fraction: 0.8,
            permission_refresh: Duration::from_secs(240),
            channel_refresh: Duration::from_secs(480),
            retransmit: Retransmit::default(),
            software: None,
        }
    }

    /// The delay before refreshing an allocation granted for `lifetime`.
    pub(crate) fn refresh_after(&self, lifetime: Duration) -> Duration {
        let fraction = if self.refresh_fraction.is_finite() {
            self.refresh_fraction.clamp(0.1, 0.95)
        } else {
            0.8
        };
        lifetime.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8489_schedule_gives_up_after_39_5_seconds() {
        let r = Retransmit::default();
        let total: Duration = (1..=7).map(|sent| r.wait_after(sent)).sum();
        assert_eq!(total, Duration::from_millis(39_500));
        assert_eq!(r.wait_after(1), Duration::from_millis(500));
        assert_eq!(r.wait_after(6), Duration::from_millis(16_000));
    }

    #[test]
    fn refresh_fraction_is_clamped() {
        let mut c = Config::new("127.0.0.1:1".parse().unwrap(), Credentials::new("a", "b"));
        c.refresh_fraction = f64::NAN;
        assert_eq!(
            c.refresh_after(Duration::from_secs(100)),
            Duration::from_secs(80)
        );
        c.refresh_fraction = 5.0;
        assert_eq!(
            c.refresh_after(Duration::from_secs(100)),
            Duration::from_secs(95)
        );
    }
}
