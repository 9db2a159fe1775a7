//! NAT64 prefix discovery (RFC 7050): ask the DNS64 server for the AAAA records of
//! `ipv4only.arpa`, a name that only has A records (192.0.0.170 and 192.0.0.171). A
//! DNS64 server synthesizes AAAA records from them, and where the well-known IPv4
//! address sits inside each AAAA record gives the NAT64 prefix and its length
//! (RFC 6052 §2.2: /32, /40, /48, /56, /64 or /96).
//!
//! The DNS client is a minimal one written here (one question over UDP, answers parsed
//! with bounds checks on every read): a full DNS library would be larger than
//! everything this probe needs, and the parser never panics on any input.
//!
//! ```
//! use tsunagi::diag::nat64::Nat64Prefix;
//!
//! let aaaa = "2001:db8:46::c000:aa".parse()?;
//! let prefix = Nat64Prefix::from_synthesized(aaaa).expect("a /96 prefix");
//! assert_eq!(prefix.to_string(), "2001:db8:46::/96");
//! # Ok::<(), std::net::AddrParseError>(())
//! ```

use std::fmt;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The name whose AAAA records reveal the NAT64 prefix (RFC 7050 §2).
pub const WELL_KNOWN_NAME: &str = "ipv4only.arpa";
/// The well-known IPv4 addresses of `ipv4only.arpa` (RFC 7050 §2.2).
pub const WELL_KNOWN_ADDRESSES: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)];
/// The prefix lengths RFC 6052 §2.2 allows, longest first.
pub const PREFIX_LENGTHS: [u8; 6] = [96, 64, 56, 48, 40, 32];

const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// Longest DNS name on the wire (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// Compression pointers followed per name before it is declared a loop.
const MAX_POINTERS: usize = 32;

/// A NAT64 prefix: the first `length` bits of `prefix` (the rest are zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Nat64Prefix {
    /// The prefix address, with every bit after `length` cleared.
    pub prefix: Ipv6Addr,
    /// The prefix length: 32, 40, 48, 56, 64 or 96.
    pub length: u8,
}

impl Nat64Prefix {
    /// The byte positions of the embedded IPv4 address for a prefix length (RFC 6052
    /// §2.2; byte 8, bits 64–71, is the reserved "u" octet and always skipped).
    fn ipv4_bytes(length: u8) -> Option<[usize; 4]> {
        Some(match length {
            32 => [4, 5, 6, 7],
            40 => [5, 6, 7, 9],
            48 => [6, 7, 9, 10],
            56 => [7, 9, 10, 11],
            64 => [9, 10, 11, 12],
            96 => [12, 13, 14, 15],
            _ => return None,
        })
    }

    /// The IPv4 address embedded in `addr` for a prefix of `length` bits, if `length`
    /// is one RFC 6052 allows and the "u" octet is zero (for lengths below 96).
    pub fn embedded_ipv4(addr: Ipv6Addr, length: u8) -> Option<Ipv4Addr> {
        let pos = Self::ipv4_bytes(length)?;
        let o = addr.octets();
        if length < 96 && o[8] != 0 {
            return None;
        }
        Some(Ipv4Addr::new(o[pos[0]], o[pos[1]], o[pos[2]], o[pos[3]]))
    }

    /// The prefix of a synthesized AAAA record of `ipv4only.arpa`: the longest length at
    /// which one of the well-known addresses is embedded, or `None` if there is none.
    pub fn from_synthesized(addr: Ipv6Addr) -> Option<Nat64Prefix> {
        Self::candidates(addr).first().map(|(p, _)| *p)
    }

    /// Every (prefix, well-known address) reading of `addr`, longest prefix first.
    fn candidates(addr: Ipv6Addr) -> Vec<(Nat64Prefix, Ipv4Addr)> {
        PREFIX_LENGTHS
            .iter()
            .filter_map(|&length| {
                let v4 = Self::embedded_ipv4(addr, length)?;
                WELL_KNOWN_ADDRESSES
                    .contains(&v4)
                    .then(|| (Self::new(addr, length), v4))
            })
            .collect()
    }

    /// `addr` cut to its first `length` bits (at most 128).
    pub fn new(addr: Ipv6Addr, length: u8) -> Nat64Prefix {
        let length = length.min(128);
        let mask = u128::MAX.checked_shl(128 - u32::from(length)).unwrap_or(0);
        Nat64Prefix {
            prefix: Ipv6Addr::from(u128::from(addr) & mask),
            length,
        }
    }

