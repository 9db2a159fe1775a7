//! The NAT diagnosis report: one serde type, versioned, shared by the CLI's JSON output,
//! its human rendering (en / ja), support desks and the connection engine.
//!
//! The JSON schema is versioned by [`SCHEMA_VERSION`]; a change that removes or
//! re-types a key bumps it, adding an optional key does not. Every value the probes
//! could not establish is `null` rather than a guess, and [`Report::warnings`] says why.
//!
//! ```
//! use tsunagi::diag::{Behaviour, Report};
//! let mut r = Report::new("stun.example.net:3478");
//! r.local_address = "192.168.1.10:40000".parse().ok();
//! r.mapped_address = "203.0.113.7:40000".parse().ok();
//! r.mapping = Some(Behaviour::EndpointIndependent);
//! r.filtering = Some(Behaviour::AddressAndPortDependent);
//! let json = serde_json::to_string(&r)?;
//! assert!(json.contains(r#""filtering":"address-and-port-dependent""#));
//! assert_eq!(r.classic_name().to_string(), "port-restricted cone");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::hops::PathTrace;

/// The version of the JSON schema written by this crate.
pub const SCHEMA_VERSION: u32 = 1;

/// An RFC 4787 behaviour, used for both mapping (§4.1) and filtering (§5).
///
/// Serialized as `endpoint-independent`, `address-dependent` or
/// `address-and-port-dependent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// The same for every remote endpoint (EIM / EIF).
    EndpointIndependent,
    /// Depends on the remote IP address only (ADM / ADF).
    AddressDependent,
    /// Depends on the remote IP address and port (APDM / APDF).
    AddressAndPortDependent,
}

impl Behaviour {
    /// The RFC 4787 abbreviation, with `M` (mapping) or `F` (filtering) appended by
    /// the caller: `EI`, `AD`, `APD`.
    pub fn abbrev(self) -> &'static str {
        match self {
            Behaviour::EndpointIndependent => "EI",
            Behaviour::AddressDependent => "AD",
            Behaviour::AddressAndPortDependent => "APD",
        }
    }
}

/// How the NAT picks external ports for new mappings (RFC 4787 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortAllocation {
    /// The external port equals the local port (port preservation).
    Preserving,
    /// New mappings take the next port or a small, regular step (predictable).
    Sequential,
    /// New mappings take ports with no visible pattern.
    Random,
}

/// External ports observed during the diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortRange {
    /// The lowest external port seen.
    pub min: u16,
    /// The highest external port seen.
    pub max: u16,
    /// Every external port seen, in the order the mappings were made (duplicates
    /// removed). A handful of samples: the NAT's real range may be wider.
    pub observed: Vec<u16>,
}

/// What the binding-lifetime search (RFC 5780 §4.6) proved.
///
/// A fresh mapping that saw one request and one response was kept idle; it still
/// delivered after `lower_s` and no longer after `upper_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifetimeBracket {
    /// The longest idle time after which the mapping was proven alive (seconds).
    pub lower_s: f64,
    /// The shortest idle time after which it was proven gone (seconds); `null` when it
    /// outlived the search's maximum.
    pub upper_s: Option<f64>,
    /// How many idle trials ran.
    pub trials: u32,
}

/// Native IPv6: filled by the IPv6 probe (`diag::ipv6`); all `null` when not run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ipv6Report {
    /// Whether the STUN server answered over IPv6.
    pub reachable: Option<bool>,
    /// The IPv6 address the server saw (no NAT expected: normally a local address).
    pub address: Option<IpAddr>,
    /// The firewall's filtering of unsolicited inbound IPv6 (RFC 6092 CPEs are
    /// usually address-and-port-dependent).
    pub filtering: Option<Behaviour>,
}

/// One port-mapping protocol's presence, filled by the port-mapping probe
/// (`diag::portmap`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortMappingService {
    /// Whether a gateway answered this protocol; `null` when not probed.
    pub present: Option<bool>,
    /// The external address the gateway reported. On a double NAT this is the
    /// inner NAT's outside address (private or 100.64.0.0/10), not the public one.
    pub external_address: Option<IpAddr>,
}

/// UPnP-IGD, NAT-PMP (RFC 6886) and PCP (RFC 6887) presence.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortMappingReport {
    /// UPnP Internet Gateway Device.
    pub upnp_igd: PortMappingService,
    /// NAT Port Mapping Protocol.
    pub nat_pmp: PortMappingService,
    /// Port Control Protocol.
    pub pcp: PortMappingService,
}

/// A port set inferred from observed external ports, as a MAP-E CE (RFC 7597 §5.1)
/// would use: ports `A·2^(16-a) + PSID·2^m + j`. An inference from a few samples,
/// never a certainty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapeHint {
    /// Candidate PSID offset `a` (bits).
    pub psid_offset: u8,
    /// Candidate PSID length `k` (bits).
    pub psid_len: u8,
    /// Candidate PSID.
    pub psid: u16,
    /// Ports per contiguous block (`2^m`, `m = 16 - a - k`).
    pub block_size: u16,
    /// Usable ports in the whole set (`(2^a - 1) · 2^m`).
    pub port_count: u32,
    /// The first and last port of the block the samples fell into.
    pub block: (u16, u16),
}

