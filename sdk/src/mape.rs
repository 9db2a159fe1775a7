//! MAP-E port sets: which IPv4 address and which ports a MAP-E home router owns.
//!
//! In MAP-E (RFC 7597) the home router (the CE) derives its IPv4 address and its
//! port set from two things: a *MAP rule* published by the ISP and the IPv6 prefix
//! delegated to the home (the *End-user IPv6 prefix*). The bits of the End-user
//! prefix right after the rule's IPv6 prefix are the *EA bits*; they carry the IPv4
//! address suffix and the *PSID* (Port Set ID). The PSID picks which ports of the
//! shared address are this CE's (RFC 7597 §5.1):
//!
//! ```text
//!  port = | A (a bits, never 0) | PSID (k bits) | j (m bits) |     a + k + m = 16
//! ```
//!
//! Everything here is pure arithmetic: no I/O, and no input makes it panic.
//!
//! ```
//! use tsunagi::mape::MapRule;
//!
//! // RFC 7597 Appendix A, Example 1.
//! let rule = MapRule::new("2001:db8::/40".parse()?, "192.0.2.0/24".parse()?, 16)?;
//! let ce = rule.apply("2001:db8:12:3400::/56".parse()?)?;
//! assert_eq!(ce.ipv4().to_string(), "192.0.2.18");
//! assert_eq!(ce.port_set().psid(), 0x34);
//! assert_eq!(ce.port_set().to_string(), "252 ports in 63 blocks of 4");
//! assert_eq!(ce.map_ipv6_address().to_string(), "2001:db8:12:3400:0:c000:212:34");
//! # Ok::<(), tsunagi::mape::MapError>(())
//! ```

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::str::FromStr;

/// The PSID offset `a` that RFC 7597 §5.1 recommends: ports 0–1023 belong to nobody.
pub const DEFAULT_PSID_OFFSET: u8 = 6;

/// Bits in a transport port.
const PORT_BITS: u8 = 16;

/// Why a MAP rule, prefix or PSID cannot be used. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// The text is not an `address/length` prefix.
    #[error("{input:?} is not an {family} prefix: write it as address/length, e.g. {example}")]
    PrefixSyntax {
        /// What was given.
        input: String,
        /// `"IPv4"` or `"IPv6"`.
        family: &'static str,
        /// A well-formed prefix of that family.
        example: &'static str,
    },
    /// The prefix length is longer than the address.
    #[error("prefix length /{len} is too long for {family}: it must be at most /{max}")]
    PrefixTooLong {
        /// `"IPv4"` or `"IPv6"`.
        family: &'static str,
        /// The length given.
        len: u8,
        /// 32 or 128.
        max: u8,
    },
    /// The address has bits set past the prefix length.
    #[error("{given} has bits set after /{len}, so it is not a prefix: did you mean {suggestion}?")]
    HostBitsSet {
        /// The prefix as written.
        given: String,
        /// Its length.
        len: u8,
        /// The same prefix with the trailing bits cleared.
        suggestion: String,
    },
    /// The PSID offset does not fit in a port.
    #[error(
        "PSID offset {offset} is more than the 16 bits of a port: use 0 to 16 \
         (RFC 7597's default is 6; some ISPs use 4)"
    )]
    PsidOffsetTooLarge {
        /// The offset given.
        offset: u8,
    },
    /// PSID offset plus PSID length leave no room in a 16-bit port.
    #[error(
        "PSID offset {offset} plus PSID length {psid_len} is {total} bits, more than the 16 bits \
         of a port: {hint}"
    )]
    PortBitsExceeded {
        /// The PSID offset `a`.
        offset: u8,
        /// The PSID length `k`.
        psid_len: u32,
        /// `a + k`.
        total: u32,
        /// What to change.
        hint: &'static str,
    },
    /// The rule's IPv6 prefix and EA bits run into the interface identifier.
    #[error(
        "the /{rule_len} rule IPv6 prefix plus {ea_bits_len} EA bits is {total} bits, past the \
         64-bit boundary where the interface identifier starts: check the EA-bits length"
    )]
    EaBitsPast64 {
        /// Rule IPv6 prefix length `n`.
        rule_len: u8,
        /// EA-bits length `o`.
        ea_bits_len: u8,
        /// `n + o`.
        total: u32,
    },
    /// The End-user prefix is outside the rule's IPv6 prefix.
    #[error(
        "End-user IPv6 prefix {end_user} is not inside the rule IPv6 prefix {rule}: this MAP rule \
         does not apply to it; use the rule whose IPv6 prefix covers your delegated prefix"
    )]
    NotInRule {
        /// The End-user IPv6 prefix.
        end_user: Ipv6Prefix,
        /// The rule IPv6 prefix.
        rule: Ipv6Prefix,
    },
    /// The End-user prefix is longer than /64.
    #[error(
        "End-user IPv6 prefix /{len} is longer than /64: MAP needs the last 64 bits for the \
         interface identifier; give the prefix your ISP delegated (e.g. /56), not an address"
    )]
    EndUserPrefixTooLong {
        /// The length given.
        len: u8,
    },
    /// The EA bits do not fit between the rule prefix and the End of the End-user prefix.
    #[error(
        "EA-bits length {ea_bits_len} exceeds the delegated prefix: the End-user IPv6 prefix \
         /{end_user_len} leaves only {available} bits after the /{rule_len} rule prefix; check \
         the EA-bits length, or give a delegated prefix of /{needed} or longer"
    )]
    EaBitsExceedPrefix {
        /// EA-bits length `o`.
        ea_bits_len: u8,
        /// End-user IPv6 prefix length.
        end_user_len: u8,
        /// Rule IPv6 prefix length `n`.
        rule_len: u8,
        /// Bits of the End-user prefix after the rule prefix.
        available: u8,
        /// `n + o`: the shortest End-user prefix that holds all EA bits.
        needed: u32,
    },
    /// A PSID length longer than a port.
    #[error("PSID length {len} is more than the 16 bits of a port: use 0 to 16")]
    PsidTooLong {
        /// The length given.
        len: u8,
    },
    /// A PSID value that does not fit in its length.
    #[error("PSID {psid:#x} does not fit in {len} bits: it must be below {limit:#x}")]
    PsidOutOfRange {
        /// The value given.
        psid: u16,
        /// The PSID length `k`.
        len: u8,
        /// `2^k`.
        limit: u32,
    },
    /// A PSID was provisioned although the rule does not give a full IPv4 address.
    #[error(
        "a separately provisioned PSID only applies when the rule gives a full IPv4 address \
         (EA-bits length + IPv4 prefix length = 32), but {reason}: drop the PSID or check the rule"
    )]
    PsidNotApplicable {
        /// What the rule gives instead.
        reason: String,
    },
}

