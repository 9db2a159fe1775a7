//! Describing a lab in code: sites, their NAT behaviours and per-router knobs.
//!
//! ```no_run
//! use natlab::{Lab, Nat, Site, SiteKind, Topology};
//! let lab = Lab::build(
//!     Topology::new()
//!         .site(Site::new("a", SiteKind::Nat(Nat::full_cone())))
//!         .site(Site::new("b", SiteKind::Nat(Nat::symmetric()))),
//! )?;
//! # Ok::<(), natlab::Error>(())
//! ```

use std::fmt;
use std::time::Duration;

use crate::Error;

/// RFC 4787 mapping behaviour of a NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// Endpoint-independent mapping (EIM): one external port per internal endpoint.
    EndpointIndependent,
    /// Address-and-port-dependent mapping (APDM) with random ports ("symmetric").
    AddressAndPortDependent,
}

/// RFC 4787 filtering behaviour of a NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtering {
    /// Endpoint-independent filtering (EIF): anyone may send to a mapping.
    EndpointIndependent,
    /// Address-dependent filtering (ADF): any port of an address the host contacted.
    AddressDependent,
    /// Address-and-port-dependent filtering (APDF): only the exact endpoint contacted.
    AddressAndPortDependent,
}

impl Mapping {
    /// The RFC 4787 abbreviation (`EIM`, `APDM`).
    pub fn abbrev(self) -> &'static str {
        match self {
            Mapping::EndpointIndependent => "EIM",
            Mapping::AddressAndPortDependent => "APDM",
        }
    }
}

impl Filtering {
    /// The RFC 4787 abbreviation (`EIF`, `ADF`, `APDF`).
    pub fn abbrev(self) -> &'static str {
        match self {
            Filtering::EndpointIndependent => "EIF",
            Filtering::AddressDependent => "ADF",
            Filtering::AddressAndPortDependent => "APDF",
        }
    }
}

/// An IPv4 NAPT's behaviour: mapping, filtering and the external ports it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nat {
    /// How external ports are chosen per destination.
    pub mapping: Mapping,
    /// Which inbound packets a mapping lets through.
    pub filtering: Filtering,
    /// A port set (first, count) the NAT is limited to, as with MAP-E; `None` = any port.
    pub port_set: Option<(u16, u16)>,
    /// With an address-and-port-dependent mapping: UDP ports come from a counter
    /// (each new flow gets the next port of the set, or of 30000–30255 without one;
    /// at most 256 ports)
    /// instead of at random — a sequential allocator, for port prediction.
    pub sequential: bool,
}

impl Nat {
    /// EIM + EIF ("full cone").
    pub fn full_cone() -> Nat {
        Nat::new(Mapping::EndpointIndependent, Filtering::EndpointIndependent)
    }
    /// EIM + ADF ("address-restricted cone").
    pub fn address_restricted() -> Nat {
        Nat::new(Mapping::EndpointIndependent, Filtering::AddressDependent)
    }
    /// EIM + APDF ("port-restricted cone"; Linux's plain masquerade).
    pub fn port_restricted() -> Nat {
        Nat::new(
            Mapping::EndpointIndependent,
            Filtering::AddressAndPortDependent,
        )
    }
    /// APDM + APDF with random ports ("symmetric").
    pub fn symmetric() -> Nat {
        Nat::new(
            Mapping::AddressAndPortDependent,
            Filtering::AddressAndPortDependent,
        )
    }
    /// A MAP-E-like CE limited to `count` ports from `first`, endpoint-independent.
    pub fn port_set_eim(first: u16, count: u16) -> Nat {
        Nat {
            port_set: Some((first, count)),
            ..Nat::port_restricted()
        }
    }
    /// A MAP-E-like CE limited to `count` ports from `first`, picking a random port of
    /// the set for every new destination (symmetric inside the set).
    pub fn port_set_symmetric(first: u16, count: u16) -> Nat {
        Nat {
            port_set: Some((first, count)),
            ..Nat::symmetric()
        }
    }
    /// APDM + APDF whose UDP ports come from a counter: every new flow gets the
    /// next port from 30000 (a sequential "symmetric" NAT).
    pub fn sequential_symmetric() -> Nat {
        Nat {
            sequential: true,
            ..Nat::symmetric()
        }
    }
    /// Any combination the lab supports (see [`Nat::validate`]).
    pub fn new(mapping: Mapping, filtering: Filtering) -> Nat {
        Nat {
            mapping,
            filtering,
            port_set: None,
            sequential: false,
        }
    }

