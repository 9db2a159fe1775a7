//! What a peer tells the other about its NAT, so the other can predict the
//! mappings it cannot see (issue 6, item 3: hard NATs).
//!
//! It travels in the offer or answer ([`super::Signal::nat`]) as an extension of
//! blob version 2; see `blob.rs` for the framing. Everything here is bounded:
//! at most [`MAX_PORT_RANGES`] ranges and [`MAX_OBSERVED`] observed ports.

use serde::{Deserialize, Serialize};

/// The most port ranges a [`PortSetDescription::Ranges`] may list.
pub const MAX_PORT_RANGES: usize = 16;
/// The most observed mapped ports a [`NatDescription`] may carry.
pub const MAX_OBSERVED: usize = 4;

/// Whether the NAT reuses one mapping for every destination (RFC 4787 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NatMapping {
    /// Not measured.
    Unknown,
    /// One public port for every destination (EIM): the server-reflexive
    /// candidate is the address every peer reaches.
    EndpointIndependent,
    /// A new public port per destination (ADM or APDM, "symmetric"): the peer
    /// must predict or sweep the port this side's checks will come from.
    EndpointDependent,
}

/// How the NAT picks a new public port (RFC 4787 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortAllocation {
    /// Not measured, or too few samples.
    Unknown,
    /// The local port is kept.
    Preserving,
    /// Each new mapping is the previous one plus `delta`.
    Sequential {
        /// The step between consecutive mappings (never 0).
        delta: i16,
    },
    /// No pattern.
    Random,
}

/// One contiguous range of public ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// How many ports from `first` (at least 1; `first + count - 1 ≤ 65535`).
    pub count: u16,
}

/// The public ports the NAT allocates from, when they are known to be few.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortSetDescription {
    /// Explicit ranges (measured or configured).
    Ranges(Vec<PortRange>),
    /// A MAP-E port set (RFC 7597 §5.1): PSID offset `a`, PSID length `k`, PSID.
    Psid {
        /// PSID offset (bits `a`).
        offset: u8,
        /// PSID length (bits `k`).
        len: u8,
        /// The PSID.
        psid: u16,
    },
}

impl PortSetDescription {
    /// Every port of the set, lowest first; `None` when the description is
    /// invalid (a bad PSID format, an overflowing range).
    pub fn ports(&self) -> Option<Vec<u16>> {
        match self {
            PortSetDescription::Ranges(ranges) => {
                let mut out = Vec::new();
                for r in ranges {
                    let last = u32::from(r.first) + u32::from(r.count);
                    if r.count == 0 || last > 65_536 {
                        return None;
                    }
                    out.extend((u32::from(r.first)..last).filter_map(|p| u16::try_from(p).ok()));
                }
                out.sort_unstable();
                out.dedup();
                Some(out)
            }
            PortSetDescription::Psid { offset, len, psid } => {
                let format = crate::mape::PsidFormat::new(*offset, *len).ok()?;
                let set = format.port_set(*psid).ok()?;
                Some(set.ports().collect())
            }
        }
    }

    /// How many ports, without listing them (`None` when invalid).
    pub fn len(&self) -> Option<u32> {
        match self {
            PortSetDescription::Ranges(_) => self.ports().map(|p| p.len() as u32),
            PortSetDescription::Psid { offset, len, psid } => {
                let format = crate::mape::PsidFormat::new(*offset, *len).ok()?;
                Some(format.port_set(*psid).ok()?.port_count())
            }
        }
    }

    /// Whether the set is empty or invalid.
    pub fn is_empty(&self) -> bool {
        self.len().is_none_or(|n| n == 0)
    }

    fn check(&self) -> Result<(), &'static str> {
        match self {
            PortSetDescription::Ranges(r) if r.len() > MAX_PORT_RANGES => {
                Err("more than 16 port ranges")
            }
            _ if self.is_empty() => Err("an empty or invalid port set"),
            _ => Ok(()),
        }
    }
}