fn mask128(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

fn mask32(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

/// The low `bits` bits set.
fn low_bits(bits: u32) -> u64 {
    1u64.checked_shl(bits).map_or(u64::MAX, |v| v - 1)
}

fn split_prefix<'a>(
    input: &'a str,
    family: &'static str,
    example: &'static str,
) -> Result<(&'a str, u8), MapError> {
    let syntax = || MapError::PrefixSyntax {
        input: input.to_owned(),
        family,
        example,
    };
    let (addr, len) = input.trim().split_once('/').ok_or_else(syntax)?;
    let len = len.parse::<u8>().map_err(|_| syntax())?;
    Ok((addr, len))
}

/// An IPv6 prefix such as `2001:db8::/40`; the bits after the length are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    addr: Ipv6Addr,
    len: u8,
}

impl Ipv6Prefix {
    /// A prefix of `len` bits. Fails if `len > 128` or `addr` has bits set after `len`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Self, MapError> {
        if len > 128 {
            return Err(MapError::PrefixTooLong {
                family: "IPv6",
                len,
                max: 128,
            });
        }
        let masked = u128::from(addr) & mask128(len);
        if masked != u128::from(addr) {
            return Err(MapError::HostBitsSet {
                given: format!("{addr}/{len}"),
                len,
                suggestion: format!("{}/{len}", Ipv6Addr::from(masked)),
            });
        }
        Ok(Self { addr, len })
    }

    /// The prefix's address (its first address).
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `other` lies inside this prefix (a prefix contains itself).
    pub fn contains(&self, other: &Ipv6Prefix) -> bool {
        other.len >= self.len && u128::from(other.addr) & mask128(self.len) == u128::from(self.addr)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = MapError;
    fn from_str(s: &str) -> Result<Self, MapError> {
        let example = "2001:db8::/40";
        let (addr, len) = split_prefix(s, "IPv6", example)?;
        let addr = addr.parse().map_err(|_| MapError::PrefixSyntax {
            input: s.to_owned(),
            family: "IPv6",
            example,
        })?;
        Self::new(addr, len)
    }
}