    /// The classic (RFC 3489) name of this behaviour.
    pub fn classic_name(&self) -> &'static str {
        match (self.mapping, self.filtering) {
            (Mapping::EndpointIndependent, Filtering::EndpointIndependent) => "full cone",
            (Mapping::EndpointIndependent, Filtering::AddressDependent) => {
                "address-restricted cone"
            }
            (Mapping::EndpointIndependent, Filtering::AddressAndPortDependent) => {
                "port-restricted cone"
            }
            (Mapping::AddressAndPortDependent, _) => "symmetric",
        }
    }

    /// Checks that the lab can build this behaviour.
    pub fn validate(&self) -> Result<(), Error> {
        if self.mapping == Mapping::AddressAndPortDependent
            && self.filtering != Filtering::AddressAndPortDependent
        {
            return Err(Error::Topology(
                "an address-and-port-dependent mapping only exists here with APDF filtering".into(),
            ));
        }
        if self.sequential && self.mapping != Mapping::AddressAndPortDependent {
            return Err(Error::Topology(
                "a sequential allocator is only built for an address-and-port-dependent mapping"
                    .into(),
            ));
        }
        if let Some((first, count)) = self.port_set
            && (count == 0 || first == 0 || u32::from(first) + u32::from(count) > 65536)
        {
            return Err(Error::Topology(format!(
                "port set {first}+{count} must be non-empty and inside 1..=65535"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Nat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}+{} ({})",
            self.mapping.abbrev(),
            self.filtering.abbrev(),
            self.classic_name()
        )?;
        if self.sequential {
            write!(f, " sequential")?;
        }
        if let Some((first, count)) = self.port_set {
            write!(
                f,
                " ports {first}-{}",
                u32::from(first) + u32::from(count) - 1
            )?;
        }
        Ok(())
    }
}

/// What a site is: how its hosts reach the lab's internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteKind {
    /// Hosts with public IPv4 (198.19.N.0/24) and IPv6, routed without NAT or filter.
    Public,
    /// IPv6-only hosts behind a stateful firewall (inbound only for established flows).
    Ipv6Only,
    /// The common IPoE home: IPv4 behind `Nat`, native routed IPv6 behind a stateful
    /// firewall.
    DualStack(Nat),
    /// IPv4-only hosts behind one NAT.
    Nat(Nat),
    /// Double NAT: a home NAT (`home`) behind a carrier-grade NAT (`cgn`) whose inside is
    /// 100.64.0.0/10.
    Cgn {
        /// The carrier's NAT.
        cgn: Nat,
        /// The home router's NAT.
        home: Nat,
    },
    /// DS-Lite-like: the host (B4) has only IPv6 to the AFTR; IPv4 rides a VXLAN over
    /// IPv6 to the AFTR, which NATs it with `aftr`. Native IPv6 is routed too.
    DsLite {
        /// The AFTR's NAT behaviour.
        aftr: Nat,
    },
    /// An IPv6-only host whose router translates `2001:db8:46::/96` to IPv4 (tayga).
    Nat64,
    /// A NAT router that also offers UPnP-IGD, NAT-PMP and PCP (miniupnpd).
    Upnp(Nat),
}

impl SiteKind {
    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            SiteKind::Public => "public IPv4 + IPv6, no NAT".into(),
            SiteKind::Ipv6Only => "IPv6 only, stateful firewall".into(),
            SiteKind::DualStack(n) => format!("dual-stack: IPv4 {n}, IPv6 stateful firewall"),
            SiteKind::Nat(n) => format!("IPv4 {n}"),
            SiteKind::Cgn { cgn, home } => format!("double NAT: home {home} behind CGN {cgn}"),
            SiteKind::DsLite { aftr } => format!("DS-Lite: IPv4-in-IPv6 to an AFTR {aftr}"),
            SiteKind::Nat64 => "IPv6 only + NAT64 (tayga, 2001:db8:46::/96)".into(),
            SiteKind::Upnp(n) => format!("IPv4 {n} + UPnP-IGD / NAT-PMP / PCP (miniupnpd)"),
        }
    }

    /// Every NAT in this site's path, innermost first.
    pub fn nats(&self) -> Vec<&Nat> {
        match self {
            SiteKind::Public | SiteKind::Ipv6Only | SiteKind::Nat64 => vec![],
            SiteKind::DualStack(n) | SiteKind::Nat(n) | SiteKind::Upnp(n) => vec![n],
            SiteKind::Cgn { cgn, home } => vec![home, cgn],
            SiteKind::DsLite { aftr } => vec![aftr],
        }
    }
}