    /// The IPv6 address through which this NAT64 reaches `v4` (RFC 6052 §2.2).
    pub fn synthesize(&self, v4: Ipv4Addr) -> Ipv6Addr {
        let mut o = self.prefix.octets();
        if let Some(pos) = Self::ipv4_bytes(self.length) {
            for (i, b) in pos.into_iter().zip(v4.octets()) {
                o[i] = b;
            }
        }
        Ipv6Addr::from(o)
    }
}

impl fmt::Display for Nat64Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.prefix, self.length)
    }
}

/// Derives the NAT64 prefixes from the AAAA records of `ipv4only.arpa` (RFC 7050 §3).
///
/// A record can hold a well-known address at more than one position; then the
/// reading that another record confirms with the *other* well-known address wins
/// (RFC 7050 §3), and failing that the longest prefix. Duplicates are removed;
/// the order of the records is kept.
pub fn prefixes_from(records: &[Ipv6Addr]) -> Vec<Nat64Prefix> {
    let readings: Vec<Vec<(Nat64Prefix, Ipv4Addr)>> = records
        .iter()
        .map(|a| Nat64Prefix::candidates(*a))
        .collect();
    let mut out: Vec<Nat64Prefix> = Vec::new();
    for cands in &readings {
        let confirmed = cands
            .iter()
            .find(|(p, v4)| readings.iter().flatten().any(|(q, w)| q == p && w != v4));
        if let Some((p, _)) = confirmed.or(cands.first())
            && !out.contains(p)
        {
            out.push(*p);
        }
    }
    out
}

/// Why a DNS response could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The datagram ends inside the header, a name or a record.
    #[error("truncated DNS message (the server or the path cut it; try another DNS64 server)")]
    Truncated,
    /// The datagram is not a response to our query.
    #[error("DNS message is not the answer to our query (wrong ID, question or QR bit)")]
    NotOurAnswer,
    /// A name is malformed (a loop of compression pointers, a reserved label type, too long).
    #[error("malformed name in DNS message (the server sent garbage; try another DNS64 server)")]
    BadName,
}

/// What a DNS response to the `AAAA ipv4only.arpa` query said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The response code (0 = no error, 3 = the name does not exist).
    pub rcode: u8,
    /// The TC bit: the answer did not fit in the datagram.
    pub truncated: bool,
    /// The AAAA records for the queried name (following CNAMEs within the answer).
    pub aaaa: Vec<Ipv6Addr>,
}

/// Builds a recursive DNS query for `AAAA <name>` with ID `id`. `None` if `name` has
/// an empty or over-long label, or is too long for DNS.
pub fn build_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(12 + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    if q.len() - 12 > MAX_NAME {
        return None;
    }
    q.extend_from_slice(&TYPE_AAAA.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Some(q)
}

fn u16_at(buf: &[u8], at: usize) -> Result<u16, DnsError> {
    let b = buf.get(at..at.checked_add(2).ok_or(DnsError::Truncated)?);
    b.and_then(|b| Some(u16::from_be_bytes([*b.first()?, *b.get(1)?])))
        .ok_or(DnsError::Truncated)
}

/// Reads the (possibly compressed) name at `at`; returns it lower-cased with dots,
/// and the offset just after it in the message.
fn read_name(buf: &[u8], mut at: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *buf.get(at).ok_or(DnsError::Truncated)?;
        match len & 0xC0 {
            0x00 if len == 0 => break,
            0x00 => {
                let label = buf
                    .get(at + 1..at + 1 + usize::from(len))
                    .ok_or(DnsError::Truncated)?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
                if name.len() > MAX_NAME {
                    return Err(DnsError::BadName);
                }
                at += 1 + usize::from(len);
            }
            0xC0 => {
                let ptr = usize::from(u16_at(buf, at)? & 0x3FFF);
                end.get_or_insert(at + 2);
                jumps += 1;
                if jumps > MAX_POINTERS {
                    return Err(DnsError::BadName);
                }
                at = ptr;
            }
            _ => return Err(DnsError::BadName),
        }
    }
    Ok((name, end.unwrap_or(at + 1)))
}

