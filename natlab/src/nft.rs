//! nftables rule sets for the lab's routers: CPE-like firewalls, NAT behaviours, knobs.
//!
//! The techniques and their verification are described in
//! `docs/src/decisions/0003-natlab-design.md`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::topology::{Filtering, Mapping, Nat};

/// How a router treats connections that start on its WAN side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Forward everything (a public host's router).
    Open,
    /// Forward only established/related flows and flows the NAT mapped inbound
    /// (EIF/ADF/port mappings), like a home router's stateful firewall.
    Stateful,
}

/// The router's own input firewall and the forward policy, for IPv4 and IPv6.
pub fn firewall(wan: &str, inbound: Inbound) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table inet natlab_fw {{");
    let _ = writeln!(s, "  chain input {{");
    let _ = writeln!(
        s,
        "    type filter hook input priority filter; policy accept;"
    );
    let _ = writeln!(
        s,
        "    iifname \"{wan}\" ct state established,related accept"
    );
    let _ = writeln!(s, "    iifname \"{wan}\" meta l4proto ipv6-icmp accept");
    let _ = writeln!(s, "    iifname \"{wan}\" ct state new drop");
    let _ = writeln!(s, "  }}");
    if inbound == Inbound::Stateful {
        let _ = writeln!(s, "  chain forward {{");
        let _ = writeln!(
            s,
            "    type filter hook forward priority filter; policy accept;"
        );
        let _ = writeln!(
            s,
            "    iifname \"{wan}\" ct state established,related accept"
        );
        let _ = writeln!(s, "    iifname \"{wan}\" ct status dnat accept");
        let _ = writeln!(s, "    iifname \"{wan}\" drop");
        let _ = writeln!(s, "  }}");
    }
    let _ = writeln!(s, "}}");
    s
}

/// The IPv4 NAPT for `nat` on interface `wan`, with mapping state kept `timeout` long
/// after the last outbound packet (match it to the conntrack UDP timer).
pub fn nat(wan: &str, nat: &Nat, timeout: Duration) -> String {
    let t = timeout.as_secs().max(1);
    let cone = nat.filtering != Filtering::AddressAndPortDependent;
    let adf = nat.filtering == Filtering::AddressDependent;
    let eim_set = nat.mapping == Mapping::EndpointIndependent && nat.port_set.is_some();
    let range = nat
        .port_set
        .map(|(first, count)| format!(" to :{first}-{}", u32::from(first) + u32::from(count) - 1))
        .unwrap_or_default();
    let random = if nat.mapping == Mapping::AddressAndPortDependent {
        " fully-random"
    } else {
        ""
    };

    let mut s = String::new();
    let _ = writeln!(s, "table ip natlab_nat {{");
    if cone {
        // external port -> internal endpoint, learnt from outbound packets after SNAT.
        let _ = writeln!(
            s,
            "  map cone {{ type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout {t}s; }}"
        );
    }
    if adf {
        let _ = writeln!(
            s,
            "  set contacted {{ type ipv4_addr . inet_service; flags dynamic,timeout; timeout {t}s; }}"
        );
    }
    if eim_set {
        // internal endpoint -> external endpoint, so that every destination sees the
        // same port of the set (masquerade alone would pick a new one per destination).
        let _ = writeln!(
            s,
            "  map eim {{ type ipv4_addr . inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout {t}s; }}"
        );
    }
    if cone {
        let _ = writeln!(s, "  chain prerouting {{");
        let _ = writeln!(
            s,
            "    type nat hook prerouting priority dstnat; policy accept;"
        );
        let cond = if adf {
            " ip saddr . udp dport @contacted"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "    iifname \"{wan}\" meta l4proto udp{cond} dnat ip to udp dport map @cone"
        );
        let _ = writeln!(s, "  }}");
    }
    let _ = writeln!(s, "  chain postrouting {{");
    let _ = writeln!(
        s,
        "    type nat hook postrouting priority srcnat; policy accept;"
    );
    if eim_set {
        let _ = writeln!(
            s,
            "    oifname \"{wan}\" meta l4proto udp snat ip to ip saddr . udp sport map @eim"
        );
    }
    if nat.sequential {
        // The counter only runs for new flows: NAT rules see a flow's first packet.
        // `numgen` yields a host-order number that nft does not convert when it
        // becomes a port (ports then step by 256 here), so a map turns the counter
        // into ports, which nft stores in network order.
        let (first, count) = nat.port_set.unwrap_or((30000, 256));
        let count = count.min(256);
        let elements: Vec<String> = (0..count)
            .map(|i| format!("{i} : {}", u32::from(first) + u32::from(i)))
            .collect();
        let _ = writeln!(
            s,
            "    oifname \"{wan}\" meta l4proto udp masquerade to :numgen inc mod {count} map {{ {} }}",
            elements.join(", ")
        );
        let _ = writeln!(s, "    oifname \"{wan}\" masquerade{random}");
    } else if range.is_empty() {
        let _ = writeln!(s, "    oifname \"{wan}\" masquerade{random}");
    } else {
        // A port range needs a transport match; other protocols (ICMP) keep plain NAT.
        for proto in ["udp", "tcp"] {
            let _ = writeln!(
                s,
                "    oifname \"{wan}\" meta l4proto {proto} masquerade{range}{random}"
            );
        }
        let _ = writeln!(s, "    oifname \"{wan}\" masquerade{random}");
    }
    let _ = writeln!(s, "  }}");
    if cone || eim_set {
        // Runs after SNAT (priority srcnat + 10): `udp sport` is the external port here.
        let _ = writeln!(s, "  chain record {{");
        let _ = writeln!(
            s,
            "    type filter hook postrouting priority 110; policy accept;"
        );
        if cone {
            let _ = writeln!(
                s,
                "    oifname \"{wan}\" meta l4proto udp update @cone {{ udp sport : ct original ip saddr . ct original proto-src }}"
            );
        }
        if adf {
            let _ = writeln!(
                s,
                "    oifname \"{wan}\" meta l4proto udp update @contacted {{ ip daddr . udp sport }}"
            );
        }
        if eim_set {
            let _ = writeln!(
                s,
                "    oifname \"{wan}\" meta l4proto udp update @eim {{ ct original ip saddr . ct original proto-src : ip saddr . udp sport }}"
            );
        }
        let _ = writeln!(s, "  }}");
    }
    let _ = writeln!(s, "}}");
    s
}

/// Random loss of forwarded UDP packets, both directions.
pub fn loss(percent: u8) -> String {
    format!(
        "table inet natlab_knobs {{\n  chain forward {{\n    type filter hook forward priority -5; policy accept;\n    meta l4proto udp numgen random mod 100 < {percent} drop\n  }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequential_symmetric_nat_counts_its_udp_ports() {
        let s = nat("wan", &Nat::sequential_symmetric(), Duration::from_secs(30));
        assert!(
            s.contains("udp masquerade to :numgen inc mod 256 map { 0 : 30000, 1 : 30001,"),
            "{s}"
        );
    }

    #[test]
    fn symmetric_port_set_is_a_random_masquerade_into_the_range() {
        let s = nat(
            "wan",
            &Nat::port_set_symmetric(20000, 16),
            Duration::from_secs(30),
        );
        assert!(
            s.contains("udp masquerade to :20000-20015 fully-random"),
            "{s}"
        );
        assert!(!s.contains("@cone"), "{s}");
    }

    #[test]
    fn address_restricted_dnats_only_contacted_addresses() {
        let s = nat("wan", &Nat::address_restricted(), Duration::from_secs(30));
        assert!(s.contains("ip saddr . udp dport @contacted dnat"), "{s}");
        assert!(
            s.contains("update @contacted { ip daddr . udp sport }"),
            "{s}"
        );
    }

    #[test]
    fn port_set_eim_reuses_the_first_mapping() {
        let s = nat(
            "wan",
            &Nat::port_set_eim(20000, 16),
            Duration::from_secs(30),
        );
        assert!(
            s.contains("snat ip to ip saddr . udp sport map @eim"),
            "{s}"
        );
        assert!(s.contains("udp masquerade to :20000-20015\n"), "{s}");
    }
}
