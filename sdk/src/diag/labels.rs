//! Names derived from a [`Report`]'s RFC 4787 terms: the classic RFC 3489 names,
//! console-style labels, and whether two peers can connect directly.
//!
//! # Console labels
//!
//! Consoles never published their exact classifiers; the mappings below follow the
//! public descriptions, and are approximations a support desk can relate to:
//!
//! - **Xbox-style Open / Moderate / Strict.** Microsoft's description: *Open* when the
//!   "port-assignment policy is minimal" and nothing filters (or UPnP opens it),
//!   *Moderate* when the port assignment is minimal but "the device is filtering
//!   addresses or ports", *Strict* when "the port-assignment policy is aggressive".
//!   So: no NAT with open filtering, or EIM + EIF → Open; EIM with ADF or APDF (or a
//!   filtering firewall without NAT) → Moderate; ADM / APDM → Strict.
//! - **PlayStation-style Type 1 / 2 / 3.** Type 1 is "connected directly to the
//!   internet", Type 2 "through a router" that works properly, Type 3 a restrictive
//!   connection (often double NAT). So: no NAT → Type 1; an endpoint-independent NAT
//!   → Type 2; an address(-and-port)-dependent mapping → Type 3.
//! - **Switch-style A–D (and F).** The widely quoted description of Nintendo's test:
//!   A = EIM with EIF or ADF; B = EIM with APDF; C = a dependent mapping whose ports
//!   are predictable; D = anything else; F = UDP fails. No NAT counts as EIM.
//!
//! A report whose mapping or filtering is unknown gets no label (`None`), never a
//! guess. UDP blocked is Strict / Type 3 / F.

use std::fmt;

use super::report::{Behaviour, PortAllocation, Report};

/// The classic (RFC 3489) NAT type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClassicName {
    /// No NAT and no filtering.
    OpenInternet,
    /// No NAT, but a firewall filters unsolicited inbound packets.
    SymmetricUdpFirewall,
    /// EIM + EIF.
    FullCone,
    /// EIM + ADF.
    AddressRestrictedCone,
    /// EIM + APDF.
    PortRestrictedCone,
    /// ADM or APDM.
    Symmetric,
    /// UDP to the server failed.
    Blocked,
    /// Not enough was learnt.
    Unknown,
}

impl fmt::Display for ClassicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClassicName::OpenInternet => "open internet",
            ClassicName::SymmetricUdpFirewall => "symmetric UDP firewall",
            ClassicName::FullCone => "full cone",
            ClassicName::AddressRestrictedCone => "address-restricted cone",
            ClassicName::PortRestrictedCone => "port-restricted cone",
            ClassicName::Symmetric => "symmetric",
            ClassicName::Blocked => "blocked",
            ClassicName::Unknown => "unknown",
        })
    }
}

/// Xbox-style NAT type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenModerateStrict {
    /// Anyone can reach this machine.
    Open,
    /// Peers with Open or Moderate NATs can connect.
    Moderate,
    /// Only peers with an Open NAT can connect.
    Strict,
}

impl fmt::Display for OpenModerateStrict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenModerateStrict::Open => "Open",
            OpenModerateStrict::Moderate => "Moderate",
            OpenModerateStrict::Strict => "Strict",
        })
    }
}

/// The RFC 4787 behaviour of one peer, for [`NatProfile::can_connect_directly`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatProfile {
    /// Mapping behaviour (`EndpointIndependent` when there is no NAT).
    pub mapping: Behaviour,
    /// Filtering behaviour.
    pub filtering: Behaviour,
}

impl NatProfile {
    /// The profile of a report, when UDP works and both behaviours are known.
    pub fn from_report(report: &Report) -> Option<NatProfile> {
        Some(NatProfile {
            mapping: report.mapping?,
            filtering: report.filtering?,
        })
    }

    /// Whether UDP hole punching between `self` and `other` works, using the
    /// addresses each learnt from STUN (the table in the mission brief, extended to
    /// RFC 4787 terms): it fails only when one side's mapping changes per destination
    /// (ADM / APDM, so the other side cannot know the port it will come from) and the
    /// other side filters on ports (APDF) or also has a dependent mapping. Everything
    /// else works, possibly after one side's first packets are dropped.
    pub fn can_connect_directly(&self, other: &NatProfile) -> bool {
        let dependent = |p: &NatProfile| p.mapping != Behaviour::EndpointIndependent;
        let port_filter = |p: &NatProfile| p.filtering == Behaviour::AddressAndPortDependent;
        let fails =
            |a: &NatProfile, b: &NatProfile| dependent(a) && (dependent(b) || port_filter(b));
        !(fails(self, other) || fails(other, self))
    }
}