/// Reads the resource record at `at`: its owner, type and the range of its data.
fn read_record(buf: &[u8], at: usize) -> Result<(String, u16, std::ops::Range<usize>), DnsError> {
    let (owner, next) = read_name(buf, at)?;
    let (rtype, rdlen) = (u16_at(buf, next)?, usize::from(u16_at(buf, next + 8)?));
    let rdata = next + 10..next + 10 + rdlen;
    if rdata.end > buf.len() {
        return Err(DnsError::Truncated);
    }
    Ok((owner, rtype, rdata))
}

/// Parses the response to a query built by [`build_query`] with the same `id` and
/// `name`. Never panics, whatever `buf` holds.
pub fn parse_response(buf: &[u8], id: u16, name: &str) -> Result<DnsAnswer, DnsError> {
    let flags = u16_at(buf, 2)?;
    if u16_at(buf, 0)? != id || flags & 0x8000 == 0 {
        return Err(DnsError::NotOurAnswer);
    }
    let (qd, an) = (u16_at(buf, 4)?, u16_at(buf, 6)?);
    let want = name.trim_end_matches('.').to_ascii_lowercase();
    let mut at = 12;
    for _ in 0..qd {
        let (qname, next) = read_name(buf, at)?;
        if qname != want || u16_at(buf, next)? != TYPE_AAAA {
            return Err(DnsError::NotOurAnswer);
        }
        at = next + 4;
    }
    let truncated = flags & 0x0200 != 0;
    let mut owners = vec![want];
    let mut aaaa = Vec::new();
    for _ in 0..an {
        let (owner, rtype, rdata) = match read_record(buf, at) {
            Ok(v) => v,
            // A truncated answer keeps the records read so far.
            Err(DnsError::Truncated) if truncated => break,
            Err(e) => return Err(e),
        };
        if owners.contains(&owner) {
            if rtype == TYPE_AAAA
                && let Some(o) = buf
                    .get(rdata.clone())
                    .and_then(|r| <[u8; 16]>::try_from(r).ok())
            {
                aaaa.push(Ipv6Addr::from(o));
            } else if rtype == TYPE_CNAME {
                owners.push(read_name(buf, rdata.start)?.0);
            }
        }
        at = rdata.end;
    }
    Ok(DnsAnswer {
        rcode: (flags & 0x000F) as u8,
        truncated,
        aaaa,
    })
}

/// How the NAT64 probe is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nat64Options {
    /// The DNS64 server; `None` = the first `nameserver` of `/etc/resolv.conf`.
    pub server: Option<SocketAddr>,
    /// How long to wait for the answer in total (the query is sent up to 3 times).
    pub timeout: Duration,
}

impl Default for Nat64Options {
    fn default() -> Self {
        Nat64Options {
            server: None,
            timeout: Duration::from_millis(1500),
        }
    }
}

/// What the server said about `ipv4only.arpa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Nat64Status {
    /// It synthesized AAAA records: the network has NAT64/DNS64.
    Found,
    /// It answered without synthesized records: no DNS64 (so probably no NAT64).
    NotSynthesized,
    /// It answered with an error code (e.g. SERVFAIL): unknown.
    ServerError,
    /// It did not answer in time, or the packet could not be sent: unknown.
    NoAnswer,
    /// No DNS server is configured (nothing in `/etc/resolv.conf`): unknown.
    NoServer,
}

/// The result of the NAT64 probe. An empty `prefixes` is a result, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat64Report {
    /// The DNS64 server asked, if there was one.
    pub server: Option<SocketAddr>,
    /// What its answer showed.
    pub status: Nat64Status,
    /// The NAT64 prefixes found, in the server's order (usually one).
    pub prefixes: Vec<Nat64Prefix>,
}

impl Nat64Report {
    /// The first prefix, the one to synthesize addresses with.
    pub fn prefix(&self) -> Option<Nat64Prefix> {
        self.prefixes.first().copied()
    }

    /// The first prefix as text (`2001:db8:46::/96`): the value of
    /// [`Report::nat64_prefix`](super::Report::nat64_prefix).
    pub fn prefix_text(&self) -> Option<String> {
        self.prefix().map(|p| p.to_string())
    }
}

