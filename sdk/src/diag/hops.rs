//! NAT layers and carrier-grade NAT from the path towards the STUN server.
//!
//! STUN sees only the outermost NAT. To count the NATs in between, the driver sends
//! TTL-limited Binding requests to the server **from the main socket, after the STUN
//! tests** (their mapping already exists in every NAT, so tracing costs no external
//! port — users behind MAP-E have few) and reads the routers' ICMP Time Exceeded
//! messages from the socket's error queue (`IP_RECVERR`, no root needed; Linux only,
//! see `trace.rs`; elsewhere the path stays `null` and the layers come from the
//! addresses alone).
//!
//! A router answers from the address of its interface that faces us, so each hop shows
//! the *inside* of a router. Every address belongs to a realm: private (RFC 1918, also
//! ULA and link-local), shared (RFC 6598 100.64.0.0/10: the inside of a CGN), the
//! DS-Lite softwire (192.0.0.0/29, RFC 6333) or public. Packets cannot leave a private
//! or shared realm untranslated, so **each change of realm on the way out is one NAT**:
//!
//! ```text
//! host 192.168.6.10 (private)
//!   hop 1 192.168.6.1  private   home router's inside       (same realm as the host)
//!   hop 2 100.64.6.1   shared    CGN's inside               change 1: the home router NATs
//!   hop 3 public / the server answers                       change 2: the CGN NATs
//! => 2 NATs, one of them carrier-grade
//! ```
//!
//! Only hops up to the first public one matter. Honest limits, reported as
//! `nat_layers = null` with a lower bound in `nat_layers_at_least`:
//! - a silent hop (ICMP filtered) before the first public one could hide a realm;
//! - two private hops in a row (say 192.168.1.1 then 192.168.0.1) could be routing or
//!   a second home NAT: the realms look alike;
//! - an untraced path (another OS, no answers at all) leaves only the addresses: a
//!   mapped address other than the local one proves at least one NAT.
//!
//! Entering the DS-Lite softwire is not a NAT (the B4 tunnels private IPv4 as it is);
//! leaving it is the AFTR's NAT44. The AFTR is carrier equipment shared by many
//! subscribers, port-limited like any CGN, so DS-Lite reports `cgn = true`.
//! A port-mapping gateway's external address (UPnP-IGD, NAT-PMP, PCP) adds evidence:
//! private or shared and not the mapped address ⇒ another NAT above the gateway;
//! equal to the mapped address ⇒ the gateway is the only NAT.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::report::Report;
use crate::stun::TransactionId;

#[cfg(target_os = "linux")]
mod trace;

#[cfg(target_os = "linux")]
pub(crate) use trace::trace;

/// Prefix of the warnings this module writes, so that recomputing replaces them.
const NOTE_PREFIX: &str = "NAT layers: ";

/// The path towards the STUN server as TTL-limited probes saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PathTrace {
    /// The router that answered at each TTL, from 1 (`null`: no answer). Ends at the
    /// first public router, or before the server.
    pub hops: Vec<Option<IpAddr>>,
    /// The TTL at which the server itself answered; `null` if it did not.
    pub server_reached_at: Option<u8>,
}

/// The address realm of a hop (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Realm {
    /// RFC 1918, link-local, IPv6 ULA / link-local.
    Private,
    /// RFC 6598 shared address space, 100.64.0.0/10: a carrier-grade NAT's inside.
    Shared,
    /// 192.0.0.0/29: the DS-Lite softwire between B4 and AFTR.
    Softwire,
    /// Anything else.
    Public,
}

/// The realm of `ip`.
pub(crate) fn realm(ip: IpAddr) -> Realm {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Realm::Shared
            } else if o[0] == 192 && o[1] == 0 && o[2] == 0 && o[3] < 8 {
                Realm::Softwire
            } else if a.is_private() || a.is_link_local() || a.is_loopback() {
                Realm::Private
            } else {
                Realm::Public
            }
        }
        IpAddr::V6(a) => {
            let s0 = a.segments()[0];
            if (s0 & 0xfe00) == 0xfc00 || (s0 & 0xffc0) == 0xfe80 || a.is_loopback() {
                Realm::Private
            } else {
                Realm::Public
            }
        }
    }
}

/// What the addresses and the path say about NAT layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layers {
    pub exact: Option<u8>,
    pub at_least: Option<u8>,
    pub cgn: Option<bool>,
    pub note: Option<String>,
}

