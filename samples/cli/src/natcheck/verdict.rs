//! What a [`Report`] means for a player, independent of language: the headline, whether
//! this machine can host, which kinds of peers connect directly, and what to do.
//!
//! Everything here is derived from the report's RFC 4787 terms through
//! [`NatProfile::can_connect_directly`]; when a term is unknown, a conclusion is drawn
//! only if it holds for every value the unknown term could take. Nothing is guessed.

use std::net::IpAddr;

use tsunagi::diag::{Behaviour, NatProfile, Report};

/// The four classic NAT types a peer can have, in the order of the mission's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// EIM + EIF.
    FullCone,
    /// EIM + ADF.
    AddressRestricted,
    /// EIM + APDF.
    PortRestricted,
    /// APDM + APDF.
    Symmetric,
}

impl PeerKind {
    /// All four, in table order.
    pub const ALL: [PeerKind; 4] = [
        PeerKind::FullCone,
        PeerKind::AddressRestricted,
        PeerKind::PortRestricted,
        PeerKind::Symmetric,
    ];

    fn profile(self) -> NatProfile {
        use Behaviour::*;
        let (mapping, filtering) = match self {
            PeerKind::FullCone => (EndpointIndependent, EndpointIndependent),
            PeerKind::AddressRestricted => (EndpointIndependent, AddressDependent),
            PeerKind::PortRestricted => (EndpointIndependent, AddressAndPortDependent),
            PeerKind::Symmetric => (AddressAndPortDependent, AddressAndPortDependent),
        };
        NatProfile { mapping, filtering }
    }
}

/// The one-sentence summary shown first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headline {
    /// No answer over UDP: nothing can be said about the NAT.
    Unreachable,
    /// No answer over IPv4, but IPv6 works: an IPv6-only network.
    Ipv6Only,
    /// Mapping or filtering unknown and compatibility cannot be decided.
    Unknown,
    /// Unsolicited packets get in (no NAT and no filter, or EIM + EIF).
    Open,
    /// Every kind of peer connects directly, with hole punching.
    AllPeers,
    /// All but symmetric-NAT peers connect directly.
    MostPeers,
    /// Only full-cone and address-restricted peers connect directly.
    FewPeers,
}

/// Whether this machine can host a game (accept incoming players).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosting {
    /// Yes, even for games that wait for unsolicited connections.
    Yes,
    /// Yes for games that punch holes (as Tsunagi does); others need a port forward.
    WithHolePunching,
    /// Yes, but some players come through the relay.
    Partly,
    /// Only a minority of players can connect directly.
    Poorly,
    /// Not known.
    Unknown,
}

/// Direct IPv6 between players.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Direct {
    /// Reachable: direct with other IPv6 players (no NAT on the way).
    Yes,
    /// No IPv6 here: IPv6-only players come through the relay (or NAT64).
    No,
    /// Not tested or not established.
    Unknown,
}

/// One piece of specific advice.
#[derive(Debug, Clone, PartialEq)]
pub enum Advice {
    /// UDP to the server got no answer.
    CheckUdp,
    /// IPv6 works: IPv6 games connect directly.
    UseIpv6,
    /// No IPv6: ask the ISP / enable it on the router.
    EnableIpv6,
    /// Symmetric NAT that looks like a MAP-E CE with a port set of this many ports.
    SymmetricMapE {
        /// Ports in the inferred set.
        ports: u32,
    },
    /// Symmetric NAT, no MAP-E hint.
    Symmetric,
    /// A carrier-grade NAT is on the path.
    Cgn,
    /// DS-Lite (RFC 6333): the local IPv4 address is a B4 address (192.0.0.0/29) and
    /// the ISP's AFTR does the NAT.
    DsLite,
    /// Two or more NATs, not identified as CGN.
    DoubleNat {
        /// How many (or at least how many).
        layers: u8,
    },
    /// UPnP / NAT-PMP / PCP answered; `inner` when the external address it gave is not
    /// public (it can only open the inner NAT).
    PortMappingPresent {
        /// The external address is private or shared (100.64/10).
        inner: bool,
    },
    /// No port-mapping protocol answered on a restrictive NAT.
    PortMappingAbsent,
    /// A session timer; keepalives should come at least every `keepalive_s` seconds.
    Keepalive {
        /// The measured (estimated) timer, or its proven lower bound.
        timer_s: f64,
        /// `timer_s` is only a lower bound: the mapping outlived the longest idle time
        /// tried.
        at_least: bool,
        /// The recommended largest keepalive interval.
        keepalive_s: u32,
    },
    /// A small MAP-E-like port set: avoid apps that burn ports.
    FewPorts {
        /// Ports in the inferred set.
        ports: u32,
    },
    /// NAT64 is in use: IPv4-only games reach servers through it.
    Nat64,
    /// Some results are unknown: run the full check, or another server.
    RunAgain,
    /// Nothing limits direct connections.
    NothingToDo,
}