/// What one side knows about its NAT: enough for the peer to predict the
/// public port this side's checks will come from.
///
/// ```
/// use tsunagi::signal::{NatDescription, NatMapping, PortAllocation};
///
/// let d = NatDescription::from_observed(&[20007, 20003, 20012], 5000);
/// assert_eq!(d.mapping, NatMapping::EndpointDependent);
/// assert_eq!(d.allocation, PortAllocation::Random);
/// // Three ports within one aligned block of 64: a small port set (MAP-E-like).
/// let ports = d.port_set.unwrap().ports().unwrap();
/// assert!(ports.contains(&20000) && ports.contains(&20015));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatDescription {
    /// Mapping behaviour.
    pub mapping: NatMapping,
    /// Port allocation.
    pub allocation: PortAllocation,
    /// The public ports the NAT allocates from, if known to be few (a MAP-E
    /// port set, or inferred from the observed ports).
    pub port_set: Option<PortSetDescription>,
    /// Public ports seen by STUN servers, oldest mapping first (at most
    /// [`MAX_OBSERVED`]); the last one is where a sequential allocator
    /// continues from.
    pub observed: Vec<u16>,
}

/// The smallest block an inferred port set is widened to: three samples from a
/// 16-port set can sit in a block of 4, and a sweep of only that block would
/// miss the rest of the set.
pub const INFERRED_SET_MIN: u32 = 64;
/// The largest aligned block still taken as a port set: three random ports
/// from the whole range land in one aligned block of 1024 with a probability
/// of about 2.5·10⁻⁴.
pub const INFERRED_SET_MAX: u32 = 1024;
/// The largest step still taken as a sequential allocator.
pub const MAX_SEQUENTIAL_DELTA: i32 = 16;

impl NatDescription {
    /// Nothing known.
    pub fn unknown() -> NatDescription {
        NatDescription {
            mapping: NatMapping::Unknown,
            allocation: PortAllocation::Unknown,
            port_set: None,
            observed: Vec::new(),
        }
    }

    /// Classifies the public ports STUN servers saw for one local port, in the
    /// order the mappings were made (one request per distinct server address;
    /// RFC 5780's primary, then its other port and other address).
    ///
    /// One port for all → endpoint-independent (port preserving if it is
    /// `local_port`). Different ports → endpoint-dependent, and with three or
    /// more: sequential when the steps are equal and small, random otherwise;
    /// ports that fit one aligned block of at most [`INFERRED_SET_MAX`] are
    /// taken as a port set (that block, at least [`INFERRED_SET_MIN`] wide).
    pub fn from_observed(ports: &[u16], local_port: u16) -> NatDescription {
        let observed: Vec<u16> = ports
            .iter()
            .rev()
            .take(MAX_OBSERVED)
            .rev()
            .copied()
            .collect();
        let mut d = NatDescription {
            observed,
            ..NatDescription::unknown()
        };
        let Some(&first) = ports.first() else {
            return d;
        };
        if ports.len() < 2 {
            return d;
        }
        if ports.iter().all(|&p| p == first) {
            d.mapping = NatMapping::EndpointIndependent;
            d.allocation = if first == local_port {
                PortAllocation::Preserving
            } else {
                PortAllocation::Unknown
            };
            return d;
        }
        d.mapping = NatMapping::EndpointDependent;
        if ports.len() >= 3 {
            let steps: Vec<i32> = ports
                .windows(2)
                .map(|w| i32::from(w[1]) - i32::from(w[0]))
                .collect();
            let step = steps[0];
            d.allocation = if step != 0
                && step.abs() <= MAX_SEQUENTIAL_DELTA
                && steps.iter().all(|&s| s == step)
            {
                PortAllocation::Sequential {
                    delta: i16::try_from(step).unwrap_or(1),
                }
            } else {
                PortAllocation::Random
            };
        }
        d.port_set = inferred_block(ports).map(|r| PortSetDescription::Ranges(vec![r]));
        d
    }