/// NAT layers and CGN from the local address, the mapped address, the traced path and
/// a port-mapping gateway's external address. Pure; see the module docs.
pub(crate) fn interpret(
    local: IpAddr,
    mapped: Option<IpAddr>,
    path: Option<&PathTrace>,
    gateway_external: Option<IpAddr>,
) -> Layers {
    let unknown = Layers {
        exact: None,
        at_least: None,
        cgn: None,
        note: None,
    };
    let Some(mapped) = mapped else {
        return unknown;
    };
    if mapped == local {
        return Layers {
            exact: Some(0),
            at_least: Some(0),
            cgn: Some(false),
            note: None,
        };
    }
    let outside = realm(mapped);
    let mut chain = vec![realm(local)];
    let mut carrier =
        matches!(chain[0], Realm::Shared | Realm::Softwire) || outside == Realm::Shared;
    // Whether every hop before the outside answered, and nothing looked ambiguous.
    let mut complete = path.is_some();
    let mut gap = false;
    let mut ambiguous: Option<(IpAddr, IpAddr)> = None;
    let mut seen_private: Option<IpAddr> = None;
    if let Some(p) = path {
        let before_server = p
            .server_reached_at
            .map_or(p.hops.len(), |t| usize::from(t.saturating_sub(1)));
        let mut reached_outside = p.server_reached_at.is_some();
        let mut previous: Option<IpAddr> = None;
        for hop in p.hops.iter().take(before_server) {
            let Some(ip) = *hop else {
                gap = true;
                previous = None;
                continue;
            };
            let r = realm(ip);
            if r == Realm::Public {
                reached_outside = true;
                break;
            }
            if r == Realm::Private {
                if let Some(prev) = previous.filter(|p| realm(*p) == Realm::Private) {
                    ambiguous.get_or_insert((prev, ip));
                }
                seen_private.get_or_insert(ip);
            }
            carrier |= matches!(r, Realm::Shared | Realm::Softwire);
            chain.push(r);
            previous = Some(ip);
        }
        complete = reached_outside && !gap && ambiguous.is_none();
    }
    chain.push(outside);
    // Entering the softwire is tunnelling, not translation.
    let changes = chain
        .windows(2)
        .filter(|w| w[0] != w[1] && w[1] != Realm::Softwire)
        .count();
    let changes = u8::try_from(changes).unwrap_or(u8::MAX);
    let mut at_least = changes.max(1);
    let mut exact = (complete && changes >= 1).then_some(changes);
    if path.is_none() && chain[0] == Realm::Softwire {
        // The host is the B4 itself: the only NAT is the carrier's AFTR.
        exact = Some(1);
    }
    if let Some(gw) = gateway_external {
        if gw == mapped {
            // The gateway on our LAN is the outermost NAT: it is the only one.
            if exact.is_none() && ambiguous.is_none() && !gap {
                exact = Some(1);
            }
        } else if realm(gw) != Realm::Public {
            at_least = at_least.max(2);
            carrier |= realm(gw) == Realm::Shared;
            if exact.is_some_and(|e| e < 2) {
                exact = None;
            }
        }
    }
    let cgn = if carrier {
        Some(true)
    } else {
        exact.map(|_| false)
    };
    let note = if exact.is_some() {
        None
    } else if let Some((a, b)) = ambiguous {
        Some(format!(
            "{NOTE_PREFIX}at least {at_least}; two private networks in a row on the way out ({a}, then {b}) may or may not be another NAT"
        ))
    } else if path.is_none() {
        Some(format!(
            "{NOTE_PREFIX}at least {at_least} between {local} and the internet; the path could not be traced, so further NATs (for example a carrier-grade NAT behind the home router) cannot be ruled out"
        ))
    } else {
        Some(format!(
            "{NOTE_PREFIX}at least {at_least}; some routers on the way did not answer TTL-limited probes (ICMP filtered), so further NATs cannot be ruled out"
        ))
    };
    Layers {
        exact,
        at_least: Some(at_least),
        cgn,
        note,
    }
}

impl Report {
    /// Fills `nat_layers`, `nat_layers_at_least` and `cgn` from the local and mapped
    /// addresses, the traced path ([`Report::path`]) and the external address a
    /// port-mapping gateway reported, replacing an earlier conclusion and its warning.
    /// Call it again after adding port-mapping findings.
    pub fn update_nat_layers(&mut self) {
        let Some(local) = self.local_address else {
            return;
        };
        let pm = &self.port_mapping;
        let gateway = [&pm.upnp_igd, &pm.nat_pmp, &pm.pcp]
            .into_iter()
            .find_map(|s| s.external_address.filter(|_| s.present == Some(true)));
        let l = interpret(
            local.ip(),
            self.mapped_address.map(|a| a.ip()),
            self.path.as_ref(),
            gateway,
        );
        self.nat_layers = l.exact;
        self.nat_layers_at_least = l.at_least;
        self.cgn = l.cgn;
        self.warnings.retain(|w| !w.starts_with(NOTE_PREFIX));
        if let Some(note) = l.note {
            self.warnings.push(note);
        }
    }
}

