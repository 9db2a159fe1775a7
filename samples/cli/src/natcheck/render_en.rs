//! English words for the human report.

use tsunagi::diag::{
    Behaviour, ClassicName, OpenModerateStrict, PortAllocation, PortMappingService, Report,
};

use super::render::{Field, Section, Text, secs};
use super::verdict::{Advice, Headline, Hosting, Ipv6Direct, PeerKind, SDK_KEEPALIVE_S};

/// English.
#[derive(Debug, Clone, Copy)]
pub struct English;

impl Text for English {
    fn title(&self, r: &Report) -> String {
        let address = r
            .server_address
            .filter(|a| a.to_string() != r.server)
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        let quick = if r.quick { ", quick check" } else { "" };
        format!(
            "Tsunagi NAT check: server {}{address}, {} s{quick}",
            r.server,
            secs(r.duration_ms as f64 / 1000.0)
        )
    }

    fn section(&self, s: Section) -> &'static str {
        match s {
            Section::Verdict => "VERDICT",
            Section::Details => "DETAILS",
            Section::Consoles => "Console-style labels (approximations of how consoles label it):",
            Section::Advice => "WHAT YOU CAN DO",
            Section::Notes => "NOTES FROM THE CHECK",
        }
    }

    fn field(&self, f: Field) -> &'static str {
        match f {
            Field::Mapping => "Mapping (RFC 4787)",
            Field::Filtering => "Filtering (RFC 4787)",
            Field::Classic => "Classic NAT type",
            Field::Xbox => "Xbox-style",
            Field::PlayStation => "PlayStation-style",
            Field::Switch => "Switch-style",
            Field::Addresses => "Addresses",
            Field::Timer => "Session timer",
            Field::Ports => "Ports",
            Field::MapE => "MAP-E port set",
            Field::Layers => "NAT layers",
            Field::Cgn => "Carrier-grade NAT",
            Field::Hairpin => "Hairpinning",
            Field::Ipv6 => "IPv6",
            Field::Nat64 => "NAT64",
            Field::Upnp => "UPnP-IGD",
            Field::NatPmp => "NAT-PMP",
            Field::Pcp => "PCP",
        }
    }

    fn headline(&self, h: Headline) -> &'static str {
        match h {
            Headline::Unreachable => {
                "The STUN server did not answer over UDP, so nothing could be measured."
            }
            Headline::Ipv6Only => {
                "IPv6 works but the server did not answer over IPv4: IPv6 players connect directly; IPv4-only players come through the relay (or NAT64)."
            }
            Headline::Unknown => {
                "Your NAT could not be fully identified: some results below are unknown."
            }
            Headline::Open => "Open: players can reach this machine directly. P2P games work.",
            Headline::AllPeers => {
                "Good: every kind of player can connect to you directly (with hole punching)."
            }
            Headline::MostPeers => {
                "Mostly fine: direct with most players; players behind a symmetric NAT go through the relay."
            }
            Headline::FewPeers => {
                "Restrictive (symmetric NAT): direct only with players behind full-cone or address-restricted NATs; the others go through the relay."
            }
        }
    }

    fn hosting_label(&self) -> &'static str {
        "Host a game?"
    }

    fn hosting(&self, h: Hosting) -> &'static str {
        match h {
            Hosting::Yes => "yes: incoming players reach you directly, even without hole punching",
            Hosting::WithHolePunching => {
                "yes, with games that punch holes (Tsunagi does); others need a port forward"
            }
            Hosting::Partly => "yes, but players behind a symmetric NAT come through the relay",
            Hosting::Poorly => "better let another player host; many players would need the relay",
            Hosting::Unknown => "unknown",
        }
    }

    fn direct_label(&self) -> &'static str {
        "Direct P2P with players behind:"
    }

    fn peer(&self, k: PeerKind) -> &'static str {
        match k {
            PeerKind::FullCone => "full cone NAT",
            PeerKind::AddressRestricted => "address-restricted NAT",
            PeerKind::PortRestricted => "port-restricted NAT",
            PeerKind::Symmetric => "symmetric NAT",
        }
    }

    fn direct(&self, d: Option<bool>) -> &'static str {
        match d {
            Some(true) => "direct",
            Some(false) => "no: through the relay",
            None => "unknown",
        }
    }

    fn ipv6_peer(&self) -> &'static str {
        "IPv6 players"
    }

    fn ipv6_direct(&self, d: Ipv6Direct) -> &'static str {
        match d {
            Ipv6Direct::Yes => "direct over IPv6 (no NAT involved)",
            Ipv6Direct::No => "no IPv6 here: IPv6-only players come through the relay",
            Ipv6Direct::Unknown => "unknown (IPv6 not tested)",
        }
    }

    fn relayed(&self, kinds: &[PeerKind], ipv6: Ipv6Direct) -> String {
        let mut who = Vec::new();
        if !kinds.is_empty() {
            let nats: Vec<&str> = kinds.iter().map(|&k| self.peer(k)).collect();
            who.push(format!("players behind {}", nats.join(" or ")));
        }
        if ipv6 == Ipv6Direct::No {
            who.push("IPv6-only players".to_owned());
        }
        if who.is_empty() {
            "Through the relay: nobody known (it stays as a fallback).".to_owned()
        } else {
            format!(
                "Through the relay (works, a little more latency): {}.",
                who.join("; ")
            )
        }
    }

    fn behaviour(&self, b: Behaviour, filtering: bool) -> String {
        let abbrev = format!("{}{}", b.abbrev(), if filtering { "F" } else { "M" });
        let gloss = match (b, filtering) {
            (Behaviour::EndpointIndependent, false) => "one external address for every destination",
            (Behaviour::AddressDependent, false) => {
                "a new external address for each destination IP"
            }
            (Behaviour::AddressAndPortDependent, false) => {
                "a new external address for each destination IP and port"
            }
            (Behaviour::EndpointIndependent, true) => "anyone may send to your mapped address",
            (Behaviour::AddressDependent, true) => {
                "only IPs you have sent to may send back (any port)"
            }
            (Behaviour::AddressAndPortDependent, true) => {
                "only the exact IP and port you sent to may send back"
            }
        };
        let name = match b {
            Behaviour::EndpointIndependent => "endpoint-independent",
            Behaviour::AddressDependent => "address-dependent",
            Behaviour::AddressAndPortDependent => "address-and-port-dependent",
        };
        format!("{name} ({abbrev}): {gloss}")
    }

    fn classic(&self, c: ClassicName) -> &'static str {
        match c {
            ClassicName::OpenInternet => "open internet (no NAT, no firewall)",
            ClassicName::SymmetricUdpFirewall => "no NAT, behind a filtering firewall",
            ClassicName::FullCone => "full cone",
            ClassicName::AddressRestrictedCone => "address-restricted cone",
            ClassicName::PortRestrictedCone => "port-restricted cone",
            ClassicName::Symmetric => "symmetric",
            ClassicName::Blocked => "UDP blocked (no answer)",
            ClassicName::Unknown => "unknown",
        }
    }

    fn xbox(&self, l: OpenModerateStrict) -> &'static str {
        match l {
            OpenModerateStrict::Open => "Open",
            OpenModerateStrict::Moderate => "Moderate",
            OpenModerateStrict::Strict => "Strict",
        }
    }

    fn playstation(&self, t: u8) -> String {
        format!("Type {t}")
    }

    fn switch(&self, c: char) -> String {
        format!("NAT type {c}")
    }

    fn value(&self, f: Field, r: &Report, cancelled: bool) -> Option<String> {
        match f {
            Field::Addresses => {
                let local = r.local_address?;
                let mapped = r.mapped_address?;
                Some(if local == mapped {
                    format!("{local}, seen unchanged by the server (no NAT)")
                } else {
                    format!("local {local}, seen by the server as {mapped}")
                })
            }
            Field::Timer => timer(r, cancelled),
            Field::Ports => {
                let alloc = r.port_allocation.map(|a| match a {
                    PortAllocation::Preserving => "preserving (external port = local port)",
                    PortAllocation::Sequential => "sequential (predictable)",
                    PortAllocation::Random => "random",
                });
                let range = r.port_range.as_ref().map(|p| {
                    format!(
                        "observed {}-{} ({} distinct)",
                        p.min,
                        p.max,
                        p.observed.len()
                    )
                });
                match (alloc, range) {
                    (None, None) => None,
                    (a, r) => Some(format!(
                        "allocation {}; {}",
                        a.unwrap_or("unknown (too few samples)"),
                        r.unwrap_or_else(|| "no range observed".to_owned())
                    )),
                }
            }
            Field::MapE => match &r.mape_hint {
                Some(h) => Some(format!(
                    "likely: {} usable ports in blocks of {} (PSID {}, PSID length {}, offset {}); \
                     block in use {}-{}. An inference from a few ports, not a certainty",
                    h.port_count,
                    h.block_size,
                    h.psid,
                    h.psid_len,
                    h.psid_offset,
                    h.block.0,
                    h.block.1
                )),
                None => r
                    .port_range
                    .as_ref()
                    .map(|_| "no port-set pattern seen".to_owned()),
            },
            Field::Layers => match (r.nat_layers, r.nat_layers_at_least) {
                (Some(0), _) => Some("none: this machine has a public address".to_owned()),
                (Some(1), _) => Some("1".to_owned()),
                (Some(n), _) => Some(format!("{n} (double NAT: several NATs in a row)")),
                (None, Some(n)) => Some(format!("at least {n}")),
                (None, None) => None,
            },
            Field::Cgn => r.cgn.map(|c| {
                if c {
                    "yes: your ISP's NAT shares a public IPv4 address among customers"
                } else {
                    "no"
                }
                .to_owned()
            }),
            Field::Hairpin if r.behind_nat() == Some(false) => {
                Some("not applicable (no NAT)".to_owned())
            }
            Field::Hairpin => r.hairpinning.map(|h| {
                if h {
                    "yes: players on your own network can reach you at your public address"
                } else {
                    "no: players on the same home network must connect by local address"
                }
                .to_owned()
            }),
            Field::Ipv6 => {
                let reachable = r.ipv6.reachable?;
                if !reachable {
                    return Some("no IPv6 connectivity to the server".to_owned());
                }
                let address = r
                    .ipv6
                    .address
                    .map(|a| format!(" from {a}"))
                    .unwrap_or_default();
                let firewall = match r.ipv6.filtering {
                    Some(Behaviour::EndpointIndependent) => "no inbound filtering".to_owned(),
                    Some(b) => format!("firewall filters unsolicited packets ({}F)", b.abbrev()),
                    None => match super::render::reason(r, f) {
                        Some(why) => format!("firewall filtering unknown ({why})"),
                        None => "firewall filtering unknown".to_owned(),
                    },
                };
                Some(format!("reachable{address}; {firewall}"))
            }
            Field::Nat64 => match &r.nat64_prefix {
                Some(p) => Some(format!(
                    "prefix {p} (an IPv6-only network translating to IPv4)"
                )),
                None if super::render::reason(r, f).is_some() => None,
                None => Some("none found".to_owned()),
            },
            _ => None,
        }
    }

    fn service(&self, s: &PortMappingService) -> String {
        match (s.present, s.external_address) {
            (Some(true), Some(a)) => format!("present, external address {a}"),
            (Some(true), None) => "present".to_owned(),
            (Some(false), _) => "no answer (off or absent)".to_owned(),
            (None, _) => "not probed".to_owned(),
        }
    }

    fn advice(&self, a: &Advice) -> String {
        match a {
            Advice::CheckUdp => "Check the server address and that UDP is allowed out (firewall, \
                 company or school network). Then run the check again."
                .to_owned(),
            Advice::UseIpv6 => "IPv6 is available: games that use IPv6 connect directly to other \
                 IPv6 players, with no NAT in the way. Tsunagi tries IPv6 first."
                .to_owned(),
            Advice::EnableIpv6 => "No IPv6 here. If your ISP offers IPv6 (IPoE), enabling it on \
                 your router lets IPv6 games connect directly."
                .to_owned(),
            Advice::SymmetricMapE { ports } => format!(
                "Your router shares one IPv4 address with other customers (a MAP-E-like port set \
                 of {ports} ports) and its NAT is symmetric. Ask your ISP about a fixed IP \
                 option, or rely on the relay (Tsunagi falls back to it automatically)."
            ),
            Advice::Symmetric => "Your NAT is symmetric. Look for a router setting or firmware \
                 update for \"full cone\" / endpoint-independent NAT, or ask your ISP; \
                 otherwise the relay carries those games."
                .to_owned(),
            Advice::Cgn => "Your ISP puts you behind a carrier-grade NAT: port forwarding and \
                 UPnP on your own router cannot open it. Ask your ISP for a global IPv4 \
                 address (fixed IP option), or use IPv6."
                .to_owned(),
            Advice::DsLite => "Your IPv4 runs through a DS-Lite tunnel to your ISP's AFTR, \
                 which does the NAT and shares the address: ports cannot be forwarded, and \
                 UPnP cannot open it. IPv6 is native: IPv6 games connect directly."
                .to_owned(),
            Advice::DoubleNat { layers } => format!(
                "{layers} NATs in a row (double NAT): put one router in bridge or \
                 access-point mode so only one does NAT."
            ),
            Advice::PortMappingPresent { inner: false } => "Your router offers automatic port \
                 opening (UPnP / NAT-PMP / PCP) and it is enabled: games may use it. Tsunagi \
                 uses it when present, never requires it."
                .to_owned(),
            Advice::PortMappingPresent { inner: true } => "Your router offers UPnP / NAT-PMP / \
                 PCP, but its external address is not public: ports it opens stay behind the \
                 next NAT, so it does not help incoming players."
                .to_owned(),
            Advice::PortMappingAbsent => "No UPnP / NAT-PMP / PCP answered (disabled or \
                 absent). Enabling UPnP on the router may help other games; Tsunagi does not \
                 need it."
                .to_owned(),
            Advice::Keepalive {
                timer_s,
                at_least,
                keepalive_s,
            } => {
                let sdk = if *keepalive_s >= SDK_KEEPALIVE_S {
                    format!("; Tsunagi sends keepalives every {SDK_KEEPALIVE_S} s, well within it")
                } else {
                    format!(
                        "; Tsunagi's default of {SDK_KEEPALIVE_S} s is too slow here: set \
                         keep_alive to {keepalive_s} s"
                    )
                };
                if *at_least {
                    format!(
                        "Your NAT keeps a silent UDP session for at least {} s (the longest \
                         idle time tried): keepalives every {keepalive_s} s are safe{sdk}.",
                        secs(*timer_s)
                    )
                } else {
                    format!(
                        "Your NAT forgets a silent UDP session after about {} s: a game must \
                         send something at least every {keepalive_s} s or it is \
                         disconnected{sdk}.",
                        secs(*timer_s)
                    )
                }
            }
            Advice::FewPorts { ports } => format!(
                "Only about {ports} ports are yours: apps that open many connections can run \
                 out and then fail silently. Tsunagi uses one port for all peers."
            ),
            Advice::Nat64 => "This is an IPv6-only network with NAT64: IPv4-only games reach \
                 IPv4 servers through it, and players with IPv4 only come through the relay."
                .to_owned(),
            Advice::RunAgain => "Some results are unknown: the server may not support RFC 5780 \
                 (it needs a second IP address), or packets were lost. Try another server or \
                 run the check again."
                .to_owned(),
            Advice::NothingToDo => "Nothing to do: direct connections are not limited by your \
                 network."
                .to_owned(),
        }
    }

    fn unknown(&self, reason: Option<&str>) -> String {
        match reason {
            Some(r) => format!("unknown ({r})"),
            None => "unknown (the check could not establish it)".to_owned(),
        }
    }
}

fn timer(r: &Report, cancelled: bool) -> Option<String> {
    let b = r.binding_lifetime.as_ref();
    if cancelled {
        return Some(match b {
            Some(b) if b.lower_s > 0.0 => format!(
                "cancelled: still alive after {} s idle, the limit was not found",
                secs(b.lower_s)
            ),
            _ => "cancelled before a result".to_owned(),
        });
    }
    if r.quick && b.is_none() {
        return Some("not measured (quick check; run without --quick)".to_owned());
    }
    if b.is_none()
        && r.behind_nat() == Some(false)
        && r.filtering == Some(Behaviour::EndpointIndependent)
    {
        return Some("not applicable (no NAT or firewall: nothing times out)".to_owned());
    }
    let b = b?;
    Some(match b.upper_s {
        Some(upper) => format!(
            "about {} s (alive after {} s idle, gone after {} s; {} trials)",
            secs(r.binding_lifetime_s.unwrap_or((b.lower_s + upper) / 2.0)),
            secs(b.lower_s),
            secs(upper),
            b.trials
        ),
        None => format!(
            "at least {} s (still alive after the longest idle time tried; {} trials)",
            secs(b.lower_s),
            b.trials
        ),
    })
}