/// Everything one NAT diagnosis found. See the module docs for the conventions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The JSON schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The STUN server as the user gave it (`host:port`).
    pub server: String,
    /// The server's address actually used.
    pub server_address: Option<SocketAddr>,
    /// The server's alternate address (RFC 5780 OTHER-ADDRESS); `null` when the server
    /// does not support RFC 5780, in which case mapping and filtering stay unknown.
    pub server_other_address: Option<SocketAddr>,
    /// This machine's address on the main socket.
    pub local_address: Option<SocketAddr>,
    /// The address the server saw the main socket as (server-reflexive); `null` when
    /// UDP to the server failed.
    pub mapped_address: Option<SocketAddr>,
    /// RFC 4787 mapping behaviour; `null` when unknown.
    pub mapping: Option<Behaviour>,
    /// RFC 4787 filtering behaviour; `null` when unknown.
    pub filtering: Option<Behaviour>,
    /// How external ports are chosen; `null` when there were too few samples.
    pub port_allocation: Option<PortAllocation>,
    /// External ports observed.
    pub port_range: Option<PortRange>,
    /// Estimated UDP binding lifetime (the NAT session timer) in seconds: the middle of
    /// [`Report::binding_lifetime`]'s bracket, or its lower bound when no upper bound
    /// was found. `null` when the test was skipped (quick mode) or failed.
    pub binding_lifetime_s: Option<f64>,
    /// What the lifetime search actually proved.
    pub binding_lifetime: Option<LifetimeBracket>,
    /// Whether the NAT loops back packets sent to a mapped address (RFC 4787 §6);
    /// `null` with no NAT or when not tested.
    pub hairpinning: Option<bool>,
    /// The number of NATs between this machine and the server when it could be
    /// established (0 = none); `null` when only a lower bound is known.
    pub nat_layers: Option<u8>,
    /// A proven lower bound on the number of NATs.
    pub nat_layers_at_least: Option<u8>,
    /// Whether a carrier-grade NAT is on the path: an RFC 6598 shared address
    /// (100.64.0.0/10) on the way out, or a DS-Lite AFTR (192.0.0.0/29 softwire);
    /// `null` when it cannot be told.
    pub cgn: Option<bool>,
    /// The routers towards the server, from TTL-limited probes (see `diag::hops`);
    /// `null` when the path was not traced.
    #[serde(default)]
    pub path: Option<PathTrace>,
    /// Native IPv6.
    pub ipv6: Ipv6Report,
    /// The NAT64 prefix discovered (RFC 7050), e.g. `64:ff9b::/96`.
    pub nat64_prefix: Option<String>,
    /// Port-mapping protocols offered by the gateway.
    pub port_mapping: PortMappingReport,
    /// A MAP-E-like port set consistent with the observed ports, if any.
    pub mape_hint: Option<MapeHint>,
    /// Whether the lifetime test was skipped on request.
    pub quick: bool,
    /// Things the user or support should know: tests that failed, inferences that
    /// could not be made.
    pub warnings: Vec<String>,
    /// How long the diagnosis took, in milliseconds.
    pub duration_ms: u64,
}

impl Report {
    /// An empty report for `server`: everything unknown.
    pub fn new(server: &str) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            server: server.to_owned(),
            server_address: None,
            server_other_address: None,
            local_address: None,
            mapped_address: None,
            mapping: None,
            filtering: None,
            port_allocation: None,
            port_range: None,
            binding_lifetime_s: None,
            binding_lifetime: None,
            hairpinning: None,
            nat_layers: None,
            nat_layers_at_least: None,
            cgn: None,
            path: None,
            ipv6: Ipv6Report::default(),
            nat64_prefix: None,
            port_mapping: PortMappingReport::default(),
            mape_hint: None,
            quick: false,
            warnings: Vec::new(),
            duration_ms: 0,
        }
    }

    /// Whether UDP to the STUN server worked at all.
    pub fn udp_works(&self) -> bool {
        self.mapped_address.is_some()
    }

    /// Whether the server saw a different address than the local one (a NAT is on the
    /// path); `None` when unknown.
    pub fn behind_nat(&self) -> Option<bool> {
        let mapped = self.mapped_address?;
        let local = self.local_address?;
        Some(mapped != local)
    }

    /// The report as pretty-printed JSON.
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_keys_and_values() {
        let mut r = Report::new("198.18.0.10:3478");
        r.mapping = Some(Behaviour::AddressDependent);
        r.port_allocation = Some(PortAllocation::Sequential);
        let v: serde_json::Value = serde_json::from_str(&r.to_json_pretty()).unwrap_or_default();
        for key in [
            "schema_version",
            "server",
            "local_address",
            "mapped_address",
            "mapping",
            "filtering",
            "port_allocation",
            "port_range",
            "binding_lifetime_s",
            "binding_lifetime",
            "hairpinning",
            "nat_layers",
            "cgn",
            "ipv6",
            "nat64_prefix",
            "port_mapping",
            "mape_hint",
            "warnings",
            "duration_ms",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["mapping"], "address-dependent");
        assert_eq!(v["filtering"], serde_json::Value::Null);
        assert_eq!(v["port_allocation"], "sequential");
        assert!(v["ipv6"].get("reachable").is_some());
        assert!(v["port_mapping"]["pcp"].get("external_address").is_some());
        let back: Report = serde_json::from_value(v).unwrap_or_else(|_| Report::new(""));
        assert_eq!(back, r);
    }
}