/// Why the probe could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Nat64Error {
    /// No local UDP socket could be opened.
    #[error(
        "cannot open a UDP socket to ask the DNS64 server {server}: {source} (check that the process may use the network)"
    )]
    Socket {
        /// The server.
        server: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The first `nameserver` in a resolv.conf text, port 53. IPv6 zone names are dropped
/// (numeric zones are kept).
pub fn nameserver_from_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "nameserver" {
            return None;
        }
        let addr = words.next()?;
        let (ip, zone) = addr.split_once('%').unwrap_or((addr, ""));
        let ip: IpAddr = ip.parse().ok()?;
        let mut sa = SocketAddr::new(ip, 53);
        if let (SocketAddr::V6(v6), Ok(scope)) = (&mut sa, zone.parse::<u32>()) {
            v6.set_scope_id(scope);
        }
        Some(sa)
    })
}

/// Asks the DNS64 server for `AAAA ipv4only.arpa` and derives the NAT64 prefixes.
///
/// Blocking; bounded by `options.timeout`. Only a failure to open a local socket is
/// an error: an absent or silent DNS64 server is reported in [`Nat64Report::status`].
pub fn discover(options: &Nat64Options) -> Result<Nat64Report, Nat64Error> {
    let server = options.server.or_else(|| {
        let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
        nameserver_from_resolv_conf(&text)
    });
    let Some(server) = server else {
        tracing::debug!("no DNS server configured; NAT64 discovery skipped");
        return Ok(report(None, Nat64Status::NoServer, Vec::new()));
    };
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).map_err(|source| Nat64Error::Socket { server, source })?;
    let id = query_id();
    let Some(query) = build_query(id, WELL_KNOWN_NAME) else {
        return Ok(report(Some(server), Nat64Status::NoAnswer, Vec::new()));
    };
    if let Err(e) = sock.connect(server) {
        tracing::debug!(%server, error = %e, "DNS64 server unreachable");
        return Ok(report(Some(server), Nat64Status::NoAnswer, Vec::new()));
    }
    let deadline = Instant::now() + options.timeout;
    let step = options.timeout / 3;
    let mut buf = [0u8; 1500];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Err(e) = sock.send(&query) {
            tracing::debug!(%server, error = %e, "cannot send the DNS64 query");
            break;
        }
        let round = Instant::now() + step.min(left).max(Duration::from_millis(10));
        while let Some(wait) = round.checked_duration_since(Instant::now()) {
            if sock
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .is_err()
            {
                break;
            }
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => {
                    // Port or host unreachable: nothing serves DNS there.
                    tracing::debug!(%server, error = %e, "DNS64 server unreachable");
                    return Ok(report(Some(server), Nat64Status::NoAnswer, Vec::new()));
                }
            };
            match parse_response(buf.get(..n).unwrap_or_default(), id, WELL_KNOWN_NAME) {
                Ok(answer) => return Ok(judge(server, &answer)),
                Err(e) => tracing::debug!(%server, error = %e, "ignoring a DNS datagram"),
            }
        }
    }
    Ok(report(Some(server), Nat64Status::NoAnswer, Vec::new()))
}

fn judge(server: SocketAddr, answer: &DnsAnswer) -> Nat64Report {
    let prefixes = prefixes_from(&answer.aaaa);
    let status = match (answer.rcode, prefixes.is_empty()) {
        (_, false) => Nat64Status::Found,
        (0 | 3, true) => Nat64Status::NotSynthesized,
        _ => Nat64Status::ServerError,
    };
    tracing::debug!(%server, ?status, ?prefixes, "NAT64 discovery");
    report(Some(server), status, prefixes)
}

fn report(
    server: Option<SocketAddr>,
    status: Nat64Status,
    prefixes: Vec<Nat64Prefix>,
) -> Nat64Report {
    Nat64Report {
        server,
        status,
        prefixes,
    }
}