/// An IPv4 prefix such as `192.0.2.0/24`; the bits after the length are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Prefix {
    /// A prefix of `len` bits. Fails if `len > 32` or `addr` has bits set after `len`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, MapError> {
        if len > 32 {
            return Err(MapError::PrefixTooLong {
                family: "IPv4",
                len,
                max: 32,
            });
        }
        let masked = u32::from(addr) & mask32(len);
        if masked != u32::from(addr) {
            return Err(MapError::HostBitsSet {
                given: format!("{addr}/{len}"),
                len,
                suggestion: format!("{}/{len}", Ipv4Addr::from(masked)),
            });
        }
        Ok(Self { addr, len })
    }

    /// The prefix's address (its first address).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = MapError;
    fn from_str(s: &str) -> Result<Self, MapError> {
        let example = "192.0.2.0/24";
        let (addr, len) = split_prefix(s, "IPv4", example)?;
        let addr = addr.parse().map_err(|_| MapError::PrefixSyntax {
            input: s.to_owned(),
            family: "IPv4",
            example,
        })?;
        Self::new(addr, len)
    }
}

/// How a PSID sits in a port: offset `a` and length `k` (RFC 7597 §5.1).
///
/// ```
/// use tsunagi::mape::PsidFormat;
///
/// let format = PsidFormat::new(4, 8)?; // 240 ports in 15 blocks of 16
/// assert_eq!(format.psid_of_port(4096 + 0x12 * 16 + 3), Some(0x12));
/// assert_eq!(format.psid_of_port(80), None); // A = 0: nobody's port
/// # Ok::<(), tsunagi::mape::MapError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PsidFormat {
    offset: u8,
    len: u8,
}

impl PsidFormat {
    /// PSID offset `a` and PSID length `k`; `a + k` must fit in 16 bits.
    pub fn new(offset: u8, len: u8) -> Result<Self, MapError> {
        if offset > PORT_BITS {
            return Err(MapError::PsidOffsetTooLarge { offset });
        }
        if len > PORT_BITS {
            return Err(MapError::PsidTooLong { len });
        }
        if offset + len > PORT_BITS {
            return Err(MapError::PortBitsExceeded {
                offset,
                psid_len: len.into(),
                total: u32::from(offset) + u32::from(len),
                hint: "lower the PSID length or the PSID offset",
            });
        }
        Ok(Self { offset, len })
    }

    /// The PSID offset `a`: the high bits of a port before the PSID.
    pub fn offset(&self) -> u8 {
        self.offset
    }

    /// The PSID length `k`; 0 means the address is not shared.
    pub fn psid_len(&self) -> u8 {
        self.len
    }

    /// `m = 16 - a - k`: the low bits of a port after the PSID.
    fn m(&self) -> u8 {
        PORT_BITS - self.offset - self.len
    }

    /// How many CEs share one IPv4 address: `2^k`.
    pub fn sharing_ratio(&self) -> u32 {
        1 << self.len
    }

    /// The PSID that owns `port`, or `None` for ports no CE owns (A = 0 when `a > 0`).
    /// A format with `k = 0` gives the whole address, every port, to PSID 0.
    pub fn psid_of_port(&self, port: u16) -> Option<u16> {
        if self.len == 0 {
            return Some(0);
        }
        let port = u32::from(port);
        if self.offset > 0 && port >> (PORT_BITS - self.offset) == 0 {
            return None;
        }
        let psid = (port >> self.m()) & ((1 << self.len) - 1);
        u16::try_from(psid).ok()
    }

    /// The port set of `psid`, which must fit in `k` bits.
    pub fn port_set(&self, psid: u16) -> Result<PortSet, MapError> {
        let limit = self.sharing_ratio();
        if u32::from(psid) >= limit {
            return Err(MapError::PsidOutOfRange {
                psid,
                len: self.len,
                limit,
            });
        }
        Ok(PortSet {
            format: *self,
            psid,
        })
    }
}

/// The ports one PSID owns: contiguous blocks of `2^m` ports, one per value of A.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortSet {
    format: PsidFormat,
    psid: u16,
}

impl PortSet {
    /// The PSID whose set this is.
    pub fn psid(&self) -> u16 {
        self.psid
    }

    /// The PSID offset and length.
    pub fn format(&self) -> PsidFormat {
        self.format
    }

    /// Whether `port` is in this set.
    pub fn contains(&self, port: u16) -> bool {
        self.format.psid_of_port(port) == Some(self.psid)
    }

    /// Ports in one block: `2^m`, or 65536 when the address is not shared.
    pub fn block_size(&self) -> u32 {
        if self.format.len == 0 {
            1 << PORT_BITS
        } else {
            1 << self.format.m()
        }
    }

    /// Number of blocks: `2^a - 1` (one per A ≠ 0), or 1 when `a = 0` or `k = 0`.
    pub fn block_count(&self) -> u32 {
        if self.format.len == 0 || self.format.offset == 0 {
            1
        } else {
            (1 << self.format.offset) - 1
        }
    }

    /// Number of ports in the set.
    pub fn port_count(&self) -> u32 {
        self.block_size() * self.block_count()
    }