/// Per-router impairments and timers, applied on the router closest to the internet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knobs {
    /// UDP session timers: (unreplied, assured/stream), as conntrack's
    /// `nf_conntrack_udp_timeout` and `nf_conntrack_udp_timeout_stream`.
    pub udp_timeout: Option<(Duration, Duration)>,
    /// Percentage of forwarded UDP packets dropped, in each direction.
    pub loss_percent: Option<u8>,
    /// Rate limit in kbit/s (token bucket) on each direction of the router.
    pub rate_kbit: Option<u32>,
    /// Delay added to every forwarded UDP packet, in each direction.
    pub delay: Option<Duration>,
}

/// One site: a router (or two, for double NAT) and hosts behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Short name, `[a-z0-9]{1,10}`; used in namespace names.
    pub name: String,
    /// What the site is.
    pub kind: SiteKind,
    /// Number of hosts (default 1).
    pub hosts: u8,
    /// Impairments and timers.
    pub knobs: Knobs,
}

impl Site {
    /// A site with one host and no impairments.
    pub fn new(name: &str, kind: SiteKind) -> Site {
        Site {
            name: name.to_owned(),
            kind,
            hosts: 1,
            knobs: Knobs::default(),
        }
    }
    /// Sets the number of hosts.
    pub fn hosts(mut self, n: u8) -> Site {
        self.hosts = n;
        self
    }
    /// Sets the knobs.
    pub fn knobs(mut self, knobs: Knobs) -> Site {
        self.knobs = knobs;
        self
    }
}

/// A whole lab: the internet segment, the server, and sites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// The sites, numbered from 1 in this order.
    pub sites: Vec<Site>,
}

impl Topology {
    /// An internet segment with its server namespace and no sites.
    pub fn new() -> Topology {
        Topology::default()
    }
    /// Adds a site.
    pub fn site(mut self, site: Site) -> Topology {
        self.sites.push(site);
        self
    }

    /// Checks names, counts and behaviours.
    pub fn validate(&self) -> Result<(), Error> {
        if self.sites.len() > 40 {
            return Err(Error::Topology("at most 40 sites per lab".into()));
        }
        for (i, s) in self.sites.iter().enumerate() {
            let ok = !s.name.is_empty()
                && s.name.len() <= 10
                && s.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !ok {
                return Err(Error::Topology(format!(
                    "site name {:?} must be 1-10 characters of a-z and 0-9",
                    s.name
                )));
            }
            if self.sites[..i].iter().any(|o| o.name == s.name) {
                return Err(Error::Topology(format!("two sites are named {:?}", s.name)));
            }
            if s.hosts == 0 || s.hosts > 8 {
                return Err(Error::Topology(format!("site {}: 1 to 8 hosts", s.name)));
            }
            if s.knobs.loss_percent.is_some_and(|p| p > 100) {
                return Err(Error::Topology(format!(
                    "site {}: loss above 100 %",
                    s.name
                )));
            }
            for nat in s.kind.nats() {
                nat.validate()?;
            }
        }
        Ok(())
    }
}

/// The standard behaviours of the lab, by name: what `natlab up` and the self-test use.
pub fn catalog() -> Vec<Site> {
    let kinds = [
        ("public", SiteKind::Public),
        ("v6only", SiteKind::Ipv6Only),
        ("dualstack", SiteKind::DualStack(Nat::port_restricted())),
        ("fullcone", SiteKind::Nat(Nat::full_cone())),
        ("addrrestr", SiteKind::Nat(Nat::address_restricted())),
        ("portrestr", SiteKind::Nat(Nat::port_restricted())),
        ("symmetric", SiteKind::Nat(Nat::symmetric())),
        ("mapeeim", SiteKind::Nat(Nat::port_set_eim(20000, 16))),
        ("mapesym", SiteKind::Nat(Nat::port_set_symmetric(20000, 16))),
        (
            "cgn",
            SiteKind::Cgn {
                cgn: Nat::port_restricted(),
                home: Nat::port_restricted(),
            },
        ),
        (
            "dslite",
            SiteKind::DsLite {
                aftr: Nat::full_cone(),
            },
        ),
        ("nat64", SiteKind::Nat64),
        ("upnp", SiteKind::Upnp(Nat::port_restricted())),
    ];
    kinds.into_iter().map(|(n, k)| Site::new(n, k)).collect()
}