impl Report {
    /// The classic RFC 3489 name for this result.
    pub fn classic_name(&self) -> ClassicName {
        if !self.udp_works() {
            return ClassicName::Blocked;
        }
        let (Some(m), Some(f)) = (self.mapping, self.filtering) else {
            return ClassicName::Unknown;
        };
        if self.behind_nat() == Some(false) {
            return if f == Behaviour::EndpointIndependent {
                ClassicName::OpenInternet
            } else {
                ClassicName::SymmetricUdpFirewall
            };
        }
        match (m, f) {
            (Behaviour::EndpointIndependent, Behaviour::EndpointIndependent) => {
                ClassicName::FullCone
            }
            (Behaviour::EndpointIndependent, Behaviour::AddressDependent) => {
                ClassicName::AddressRestrictedCone
            }
            (Behaviour::EndpointIndependent, Behaviour::AddressAndPortDependent) => {
                ClassicName::PortRestrictedCone
            }
            _ => ClassicName::Symmetric,
        }
    }

    /// The Xbox-style label (see the module docs); `None` when unknown.
    pub fn open_moderate_strict(&self) -> Option<OpenModerateStrict> {
        if !self.udp_works() {
            return Some(OpenModerateStrict::Strict);
        }
        let p = NatProfile::from_report(self)?;
        Some(match (p.mapping, p.filtering) {
            (Behaviour::EndpointIndependent, Behaviour::EndpointIndependent) => {
                OpenModerateStrict::Open
            }
            (Behaviour::EndpointIndependent, _) => OpenModerateStrict::Moderate,
            _ => OpenModerateStrict::Strict,
        })
    }

    /// The PlayStation-style type, 1 to 3 (see the module docs); `None` when unknown.
    pub fn playstation_type(&self) -> Option<u8> {
        if !self.udp_works() {
            return Some(3);
        }
        if self.behind_nat() == Some(false) {
            return Some(1);
        }
        match self.mapping? {
            Behaviour::EndpointIndependent => Some(2),
            _ => Some(3),
        }
    }

    /// The Switch-style letter, `A` to `D` or `F` (see the module docs); `None` when
    /// unknown.
    pub fn switch_type(&self) -> Option<char> {
        if !self.udp_works() {
            return Some('F');
        }
        let p = NatProfile::from_report(self)?;
        Some(match (p.mapping, p.filtering) {
            (Behaviour::EndpointIndependent, Behaviour::AddressAndPortDependent) => 'B',
            (Behaviour::EndpointIndependent, _) => 'A',
            _ if matches!(
                self.port_allocation,
                Some(PortAllocation::Preserving | PortAllocation::Sequential)
            ) =>
            {
                'C'
            }
            _ => 'D',
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Behaviour::*;

    fn p(mapping: Behaviour, filtering: Behaviour) -> NatProfile {
        NatProfile { mapping, filtering }
    }

    #[test]
    fn the_classic_compatibility_table_holds() {
        let full = p(EndpointIndependent, EndpointIndependent);
        let addr = p(EndpointIndependent, AddressDependent);
        let port = p(EndpointIndependent, AddressAndPortDependent);
        let sym = p(AddressAndPortDependent, AddressAndPortDependent);
        let all = [full, addr, port, sym];
        let expected = [
            [true, true, true, true],
            [true, true, true, true],
            [true, true, true, false],
            [true, true, false, false],
        ];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(a.can_connect_directly(b), expected[i][j], "{a:?} x {b:?}");
            }
        }
    }

    fn report(mapping: Behaviour, filtering: Behaviour, nat: bool) -> Report {
        let mut r = Report::new("s:3478");
        r.local_address = "192.168.1.10:5000".parse().ok();
        r.mapped_address = if nat {
            "203.0.113.5:6000".parse().ok()
        } else {
            r.local_address
        };
        r.mapping = Some(mapping);
        r.filtering = Some(filtering);
        r
    }

    #[test]
    fn labels_follow_the_documented_mapping() {
        let r = report(EndpointIndependent, EndpointIndependent, false);
        assert_eq!(r.classic_name(), ClassicName::OpenInternet);
        assert_eq!(r.playstation_type(), Some(1));
        let r = report(EndpointIndependent, AddressAndPortDependent, true);
        assert_eq!(r.classic_name(), ClassicName::PortRestrictedCone);
        assert_eq!(r.open_moderate_strict(), Some(OpenModerateStrict::Moderate));
        assert_eq!(r.playstation_type(), Some(2));
        assert_eq!(r.switch_type(), Some('B'));
        let mut r = report(AddressAndPortDependent, AddressAndPortDependent, true);
        assert_eq!(r.classic_name().to_string(), "symmetric");
        assert_eq!(r.open_moderate_strict(), Some(OpenModerateStrict::Strict));
        assert_eq!(r.switch_type(), Some('D'));
        r.port_allocation = Some(PortAllocation::Sequential);
        assert_eq!(r.switch_type(), Some('C'));
        let r = Report::new("s:3478");
        assert_eq!(r.classic_name(), ClassicName::Blocked);
        assert_eq!(r.switch_type(), Some('F'));
    }
}