    /// The blocks as inclusive port ranges, lowest first.
    pub fn blocks(&self) -> impl Iterator<Item = RangeInclusive<u16>> + use<> {
        let format = self.format;
        let (first_a, a_shift) = match (format.len, format.offset) {
            (0, _) | (_, 0) => (0u32, 0u8),
            (_, a) => (1, PORT_BITS - a),
        };
        let low = u32::from(self.psid) << format.m();
        let size = self.block_size();
        let base = if format.len == 0 { 0 } else { low };
        (first_a..first_a + self.block_count()).map(move |a| {
            let start = (a << a_shift) | base;
            let end = start + (size - 1);
            // a < 2^a and psid < 2^k keep both within 16 bits.
            (start & 0xffff) as u16..=(end & 0xffff) as u16
        })
    }

    /// Every port in the set, lowest first.
    pub fn ports(&self) -> impl Iterator<Item = u16> + use<> {
        self.blocks().flatten()
    }
}

impl fmt::Display for PortSet {
    /// `"240 ports in 15 blocks of 16"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let blocks = self.block_count();
        let noun = if blocks == 1 { "block" } else { "blocks" };
        write!(
            f,
            "{} ports in {blocks} {noun} of {}",
            self.port_count(),
            self.block_size()
        )
    }
}

/// What the rule gives a CE on the IPv4 side (RFC 7597 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ipv4Assignment {
    /// One address shared with other CEs, each on its own port set (`o + r > 32`, or a
    /// provisioned PSID).
    SharedAddress(Ipv4Addr),
    /// A whole address with every port (`o + r = 32`).
    FullAddress(Ipv4Addr),
    /// A whole IPv4 prefix (`o + r < 32`).
    Prefix(Ipv4Prefix),
}

impl Ipv4Assignment {
    /// The address, or the first address of a prefix (what goes in the MAP address).
    pub fn addr(&self) -> Ipv4Addr {
        match *self {
            Self::SharedAddress(a) | Self::FullAddress(a) => a,
            Self::Prefix(p) => p.addr(),
        }
    }
}

impl fmt::Display for Ipv4Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SharedAddress(a) | Self::FullAddress(a) => a.fmt(f),
            Self::Prefix(p) => p.fmt(f),
        }
    }
}

/// A Basic Mapping Rule: rule IPv6 prefix (`n` bits), rule IPv4 prefix (`r` bits),
/// EA-bits length `o` and PSID offset `a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapRule {
    ipv6_prefix: Ipv6Prefix,
    ipv4_prefix: Ipv4Prefix,
    ea_bits_len: u8,
    psid_format: PsidFormat,
}

impl MapRule {
    /// A rule with the default PSID offset (6). Checks the rule on its own; the
    /// End-user prefix is checked by [`MapRule::apply`].
    pub fn new(
        ipv6_prefix: Ipv6Prefix,
        ipv4_prefix: Ipv4Prefix,
        ea_bits_len: u8,
    ) -> Result<Self, MapError> {
        Self::with_psid_offset(ipv6_prefix, ipv4_prefix, ea_bits_len, DEFAULT_PSID_OFFSET)
    }

    /// A rule with an explicit PSID offset `a`.
    pub fn with_psid_offset(
        ipv6_prefix: Ipv6Prefix,
        ipv4_prefix: Ipv4Prefix,
        ea_bits_len: u8,
        psid_offset: u8,
    ) -> Result<Self, MapError> {
        let n = u32::from(ipv6_prefix.prefix_len());
        let o = u32::from(ea_bits_len);
        if n + o > 64 {
            return Err(MapError::EaBitsPast64 {
                rule_len: ipv6_prefix.prefix_len(),
                ea_bits_len,
                total: n + o,
            });
        }
        if psid_offset > PORT_BITS {
            return Err(MapError::PsidOffsetTooLarge {
                offset: psid_offset,
            });
        }
        // k = o - p, where p = 32 - r bits of the EA bits are the IPv4 suffix.
        let k = (o + u32::from(ipv4_prefix.prefix_len())).saturating_sub(32);
        let total = u32::from(psid_offset) + k;
        if total > u32::from(PORT_BITS) {
            return Err(MapError::PortBitsExceeded {
                offset: psid_offset,
                psid_len: k,
                total,
                hint: "the PSID length is EA-bits length - (32 - IPv4 prefix length); \
                       check the EA-bits length, the IPv4 prefix and the PSID offset",
            });
        }
        let psid_format = PsidFormat::new(psid_offset, u8::try_from(k).unwrap_or(u8::MAX))?;
        Ok(Self {
            ipv6_prefix,
            ipv4_prefix,
            ea_bits_len,
            psid_format,
        })
    }