/// How the path is traced.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // Used by the Linux driver only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceConfig {
    /// The largest TTL tried.
    pub max_ttl: u8,
    /// Sends per TTL before the hop counts as silent.
    pub attempts: u8,
    /// Silent TTLs in a row after which the trace gives up (ICMP filtered).
    pub max_silent: u8,
}

impl Default for TraceConfig {
    fn default() -> TraceConfig {
        TraceConfig {
            max_ttl: 8,
            attempts: 2,
            max_silent: 3,
        }
    }
}

/// The sans-IO tracer: one TTL at a time, so an ICMP message that quotes too little of
/// our request to identify it still belongs to the TTL being tried.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // Used by the Linux driver only.
#[derive(Debug)]
pub(crate) struct Tracer {
    cfg: TraceConfig,
    server: SocketAddr,
    ids: super::txn::IdGen,
    sent: Vec<(TransactionId, u8)>,
    ttl: u8,
    tries: u8,
    silent: u8,
    path: PathTrace,
    done: bool,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // Used by the Linux driver only.
impl Tracer {
    /// A trace towards `server`.
    pub fn new(cfg: TraceConfig, server: SocketAddr, seed: u64) -> Tracer {
        Tracer {
            cfg,
            server,
            ids: super::txn::IdGen::new(seed),
            sent: Vec::new(),
            ttl: 1,
            tries: 0,
            silent: 0,
            path: PathTrace::default(),
            done: cfg.max_ttl == 0,
        }
    }

    /// The next probe: the TTL to set and the Binding request to send to the server.
    /// `None` once done.
    pub fn next_probe(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.done {
            return None;
        }
        let id = self.ids.next_id();
        self.sent.push((id, self.ttl));
        self.tries += 1;
        let b = crate::stun::MessageBuilder::new(
            crate::stun::Class::Request,
            crate::stun::Method::BINDING,
            id,
        );
        Some((self.ttl, b.finish()))
    }

    fn ttl_of(&self, stun: &[u8]) -> Option<u8> {
        let id = stun.get(8..20)?;
        self.sent
            .iter()
            .find(|(t, _)| t.as_bytes().as_slice() == id)
            .map(|(_, ttl)| *ttl)
    }

    /// A router's ICMP Time Exceeded from `offender`, quoting `quoted` of our request.
    pub fn on_time_exceeded(&mut self, offender: IpAddr, quoted: &[u8]) {
        let ttl = self.ttl_of(quoted).unwrap_or(self.ttl);
        if self.done || ttl != self.ttl {
            return;
        }
        self.record(Some(offender));
        if realm(offender) == Realm::Public {
            self.done = true;
        }
    }

    /// A datagram on the socket: the server's answer ends the trace.
    pub fn on_datagram(&mut self, from: SocketAddr, data: &[u8]) {
        if from != self.server || self.done {
            return;
        }
        if let Some(ttl) = self.ttl_of(data) {
            self.on_reached(ttl);
        }
    }

    /// The server itself reported an error (port unreachable): it was reached.
    pub fn on_destination_error(&mut self, quoted: &[u8]) {
        let ttl = self.ttl_of(quoted).unwrap_or(self.ttl);
        self.on_reached(ttl);
    }

    fn on_reached(&mut self, ttl: u8) {
        if !self.done {
            self.path.server_reached_at = Some(ttl);
            self.path.hops.truncate(usize::from(ttl.saturating_sub(1)));
            self.done = true;
        }
    }

    /// No answer within the wait for the current probe.
    pub fn on_timeout(&mut self) {
        if self.done || self.tries < self.cfg.attempts.max(1) {
            return;
        }
        self.silent += 1;
        self.record(None);
        if self.silent >= self.cfg.max_silent.max(1) {
            self.done = true;
        }
    }

    fn record(&mut self, hop: Option<IpAddr>) {
        if hop.is_some() {
            self.silent = 0;
        }
        self.path.hops.push(hop);
        self.tries = 0;
        if self.ttl >= self.cfg.max_ttl {
            self.done = true;
        } else {
            self.ttl += 1;
        }
    }

    /// How many TTLs have a verdict (answered or silent): when it grows, or the trace
    /// is done, the driver stops waiting for the current probe.
    pub fn settled(&self) -> usize {
        self.path.hops.len()
    }

    /// Whether the trace is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The path found.
    pub fn into_path(self) -> PathTrace {
        self.path
    }
}

#[cfg(test)]
mod tests;
