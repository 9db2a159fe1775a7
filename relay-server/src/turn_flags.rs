//! The TURN command-line flags, as a clap `Args` group the binary flattens into
//! its own (so `config.rs` derives TOML keys and environment variables for them
//! like for every other flag), and their conversion to a [`TurnConfig`].
//!
//! TURN is on when at least one credential is configured (`--user` or
//! `--auth-secret`); without credentials the server is a STUN server only, since
//! it never relays for unauthenticated clients.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::policy::Cidr;
use crate::turn::TurnConfig;

/// TURN flags.
#[derive(Debug, Clone, clap::Args)]
pub struct TurnFlags {
    /// REALM for long-term credentials.
    #[arg(long, default_value = "tsunagi")]
    pub realm: String,

    /// A static TURN user, `NAME:PASS`; repeat for more.
    #[arg(long = "user", value_name = "NAME:PASS")]
    pub users: Vec<String>,

    /// A shared secret for coturn-style REST credentials (username
    /// `EXPIRY:NAME`, password base64(HMAC-SHA1(secret, username))); repeat to
    /// accept several while rotating.
    #[arg(long = "auth-secret", value_name = "SECRET")]
    pub auth_secrets: Vec<String>,

    /// The IP to relay from, one per family (e.g. one IPv4 and one IPv6 for
    /// family bridging). Default: the specific --listen IPs.
    #[arg(long = "relay-ip", value_name = "IP")]
    pub relay_ips: Vec<IpAddr>,

    /// Lowest relay port. With --max-port 0 too, the OS picks relay ports.
    #[arg(long, default_value_t = 49152)]
    pub min_port: u16,

    /// Highest relay port.
    #[arg(long, default_value_t = 65535)]
    pub max_port: u16,

    /// Open a peer range that is denied by default (loopback, private, …), e.g.
    /// `127.0.0.0/8` for tests or `10.0.0.0/8` for a private deployment; repeat
    /// for more.
    #[arg(long = "allow-peer", value_name = "CIDR")]
    pub allow_peers: Vec<Cidr>,

    /// Allocations per user (REST credentials count by NAME), each port
    /// reserved by EVEN-PORT counting as one; 0 = unlimited.
    #[arg(long, default_value_t = 32)]
    pub user_quota: u32,

    /// Allocations per client IP, each reserved port counting as one;
    /// 0 = unlimited.
    #[arg(long, default_value_t = 32)]
    pub ip_quota: u32,

    /// Allocations in total, reserved ports included.
    #[arg(long, default_value_t = 10_000)]
    pub max_allocations: usize,

    /// Bandwidth per allocation in bytes per second, both directions together;
    /// excess datagrams are dropped. 0 = unlimited.
    #[arg(long, value_name = "BYTES", default_value_t = 2_000_000)]
    pub max_bytes_per_sec: u64,

    /// How long a nonce stays valid before 438 Stale Nonce, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub nonce_lifetime: u64,
}

/// Why the TURN flags do not make a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnFlagsError {
    /// `--user` without a `:`.
    #[error("--user {0:?} needs the form NAME:PASS")]
    BadUser(String),
    /// Empty name or password.
    #[error("--user {0:?}: name and password must not be empty")]
    EmptyUser(String),
    /// The port range is backwards or half zero.
    #[error(
        "--min-port {min} and --max-port {max} do not make a range; give min <= max, or both 0 to let the OS choose"
    )]
    BadPortRange {
        /// --min-port.
        min: u16,
        /// --max-port.
        max: u16,
    },
    /// No IP to relay from.
    #[error(
        "TURN needs an IP to relay from: pass --relay-ip (the --listen addresses are wildcards)"
    )]
    NoRelayIp,
    /// Two relay IPs of one family.
    #[error("--relay-ip {0} and {1} are of the same family; give at most one IPv4 and one IPv6")]
    SameFamily(IpAddr, IpAddr),
    /// A wildcard relay IP.
    #[error("--relay-ip {0} is a wildcard; give the specific IP peers can reach")]
    Unspecified(IpAddr),
    /// The realm is too long for small 401 responses.
    #[error("--realm is {0} bytes; keep it at most 64 so unauthenticated answers stay small")]
    LongRealm(usize),
}