    /// The rule IPv6 prefix.
    pub fn ipv6_prefix(&self) -> Ipv6Prefix {
        self.ipv6_prefix
    }

    /// The rule IPv4 prefix.
    pub fn ipv4_prefix(&self) -> Ipv4Prefix {
        self.ipv4_prefix
    }

    /// The EA-bits length `o`.
    pub fn ea_bits_len(&self) -> u8 {
        self.ea_bits_len
    }

    /// The PSID offset `a` and the PSID length `k` the EA bits carry.
    pub fn psid_format(&self) -> PsidFormat {
        self.psid_format
    }

    /// The CE's IPv4 address, PSID and port set for `end_user` (RFC 7597 §5.2).
    pub fn apply(&self, end_user: Ipv6Prefix) -> Result<CeAssignment, MapError> {
        self.assign(end_user, None)
    }

    /// Like [`MapRule::apply`] for a rule that gives a full IPv4 address, with a PSID
    /// provisioned separately (e.g. DHCPv6 `S46_PORTPARAMS`, RFC 7598), as in
    /// RFC 7597 Appendix A, Example 5.
    pub fn apply_with_psid(
        &self,
        end_user: Ipv6Prefix,
        psid_len: u8,
        psid: u16,
    ) -> Result<CeAssignment, MapError> {
        self.assign(end_user, Some((psid_len, psid)))
    }

    fn assign(
        &self,
        end_user: Ipv6Prefix,
        provisioned: Option<(u8, u16)>,
    ) -> Result<CeAssignment, MapError> {
        let n = self.ipv6_prefix.prefix_len();
        let o = self.ea_bits_len;
        let r = self.ipv4_prefix.prefix_len();
        if end_user.prefix_len() > 64 {
            return Err(MapError::EndUserPrefixTooLong {
                len: end_user.prefix_len(),
            });
        }
        if !self.ipv6_prefix.contains(&end_user) {
            return Err(MapError::NotInRule {
                end_user,
                rule: self.ipv6_prefix,
            });
        }
        let available = end_user.prefix_len() - n; // contains() ensured end_user ≥ n
        if o > available {
            return Err(MapError::EaBitsExceedPrefix {
                ea_bits_len: o,
                end_user_len: end_user.prefix_len(),
                rule_len: n,
                available,
                needed: u32::from(n) + u32::from(o),
            });
        }
        // n + o ≤ 64, so the shift is at least 64 and the EA bits fit in a u64.
        let shift = 128 - u32::from(n) - u32::from(o);
        let ea_bits = (u128::from(end_user.addr()).checked_shr(shift).unwrap_or(0) as u64)
            & low_bits(o.into());

        let k = self.psid_format.psid_len();
        let prefix = u32::from(self.ipv4_prefix.addr());
        let (ipv4, psid) = match u32::from(o) + u32::from(r) {
            total if total > 32 => {
                let suffix = ea_bits.checked_shr(k.into()).unwrap_or(0);
                let psid = ea_bits & low_bits(k.into());
                let addr = Ipv4Addr::from(prefix | (suffix & u64::from(u32::MAX)) as u32);
                (Ipv4Assignment::SharedAddress(addr), psid as u16)
            }
            32 => {
                let addr = Ipv4Addr::from(prefix | (ea_bits & u64::from(u32::MAX)) as u32);
                (Ipv4Assignment::FullAddress(addr), 0)
            }
            total => {
                let bits = (ea_bits << (32 - total)) & u64::from(u32::MAX);
                let assigned = Ipv4Prefix::new(Ipv4Addr::from(prefix | bits as u32), total as u8)?;
                (Ipv4Assignment::Prefix(assigned), 0)
            }
        };

        let (ipv4, port_set) = match (provisioned, ipv4) {
            (None, _) => (ipv4, self.psid_format.port_set(psid)?),
            (Some((len, psid)), Ipv4Assignment::FullAddress(addr)) => {
                let format = PsidFormat::new(self.psid_format.offset(), len)?;
                let set = format.port_set(psid)?;
                let ipv4 = if len == 0 {
                    ipv4
                } else {
                    Ipv4Assignment::SharedAddress(addr)
                };
                (ipv4, set)
            }
            (Some(_), Ipv4Assignment::SharedAddress(_)) => {
                return Err(MapError::PsidNotApplicable {
                    reason: format!("this rule already takes a {k}-bit PSID from the EA bits"),
                });
            }
            (Some(_), Ipv4Assignment::Prefix(p)) => {
                return Err(MapError::PsidNotApplicable {
                    reason: format!("this rule assigns the IPv4 prefix {p}"),
                });
            }
        };

        // RFC 7597 §6: End-user prefix, zero subnet ID, then 16 zero bits, the IPv4
        // address (a prefix right-padded with zeros) and the PSID right-aligned.
        let iid = (u64::from(u32::from(ipv4.addr())) << 16) | u64::from(port_set.psid());
        let map_ipv6_address = Ipv6Addr::from(u128::from(end_user.addr()) | u128::from(iid));

        Ok(CeAssignment {
            rule: *self,
            end_user_prefix: end_user,
            ea_bits,
            ipv4,
            port_set,
            map_ipv6_address,
        })
    }
}