/// Tsunagi's default keepalive interval (`SessionConfig::keep_alive`), in seconds.
pub const SDK_KEEPALIVE_S: u32 = 5;

/// Everything the renderers need beyond the report itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The summary.
    pub headline: Headline,
    /// Hosting.
    pub hosting: Hosting,
    /// Direct connection with each classic peer type: `None` when unknown.
    pub peers: [(PeerKind, Option<bool>); 4],
    /// Direct IPv6.
    pub ipv6: Ipv6Direct,
    /// What to do, most important first.
    pub advice: Vec<Advice>,
}

const BEHAVIOURS: [Behaviour; 3] = [
    Behaviour::EndpointIndependent,
    Behaviour::AddressDependent,
    Behaviour::AddressAndPortDependent,
];

/// Whether this machine connects directly with `peer`: `Some` only when the answer is
/// the same for every value an unknown behaviour could take.
pub fn direct_with(report: &Report, peer: PeerKind) -> Option<bool> {
    if !report.udp_works() {
        // Nothing was measured: not a failure, just unknown.
        return None;
    }
    let options = |b: Option<Behaviour>| b.map_or(BEHAVIOURS.to_vec(), |b| vec![b]);
    let mut answers = Vec::new();
    for mapping in options(report.mapping) {
        for filtering in options(report.filtering) {
            let me = NatProfile { mapping, filtering };
            answers.push(me.can_connect_directly(&peer.profile()));
        }
    }
    let first = *answers.first()?;
    answers.iter().all(|&a| a == first).then_some(first)
}

/// Whether an address is public (not private, shared 100.64/10, loopback …).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let shared = o[0] == 100 && (o[1] & 0xc0) == 64;
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || shared)
        }
        // Global unicast is 2000::/3.
        IpAddr::V6(v6) => (v6.segments()[0] & 0xe000) == 0x2000,
    }
}