impl TurnFlags {
    /// The TURN configuration, or `None` when no credentials are configured.
    /// `listen` supplies the relay IPs when `--relay-ip` is not given. The
    /// driver adds the bound listening addresses to `TurnConfig::listening`.
    pub fn to_config(&self, listen: &[SocketAddr]) -> Result<Option<TurnConfig>, TurnFlagsError> {
        if self.users.is_empty() && self.auth_secrets.is_empty() {
            return Ok(None);
        }
        let mut users = HashMap::new();
        for user in &self.users {
            let (name, pass) = user
                .split_once(':')
                .ok_or_else(|| TurnFlagsError::BadUser(user.clone()))?;
            if name.is_empty() || pass.is_empty() {
                return Err(TurnFlagsError::EmptyUser(user.clone()));
            }
            users.insert(name.to_string(), pass.to_string());
        }
        if self.realm.len() > 64 {
            return Err(TurnFlagsError::LongRealm(self.realm.len()));
        }
        let relay_ports = match (self.min_port, self.max_port) {
            (0, 0) => None,
            (min, max) if min == 0 || min > max => {
                return Err(TurnFlagsError::BadPortRange { min, max });
            }
            (min, max) => Some(min..=max),
        };
        let mut relay_ips = self.relay_ips.clone();
        if relay_ips.is_empty() {
            for address in listen {
                let ip = address.ip();
                if !ip.is_unspecified() && !relay_ips.iter().any(|r| r.is_ipv4() == ip.is_ipv4()) {
                    relay_ips.push(ip);
                }
            }
        }
        if relay_ips.is_empty() {
            return Err(TurnFlagsError::NoRelayIp);
        }
        for (i, a) in relay_ips.iter().enumerate() {
            if a.is_unspecified() {
                return Err(TurnFlagsError::Unspecified(*a));
            }
            if let Some(b) = relay_ips
                .iter()
                .skip(i + 1)
                .find(|b| b.is_ipv4() == a.is_ipv4())
            {
                return Err(TurnFlagsError::SameFamily(*a, *b));
            }
        }
        Ok(Some(TurnConfig {
            realm: self.realm.clone(),
            users,
            auth_secrets: self.auth_secrets.clone(),
            relay_ips,
            relay_ports,
            allowed_peers: self.allow_peers.clone(),
            user_quota: self.user_quota,
            ip_quota: self.ip_quota,
            max_allocations: self.max_allocations,
            max_bytes_per_sec: self.max_bytes_per_sec,
            nonce_lifetime: Duration::from_secs(self.nonce_lifetime),
            ..TurnConfig::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        turn: TurnFlags,
    }

    fn parse(args: &[&str]) -> TurnFlags {
        Cli::parse_from(std::iter::once("x").chain(args.iter().copied())).turn
    }

    #[test]
    fn flags_to_config() {
        let listen: Vec<SocketAddr> = vec!["127.0.0.1:3478".parse().unwrap()];
        assert!(parse(&[]).to_config(&listen).unwrap().is_none());
        let c = parse(&[
            "--user",
            "a:b:c",
            "--allow-peer",
            "127.0.0.0/8",
            "--min-port",
            "0",
            "--max-port",
            "0",
        ])
        .to_config(&listen)
        .unwrap()
        .unwrap();
        assert_eq!(c.users.get("a").map(String::as_str), Some("b:c"));
        assert_eq!(c.relay_ips, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.relay_ports, None);
        let wildcard: Vec<SocketAddr> = vec!["0.0.0.0:3478".parse().unwrap()];
        assert_eq!(
            parse(&["--auth-secret", "s"])
                .to_config(&wildcard)
                .unwrap_err(),
            TurnFlagsError::NoRelayIp
        );
        assert_eq!(
            parse(&["--user", "ab"]).to_config(&listen).unwrap_err(),
            TurnFlagsError::BadUser("ab".into())
        );
        assert!(matches!(
            parse(&["--user", "a:b", "--min-port", "5", "--max-port", "4"]).to_config(&listen),
            Err(TurnFlagsError::BadPortRange { .. })
        ));
        assert!(matches!(
            parse(&[
                "--user",
                "a:b",
                "--relay-ip",
                "1.2.3.4",
                "--relay-ip",
                "1.2.3.5"
            ])
            .to_config(&listen),
            Err(TurnFlagsError::SameFamily(..))
        ));
    }
}