    /// Checks the bounds a blob must respect.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        if self.observed.len() > MAX_OBSERVED {
            return Err("more than 4 observed ports");
        }
        if let PortAllocation::Sequential { delta: 0 } = self.allocation {
            return Err("a sequential allocator with a step of 0");
        }
        if let Some(set) = &self.port_set {
            set.check()?;
        }
        Ok(())
    }
}

/// The smallest aligned power-of-two block (at least [`INFERRED_SET_MIN`],
/// at most [`INFERRED_SET_MAX`] ports) holding every port, if there is one.
fn inferred_block(ports: &[u16]) -> Option<PortRange> {
    let lo = u32::from(*ports.iter().min()?);
    let hi = u32::from(*ports.iter().max()?);
    let mut size = INFERRED_SET_MIN;
    while size <= INFERRED_SET_MAX {
        if lo / size == hi / size {
            let first = lo / size * size;
            return Some(PortRange {
                first: u16::try_from(first).ok()?,
                count: u16::try_from(size).ok()?,
            });
        }
        size *= 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_usual_nats() {
        let cone = NatDescription::from_observed(&[5000, 5000, 5000], 5000);
        assert_eq!(cone.mapping, NatMapping::EndpointIndependent);
        assert_eq!(cone.allocation, PortAllocation::Preserving);
        assert_eq!(cone.port_set, None);

        let moved = NatDescription::from_observed(&[40000, 40000], 5000);
        assert_eq!(moved.mapping, NatMapping::EndpointIndependent);
        assert_eq!(moved.allocation, PortAllocation::Unknown);

        let seq = NatDescription::from_observed(&[31000, 31002, 31004], 5000);
        assert_eq!(seq.mapping, NatMapping::EndpointDependent);
        assert_eq!(seq.allocation, PortAllocation::Sequential { delta: 2 });
        assert_eq!(seq.observed, vec![31000, 31002, 31004]);

        let random = NatDescription::from_observed(&[1200, 48000, 33000], 5000);
        assert_eq!(random.allocation, PortAllocation::Random);
        assert_eq!(random.port_set, None);

        let two = NatDescription::from_observed(&[1200, 48000], 5000);
        assert_eq!(two.mapping, NatMapping::EndpointDependent);
        assert_eq!(two.allocation, PortAllocation::Unknown);
    }

    #[test]
    fn a_small_port_set_is_inferred_as_an_aligned_block() {
        let d = NatDescription::from_observed(&[20013, 20001, 20009], 5000);
        assert_eq!(
            d.port_set,
            Some(PortSetDescription::Ranges(vec![PortRange {
                first: 19968,
                count: 64
            }]))
        );
        // Straddling a 64-boundary doubles the block.
        let d = NatDescription::from_observed(&[20030, 20040, 20001], 5000);
        assert_eq!(
            d.port_set.and_then(|s| s.ports()).map(|p| (p[0], p.len())),
            Some((19968, 128))
        );
    }

    #[test]
    fn port_set_descriptions_list_their_ports() {
        let r = PortSetDescription::Ranges(vec![
            PortRange {
                first: 10,
                count: 2,
            },
            PortRange {
                first: 65535,
                count: 1,
            },
        ]);
        assert_eq!(r.ports(), Some(vec![10, 11, 65535]));
        let over = PortSetDescription::Ranges(vec![PortRange {
            first: 65535,
            count: 2,
        }]);
        assert_eq!(over.ports(), None);
        assert!(over.check().is_err());
        // v6plus-like: a = 4, k = 8 → 15 blocks of 16.
        let psid = PortSetDescription::Psid {
            offset: 4,
            len: 8,
            psid: 0x34,
        };
        assert_eq!(psid.len(), Some(240));
        assert_eq!(psid.ports().map(|p| p.len()), Some(240));
        let bad = PortSetDescription::Psid {
            offset: 15,
            len: 15,
            psid: 1,
        };
        assert!(bad.check().is_err());
    }
}