/// A query ID that an off-path attacker cannot guess (RFC 5452 §9.2).
fn query_id() -> u16 {
    u16::from_be_bytes(super::ipv6::random_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: u16 = 0x1234;

    /// A response to our query with `answers` (type, rdata), owner = the question name.
    fn response(flags: u16, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = build_query(ID, WELL_KNOWN_NAME).unwrap();
        m[2..4].copy_from_slice(&(0x8180 | flags).to_be_bytes());
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (t, rdata) in answers {
            m.extend_from_slice(&[0xC0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    fn aaaa(a: Ipv6Addr) -> (u16, Vec<u8>) {
        (TYPE_AAAA, a.octets().to_vec())
    }

    #[test]
    fn query_is_rd_aaaa_in() {
        let q = build_query(ID, "ipv4only.arpa.").unwrap();
        assert_eq!(&q[..12], &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x08ipv4only\x04arpa\x00\x00\x1c\x00\x01");
        assert!(build_query(ID, "a..b").is_none());
        assert!(build_query(ID, &"x".repeat(64)).is_none());
        assert!(build_query(ID, &["abc"; 70].join(".")).is_none());
    }

    #[test]
    fn every_rfc6052_prefix_length_is_found() {
        for (prefix, len) in [
            ("2001:db8::", 32),
            ("2001:db8:100::", 40),
            ("2001:db8:122::", 48),
            ("2001:db8:122:300::", 56),
            ("2001:db8:122:344::", 64),
            ("2001:db8:122:344::", 96),
            ("64:ff9b::", 96),
        ] {
            let p = Nat64Prefix::new(prefix.parse().unwrap(), len);
            let records: Vec<Ipv6Addr> = WELL_KNOWN_ADDRESSES
                .iter()
                .map(|v4| p.synthesize(*v4))
                .collect();
            let msg = response(0, &records.iter().map(|a| aaaa(*a)).collect::<Vec<_>>());
            let answer = parse_response(&msg, ID, WELL_KNOWN_NAME).unwrap();
            assert_eq!(answer.aaaa, records);
            let report = judge("[2001:db8::53]:53".parse().unwrap(), &answer);
            assert_eq!(report.status, Nat64Status::Found);
            assert_eq!(report.prefixes, vec![p], "/{len}");
            assert_eq!(
                report.prefix().unwrap().to_string(),
                format!("{prefix}/{len}")
            );
        }
    }

    #[test]
    fn rfc6052_examples_embed_192_0_2_33() {
        let v4 = Ipv4Addr::new(192, 0, 2, 33);
        for (prefix, len, expect) in [
            ("2001:db8::", 32, "2001:db8:c000:221::"),
            ("2001:db8:100::", 40, "2001:db8:1c0:2:21::"),
            ("2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::", 96, "2001:db8:122:344::192.0.2.33"),
        ] {
            let p = Nat64Prefix::new(prefix.parse().unwrap(), len);
            let a: Ipv6Addr = expect.parse().unwrap();
            assert_eq!(p.synthesize(v4), a, "/{len}");
            assert_eq!(Nat64Prefix::embedded_ipv4(a, len), Some(v4));
        }
    }

    #[test]
    fn an_ambiguous_record_is_settled_by_the_other_well_known_address() {
        // A /32 NAT64 whose records also carry 192.0.0.170 where a /96 would put it.
        let first: Ipv6Addr = "2001:db8:c000:aa::c000:aa".parse().unwrap();
        let second: Ipv6Addr = "2001:db8:c000:ab::c000:aa".parse().unwrap();
        assert_eq!(Nat64Prefix::candidates(first).len(), 2);
        let p32 = Nat64Prefix::new("2001:db8::".parse().unwrap(), 32);
        assert_eq!(prefixes_from(&[first, second]), vec![p32]);
        // Alone, the longest reading wins.
        assert_eq!(prefixes_from(&[first]), vec![Nat64Prefix::new(first, 96)]);
        // And a /96 confirmed by .171 beats the /32 reading.
        let other: Ipv6Addr = "2001:db8:c000:aa::c000:ab".parse().unwrap();
        assert_eq!(
            prefixes_from(&[first, other]),
            vec![Nat64Prefix::new(first, 96)]
        );
    }

    #[test]
    fn no_synthesis_is_a_result() {
        let server = "192.0.2.53:53".parse().unwrap();
        let nx = parse_response(&response(3, &[]), ID, WELL_KNOWN_NAME).unwrap();
        assert_eq!(judge(server, &nx).status, Nat64Status::NotSynthesized);
        let a_only = response(0, &[(1, vec![192, 0, 0, 170])]);
        let a = parse_response(&a_only, ID, WELL_KNOWN_NAME).unwrap();
        assert!(a.aaaa.is_empty());
        let r = judge(server, &a);
        assert_eq!((r.status, r.prefix()), (Nat64Status::NotSynthesized, None));
        let plain = response(0, &[aaaa("2001:db8::1".parse().unwrap())]);
        let p = parse_response(&plain, ID, WELL_KNOWN_NAME).unwrap();
        assert_eq!(judge(server, &p).status, Nat64Status::NotSynthesized);
        let fail = parse_response(&response(2, &[]), ID, WELL_KNOWN_NAME).unwrap();
        assert_eq!(judge(server, &fail).status, Nat64Status::ServerError);
    }

    #[test]
    fn cname_chains_are_followed_and_other_owners_ignored() {
        let mut m = response(0, &[(TYPE_CNAME, b"\x05other\x00".to_vec())]);
        let target = m.len() - 7; // the CNAME's rdata
        m[6..8].copy_from_slice(&3u16.to_be_bytes());
        let a = "64:ff9b::c000:aa".parse::<Ipv6Addr>().unwrap();
        for owner in [vec![0xC0, target as u8], b"\x05stray\x00".to_vec()] {
            m.extend_from_slice(&owner);
            m.extend_from_slice(&[0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
            m.extend_from_slice(&a.octets());
        }
        let answer = parse_response(&m, ID, WELL_KNOWN_NAME).unwrap();
        assert_eq!(answer.aaaa, vec![a]);
    }

    #[test]
    fn malformed_and_foreign_messages_are_errors() {
        let good = response(0, &[aaaa("64:ff9b::c000:aa".parse().unwrap())]);
        for n in 0..good.len() {
            assert!(
                parse_response(&good[..n], ID, WELL_KNOWN_NAME).is_err(),
                "cut at {n}"
            );
        }
        assert_eq!(
            parse_response(&good, ID + 1, WELL_KNOWN_NAME),
            Err(DnsError::NotOurAnswer)
        );
        let mut query = good.clone();
        query[2] &= 0x7F;
        assert_eq!(
            parse_response(&query, ID, WELL_KNOWN_NAME),
            Err(DnsError::NotOurAnswer)
        );
        assert_eq!(
            parse_response(&good, ID, "example.com"),
            Err(DnsError::NotOurAnswer)
        );
        // A pointer loop in the answer's owner name.
        let mut looped = good.clone();
        let owner = 12 + WELL_KNOWN_NAME.len() + 2 + 4;
        looped[owner..owner + 2].copy_from_slice(&[0xC0, owner as u8]);
        assert_eq!(
            parse_response(&looped, ID, WELL_KNOWN_NAME),
            Err(DnsError::BadName)
        );
        // A reserved label type.
        let mut reserved = good.clone();
        reserved[owner] = 0x80;
        assert_eq!(
            parse_response(&reserved, ID, WELL_KNOWN_NAME),
            Err(DnsError::BadName)
        );
        // An AAAA with a short rdata is skipped, not read past.
        let short = response(0, &[(TYPE_AAAA, vec![1, 2, 3])]);
        assert!(
            parse_response(&short, ID, WELL_KNOWN_NAME)
                .unwrap()
                .aaaa
                .is_empty()
        );
    }

    #[test]
    fn a_truncated_answer_keeps_what_was_read() {
        let a = "64:ff9b::c000:aa".parse().unwrap();
        let mut m = response(0x0200, &[aaaa(a), aaaa(a)]);
        m.truncate(m.len() - 20);
        let answer = parse_response(&m, ID, WELL_KNOWN_NAME).unwrap();
        assert!(answer.truncated);
        assert_eq!(answer.aaaa, vec![a]);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..600 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse_response(&buf, ID, WELL_KNOWN_NAME);
            let mut framed = response(0, &[]);
            framed[6] = 0xff;
            framed.extend_from_slice(&buf);
            let _ = parse_response(&framed, ID, WELL_KNOWN_NAME);
        }
    }

    #[test]
    fn resolv_conf_first_nameserver() {
        let text = "# comment\nsearch lab\nnameserver fe80::1%eth0\nnameserver 10.0.0.1\n";
        assert_eq!(
            nameserver_from_resolv_conf(text),
            Some("[fe80::1]:53".parse().unwrap())
        );
        let scoped = nameserver_from_resolv_conf("nameserver fe80::1%2").unwrap();
        assert!(matches!(scoped, SocketAddr::V6(v) if v.scope_id() == 2));
        assert_eq!(nameserver_from_resolv_conf("nameserver bogus\n"), None);
        assert_eq!(nameserver_from_resolv_conf(""), None);
    }

    #[test]
    fn silent_server_is_no_answer() {
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let options = Nat64Options {
            server: Some(quiet.local_addr().unwrap()),
            timeout: Duration::from_millis(150),
        };
        let r = discover(&options).unwrap();
        assert_eq!((r.status, r.prefixes.len()), (Nat64Status::NoAnswer, 0));
    }
}