/// What a MAP rule gives one CE: its IPv4 address (or prefix), PSID and port set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CeAssignment {
    rule: MapRule,
    end_user_prefix: Ipv6Prefix,
    ea_bits: u64,
    ipv4: Ipv4Assignment,
    port_set: PortSet,
    map_ipv6_address: Ipv6Addr,
}

impl CeAssignment {
    /// The rule that was applied.
    pub fn rule(&self) -> MapRule {
        self.rule
    }

    /// The End-user IPv6 prefix it was applied to.
    pub fn end_user_prefix(&self) -> Ipv6Prefix {
        self.end_user_prefix
    }

    /// The EA bits, right-aligned; there are [`MapRule::ea_bits_len`] of them.
    pub fn ea_bits(&self) -> u64 {
        self.ea_bits
    }

    /// The IPv4 address or prefix.
    pub fn ipv4(&self) -> Ipv4Assignment {
        self.ipv4
    }

    /// The PSID, its length and the ports it owns.
    pub fn port_set(&self) -> PortSet {
        self.port_set
    }

    /// The MAP IPv6 address: the CE's tunnel endpoint (RFC 7597 §6).
    pub fn map_ipv6_address(&self) -> Ipv6Addr {
        self.map_ipv6_address
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(v6: &str, v4: &str, ea: u8, offset: u8) -> MapRule {
        MapRule::with_psid_offset(v6.parse().unwrap(), v4.parse().unwrap(), ea, offset).unwrap()
    }

    fn prefix(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    /// RFC 7597 Appendix A, Example 1: the CE side of the Basic Mapping Rule.
    #[test]
    fn rfc7597_example_1() {
        let rule = rule("2001:db8::/40", "192.0.2.0/24", 16, 6);
        let ce = rule.apply(prefix("2001:db8:12:3400::/56")).unwrap();
        assert_eq!(ce.ea_bits(), 0x1234);
        assert_eq!(
            ce.ipv4(),
            Ipv4Assignment::SharedAddress(Ipv4Addr::new(192, 0, 2, 18))
        );
        let set = ce.port_set();
        assert_eq!(set.psid(), 0x34);
        assert_eq!(set.format().psid_len(), 8);
        assert_eq!(set.format().sharing_ratio(), 256);
        // "Available ports (63 ranges): 1232-1235, 2256-2259, ..., 63696-63699, 64720-64723"
        let blocks: Vec<_> = set.blocks().collect();
        assert_eq!(blocks.len(), 63);
        assert_eq!(blocks[..2], [1232..=1235, 2256..=2259]);
        assert_eq!(blocks[61..], [63696..=63699, 64720..=64723]);
        assert_eq!(set.port_count(), 252);
        assert_eq!(set.ports().count(), 252);
        assert_eq!(set.to_string(), "252 ports in 63 blocks of 4");
        assert_eq!(
            ce.map_ipv6_address(),
            "2001:db8:12:3400:0:c000:212:34"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
    }

    /// The BR (and FMR) direction of the same domain: a packet to 192.0.2.18 port
    /// 1232 belongs to PSID 0x34, whose CE is 2001:db8:12:3400::/56.
    #[test]
    fn rfc7597_br_direction() {
        let rule = rule("2001:db8::/40", "192.0.2.0/24", 16, 6);
        assert_eq!(rule.psid_format().psid_of_port(1232), Some(0x34));
        let ce = rule.apply(prefix("2001:db8:12:3400::/56")).unwrap();
        assert!(ce.port_set().contains(1232));
        assert!(!ce.port_set().contains(1236));
        assert!(!ce.port_set().contains(80));
    }

    /// Appendix A's rules without EA bits: a /32 rule IPv4 prefix gives a full address;
    /// with a provisioned 8-bit PSID 0x34 it is shared like Example 1.
    #[test]
    fn rfc7597_rule_without_ea_bits() {
        let rule = rule("2001:db8:12:3400::/56", "192.0.2.1/32", 0, 6);
        let end_user = prefix("2001:db8:12:3400::/56");
        let ce = rule.apply(end_user).unwrap();
        assert_eq!(
            ce.ipv4(),
            Ipv4Assignment::FullAddress(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(ce.port_set().to_string(), "65536 ports in 1 block of 65536");
        assert_eq!(
            ce.map_ipv6_address(),
            "2001:db8:12:3400:0:c000:201:0".parse::<Ipv6Addr>().unwrap()
        );

        let ce = rule.apply_with_psid(end_user, 8, 0x34).unwrap();
        assert_eq!(
            ce.ipv4(),
            Ipv4Assignment::SharedAddress(Ipv4Addr::new(192, 0, 2, 1))
        );
        let blocks: Vec<_> = ce.port_set().blocks().collect();
        assert_eq!(blocks.first(), Some(&(1232..=1235)));
        assert_eq!(blocks.last(), Some(&(64720..=64723)));
        assert_eq!(
            ce.map_ipv6_address(),
            "2001:db8:12:3400:0:c000:201:34"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
    }

    /// The shapes Japanese IPoE users meet: offset 4 with an 8-bit PSID, and offset 6
    /// with a 6-bit PSID.
    #[test]
    fn japanese_deployment_shapes() {
        let v6plus = rule("2001:db8::/40", "203.0.113.0/24", 16, 4);
        let ce = v6plus.apply(prefix("2001:db8:5:a700::/56")).unwrap();
        assert_eq!(ce.ipv4().to_string(), "203.0.113.5");
        let set = ce.port_set();
        assert_eq!(set.psid(), 0xa7);
        assert_eq!(set.to_string(), "240 ports in 15 blocks of 16");
        assert_eq!(set.blocks().next(), Some(0x1a70..=0x1a7f));
        assert_eq!(set.blocks().last(), Some(0xfa70..=0xfa7f));

        let ocn = rule("2001:db8::/40", "203.0.113.0/24", 14, 6);
        let ce = ocn.apply(prefix("2001:db8:5:a400::/56")).unwrap();
        assert_eq!(ce.port_set().psid(), 0x29);
        assert_eq!(ce.port_set().to_string(), "1008 ports in 63 blocks of 16");
    }

    #[test]
    fn full_address_and_prefix_assignments() {
        let ce = rule("2001:db8::/40", "192.0.2.0/24", 8, 6)
            .apply(prefix("2001:db8:12::/48"))
            .unwrap();
        assert_eq!(
            ce.ipv4(),
            Ipv4Assignment::FullAddress(Ipv4Addr::new(192, 0, 2, 18))
        );
        assert!(ce.port_set().contains(80));

        let ce = rule("2001:db8::/40", "198.18.0.0/16", 8, 6)
            .apply(prefix("2001:db8:ab::/48"))
            .unwrap();
        assert_eq!(ce.ipv4().to_string(), "198.18.171.0/24");
        assert_eq!(
            ce.map_ipv6_address(),
            "2001:db8:ab::c612:ab00:0".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn offset_zero_is_one_block() {
        let set = PsidFormat::new(0, 8).unwrap().port_set(0x34).unwrap();
        assert_eq!(set.blocks().collect::<Vec<_>>(), [0x3400..=0x34ff]);
        assert_eq!(set.to_string(), "256 ports in 1 block of 256");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let r = rule("2001:db8::/40", "192.0.2.0/24", 20, 4);
        let err = r.apply(prefix("2001:db8:12:3400::/56")).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "EA-bits length 20 exceeds the delegated prefix: the End-user IPv6 prefix /56 \
                 leaves only 16 bits after the /40 rule prefix"
            ),
            "{err}"
        );
        let r = rule("2001:db8::/40", "192.0.2.0/24", 16, 6);
        assert!(matches!(
            r.apply(prefix("2001:db9::/56")),
            Err(MapError::NotInRule { .. })
        ));
        assert!(matches!(
            r.apply(prefix("2001:db8::/32")),
            Err(MapError::NotInRule { .. })
        ));
        assert!(matches!(
            r.apply(prefix("2001:db8:12:3400::/96")),
            Err(MapError::EndUserPrefixTooLong { len: 96 })
        ));
        assert!(matches!(
            r.apply_with_psid(prefix("2001:db8:12:3400::/56"), 8, 1),
            Err(MapError::PsidNotApplicable { .. })
        ));

        let v6 = prefix("2001:db8::/40");
        let v4: Ipv4Prefix = "192.0.2.0/24".parse().unwrap();
        assert!(matches!(
            MapRule::new(v6, v4, 20),
            Err(MapError::PortBitsExceeded { total: 18, .. })
        ));
        assert!(matches!(
            MapRule::new(v6, v4, 30),
            Err(MapError::EaBitsPast64 { total: 70, .. })
        ));
        assert!(matches!(
            MapRule::with_psid_offset(v6, v4, 16, 17),
            Err(MapError::PsidOffsetTooLarge { offset: 17 })
        ));
        assert!(matches!(
            PsidFormat::new(6, 8).unwrap().port_set(256),
            Err(MapError::PsidOutOfRange { limit: 256, .. })
        ));

        let err = "2001:db8::1/40".parse::<Ipv6Prefix>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "2001:db8::1/40 has bits set after /40, so it is not a prefix: did you mean 2001:db8::/40?"
        );
        assert!(matches!(
            "2001:db8::".parse::<Ipv6Prefix>(),
            Err(MapError::PrefixSyntax { .. })
        ));
        assert!(matches!(
            "192.0.2.0/33".parse::<Ipv4Prefix>(),
            Err(MapError::PrefixTooLong { max: 32, .. })
        ));
        assert!(matches!(
            "192.0.2.0/x".parse::<Ipv4Prefix>(),
            Err(MapError::PrefixSyntax { .. })
        ));
    }

    proptest! {
        /// Port sets of all PSIDs are disjoint, cover every port with A ≠ 0, and every
        /// port in a set maps back to that set's PSID.
        #[test]
        fn port_sets_partition_the_ports(offset in 0u8..=16, len in 1u8..=12) {
            prop_assume!(offset + len <= 16);
            let format = PsidFormat::new(offset, len).unwrap();
            let mut owner = vec![None::<u16>; 1 << 16];
            for psid in 0..(1u32 << len) {
                let psid = u16::try_from(psid).unwrap();
                let set = format.port_set(psid).unwrap();
                let mut count = 0;
                for port in set.ports() {
                    prop_assert_eq!(format.psid_of_port(port), Some(psid));
                    prop_assert!(set.contains(port));
                    prop_assert_eq!(owner[usize::from(port)], None, "port {} in two sets", port);
                    owner[usize::from(port)] = Some(psid);
                    count += 1;
                }
                prop_assert_eq!(count, set.port_count());
            }
            for (port, owner) in owner.iter().enumerate() {
                let a_is_zero = offset > 0 && port >> (16 - offset) == 0;
                prop_assert_eq!(owner.is_none(), a_is_zero, "port {}", port);
            }
        }

        /// Blocks are sorted, non-adjacent and of the announced size.
        #[test]
        fn blocks_are_separate(offset in 0u8..=16, len in 0u8..=16, psid: u16) {
            prop_assume!(offset + len <= 16);
            let format = PsidFormat::new(offset, len).unwrap();
            let set = format.port_set(psid % u16::try_from(format.sharing_ratio().min(65535)).unwrap().max(1)).unwrap();
            let blocks: Vec<_> = set.blocks().collect();
            prop_assert_eq!(blocks.len() as u32, set.block_count());
            for b in &blocks {
                prop_assert_eq!(u32::from(*b.end()) - u32::from(*b.start()) + 1, set.block_size());
            }
            for pair in blocks.windows(2) {
                prop_assert!(u32::from(*pair[0].end()) + 1 < u32::from(*pair[1].start()));
            }
        }

        /// No rule and prefix make `apply` panic; whatever it accepts is consistent.
        #[test]
        fn apply_never_panics(
            rule_v6: u128, n in 0u8..=130, rule_v4: u32, r in 0u8..=34,
            o in 0u8..=70, a in 0u8..=18, end_user: u128, len in 0u8..=130,
        ) {
            let v6 = Ipv6Prefix::new(Ipv6Addr::from(rule_v6 & mask128(n)), n);
            let v4 = Ipv4Prefix::new(Ipv4Addr::from(rule_v4 & mask32(r)), r);
            let (Ok(v6), Ok(v4)) = (v6, v4) else { return Ok(()) };
            let Ok(rule) = MapRule::with_psid_offset(v6, v4, o, a) else { return Ok(()) };
            // Half the time, put the End-user prefix inside the rule prefix.
            let inside = (end_user & !mask128(n)) | u128::from(v6.addr());
            let addr = if end_user & 1 == 0 { inside } else { end_user };
            let Ok(end_user) = Ipv6Prefix::new(Ipv6Addr::from(addr & mask128(len)), len) else {
                return Ok(());
            };
            if let Ok(ce) = rule.apply(end_user) {
                let map = u128::from(ce.map_ipv6_address());
                prop_assert_eq!(map & mask128(64), u128::from(end_user.addr()));
                prop_assert_eq!(map as u16, ce.port_set().psid());
                let ipv4 = u32::from(ce.ipv4().addr());
                prop_assert_eq!(ipv4 & mask32(r), u32::from(v4.addr()));
                prop_assert!(ce.ea_bits() <= low_bits(o.into()));
            }
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Ipv6Prefix>();
            let _ = s.parse::<Ipv4Prefix>();
        }
    }
}