/// The keepalive interval to recommend for a timer: half of it, at least 1 s.
pub fn keepalive_for(timer_s: f64) -> u32 {
    let half = (timer_s / 2.0).floor();
    if half.is_finite() && half >= 1.0 {
        half.min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

impl Verdict {
    /// Derives the verdict from a report. `cancelled`: the user stopped the check, so
    /// a partial session-timer search proves nothing about the timer's upper end.
    pub fn of(report: &Report, cancelled: bool) -> Verdict {
        let peers = PeerKind::ALL.map(|k| (k, direct_with(report, k)));
        let direct: Option<Vec<bool>> = peers.iter().map(|(_, d)| *d).collect();
        let open = report.mapping == Some(Behaviour::EndpointIndependent)
            && report.filtering == Some(Behaviour::EndpointIndependent);
        let (headline, hosting) = if !report.udp_works() && report.ipv6.reachable == Some(true) {
            (Headline::Ipv6Only, Hosting::Unknown)
        } else if !report.udp_works() {
            (Headline::Unreachable, Hosting::Unknown)
        } else {
            match direct.map(|d| d.iter().filter(|&&ok| ok).count()) {
                None => (Headline::Unknown, Hosting::Unknown),
                Some(4) if open => (Headline::Open, Hosting::Yes),
                Some(4) => (Headline::AllPeers, Hosting::WithHolePunching),
                Some(3) => (Headline::MostPeers, Hosting::Partly),
                Some(_) => (Headline::FewPeers, Hosting::Poorly),
            }
        };
        let ipv6 = match report.ipv6.reachable {
            Some(true) => Ipv6Direct::Yes,
            Some(false) => Ipv6Direct::No,
            None => Ipv6Direct::Unknown,
        };
        let advice = advice(report, headline, ipv6, cancelled);
        Verdict {
            headline,
            hosting,
            peers,
            ipv6,
            advice,
        }
    }

    /// The peer kinds whose players will come through the relay (known failures only).
    pub fn relayed(&self) -> Vec<PeerKind> {
        self.peers
            .iter()
            .filter(|(_, d)| *d == Some(false))
            .map(|(k, _)| *k)
            .collect()
    }
}

fn advice(report: &Report, headline: Headline, ipv6: Ipv6Direct, cancelled: bool) -> Vec<Advice> {
    let mut out = Vec::new();
    if matches!(headline, Headline::Unreachable | Headline::Ipv6Only) {
        out.push(Advice::CheckUdp);
    }
    match ipv6 {
        Ipv6Direct::Yes => out.push(Advice::UseIpv6),
        Ipv6Direct::No if headline != Headline::Open => out.push(Advice::EnableIpv6),
        _ => {}
    }
    let dependent = report
        .mapping
        .is_some_and(|m| m != Behaviour::EndpointIndependent);
    if dependent {
        match &report.mape_hint {
            Some(h) => out.push(Advice::SymmetricMapE {
                ports: h.port_count,
            }),
            None => out.push(Advice::Symmetric),
        }
    }
    if is_ds_lite(report) {
        out.push(Advice::DsLite);
    } else if report.cgn == Some(true) {
        out.push(Advice::Cgn);
    } else if let Some(layers) = report.nat_layers.or(report.nat_layers_at_least)
        && layers >= 2
    {
        out.push(Advice::DoubleNat { layers });
    }
    let pm = &report.port_mapping;
    let services = [&pm.upnp_igd, &pm.nat_pmp, &pm.pcp];
    if services.iter().any(|s| s.present == Some(true)) {
        let inner = services
            .iter()
            .filter_map(|s| s.external_address)
            .any(|a| !is_public(a));
        out.push(Advice::PortMappingPresent { inner });
    } else if services.iter().all(|s| s.present == Some(false))
        && matches!(headline, Headline::MostPeers | Headline::FewPeers)
    {
        out.push(Advice::PortMappingAbsent);
    }
    if let Some((timer_s, at_least)) = timer(report)
        && !cancelled
        && report.behind_nat() != Some(false)
    {
        out.push(Advice::Keepalive {
            timer_s,
            at_least,
            keepalive_s: keepalive_for(timer_s),
        });
    }
    if let Some(h) = &report.mape_hint
        && h.port_count < 1024
        && !dependent
    {
        out.push(Advice::FewPorts {
            ports: h.port_count,
        });
    }
    if report.nat64_prefix.is_some() {
        out.push(Advice::Nat64);
    }
    if headline == Headline::Unknown {
        out.push(Advice::RunAgain);
    }
    if out.is_empty() || (headline == Headline::Open && out.iter().all(is_informational)) {
        out.push(Advice::NothingToDo);
    }
    out
}

/// Whether the main socket has a DS-Lite B4 address (RFC 6333 §5.7: 192.0.0.0/29).
pub fn is_ds_lite(report: &Report) -> bool {
    matches!(report.local_address.map(|a| a.ip()), Some(IpAddr::V4(v4))
        if v4.octets()[..3] == [192, 0, 0] && v4.octets()[3] < 8)
}

/// The session timer and whether it is only a lower bound.
fn timer(report: &Report) -> Option<(f64, bool)> {
    match &report.binding_lifetime {
        Some(b) if b.upper_s.is_none() => Some((b.lower_s, true)),
        _ => report.binding_lifetime_s.map(|t| (t, false)),
    }
}

fn is_informational(a: &Advice) -> bool {
    matches!(
        a,
        Advice::UseIpv6 | Advice::Keepalive { .. } | Advice::PortMappingPresent { .. }
    )
}
