//! A DNS64 responder on a NAT64 site's router (RFC 6147, just enough of it): a thread
//! in the router's namespace answering UDP queries on the router's LAN IPv6 address,
//! port 53.
//!
//! - `AAAA ipv4only.arpa` → `2001:db8:46::c000:aa` and `2001:db8:46::c000:ab`, the
//!   well-known addresses 192.0.0.170/171 synthesized with the lab's NAT64 prefix
//!   (what RFC 7050 prefix discovery looks for);
//! - `AAAA <a>-<b>-<c>-<d>.v4.lab` → the synthesized address of IPv4 `a.b.c.d`;
//! - any other type for those names → no records (NOERROR); any other name → NXDOMAIN.
//!
//! It stops when the lab is dropped.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Error;
use crate::lab::{Lab, nat64_address};
use crate::probe::udp_socket;

/// The DNS port the responder listens on.
pub const DNS_PORT: u16 = 53;
/// The well-known addresses of `ipv4only.arpa` (RFC 7050 §2.2).
const WELL_KNOWN: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)];
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const NXDOMAIN: u8 = 3;
const FORMERR: u8 = 1;

/// The LAN IPv6 address of site `index`'s router, where its DNS64 responder listens.
pub fn router_lan_v6(index: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, u16::from(index), 0, 0, 0, 0, 1)
}

/// The running responder; stops its thread on drop.
#[derive(Debug)]
pub struct Dns64 {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Dns64 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Dns64 {
    /// The address it answers on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Starts the responder on `router` (site number `index`) and keeps it with the lab.
pub(crate) fn start(lab: &mut Lab, router: &str, index: u8) -> Result<(), Error> {
    let ns = lab.node(router)?.ns.clone();
    let bind = SocketAddr::new(router_lan_v6(index).into(), DNS_PORT);
    let sock = udp_socket(&ns, bind)?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| Error::Netns {
            name: router.to_owned(),
            reason: format!("DNS64 socket: {e}"),
        })?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("dns64-{router}"))
        .spawn(move || serve(&sock, &flag))
        .map_err(|e| Error::Netns {
            name: router.to_owned(),
            reason: format!("cannot start the DNS64 thread: {e}"),
        })?;
    tracing::debug!(%bind, router, "DNS64 responder up");
    lab.keep(Box::new(Dns64 {
        addr: bind,
        stop,
        thread: Some(thread),
    }));
    Ok(())
}

fn serve(sock: &UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = sock.recv_from(&mut buf)
            && let Some(reply) = answer(buf.get(..n).unwrap_or_default())
        {
            let _ = sock.send_to(&reply, from);
        }
    }
}

/// The AAAA records the responder holds for `name` (lower case, no trailing dot);
/// `None` if the name does not exist.
pub fn records(name: &str) -> Option<Vec<Ipv6Addr>> {
    if name == "ipv4only.arpa" {
        return Some(WELL_KNOWN.iter().map(|a| nat64_address(*a)).collect());
    }
    let octets: Vec<u8> = name
        .strip_suffix(".v4.lab")?
        .split('-')
        .map(|o| o.parse().ok())
        .collect::<Option<_>>()?;
    let v4: [u8; 4] = octets.try_into().ok()?;
    Some(vec![nat64_address(Ipv4Addr::from(v4))])
}

/// The reply to one query datagram; `None` for datagrams not worth answering
/// (responses, too short to carry an ID).
pub fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    let flags = u16::from_be_bytes([*query.get(2)?, *query.get(3)?]);
    if flags & 0x8000 != 0 {
        return None;
    }
    let rd = (flags >> 8) as u8 & 0x01;
    let mut reply = id.to_vec();
    let Some((name, qtype, qend)) = question(query) else {
        reply.extend_from_slice(&[0x80 | rd, 0x80 | FORMERR, 0, 0, 0, 0, 0, 0, 0, 0]);
        return Some(reply);
    };
    let found = records(&name);
    let aaaa: &[Ipv6Addr] = match (&found, qtype) {
        (Some(r), TYPE_AAAA) => r,
        _ => &[],
    };
    let rcode = if found.is_some() { 0 } else { NXDOMAIN };
    let ancount = u16::try_from(aaaa.len()).unwrap_or(0);
    reply.extend_from_slice(&[0x84 | rd, 0x80 | rcode, 0, 1]); // QR AA (RD) RA
    reply.extend_from_slice(&ancount.to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(query.get(12..qend)?);
    for a in aaaa {
        reply.extend_from_slice(&[0xC0, 12]); // the question's name
        reply.extend_from_slice(&TYPE_AAAA.to_be_bytes());
        reply.extend_from_slice(&CLASS_IN.to_be_bytes());
        reply.extend_from_slice(&60u32.to_be_bytes());
        reply.extend_from_slice(&16u16.to_be_bytes());
        reply.extend_from_slice(&a.octets());
    }
    Some(reply)
}

/// The single question of a query: its name (lower case), type, and where it ends.
fn question(query: &[u8]) -> Option<(String, u16, usize)> {
    if query.get(4..6)? != [0, 1] {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // queries carry no compression
        }
        let label = query.get(at + 1..at + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + len;
    }
    let qtype = u16::from_be_bytes([*query.get(at + 1)?, *query.get(at + 2)?]);
    let qclass = u16::from_be_bytes([*query.get(at + 3)?, *query.get(at + 4)?]);
    (qclass == CLASS_IN).then(|| (labels.join("."), qtype, at + 5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    #[test]
    fn ipv4only_arpa_gets_both_well_known_addresses() {
        let q = query("IPv4only.arpa", TYPE_AAAA);
        let r = answer(&q).unwrap();
        assert_eq!(&r[..8], &[0xab, 0xcd, 0x85, 0x80, 0, 1, 0, 2]);
        assert_eq!(&r[12..q.len()], &q[12..]);
        let rdata = |i: usize| {
            let at = q.len() + i * 28 + 12;
            Ipv6Addr::from(<[u8; 16]>::try_from(&r[at..at + 16]).unwrap())
        };
        assert_eq!(
            rdata(0),
            "2001:db8:46::c000:aa".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            rdata(1),
            "2001:db8:46::c000:ab".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn v4_lab_names_are_synthesized() {
        assert_eq!(
            records("198-18-0-10.v4.lab"),
            Some(vec!["2001:db8:46::c612:a".parse().unwrap()])
        );
        assert_eq!(records("198-18-0.v4.lab"), None);
        assert_eq!(records("198-18-0-300.v4.lab"), None);
    }

    #[test]
    fn unknown_names_are_nxdomain_and_other_types_empty() {
        let r = answer(&query("example.com", TYPE_AAAA)).unwrap();
        assert_eq!((r[3] & 0x0f, r[7]), (NXDOMAIN, 0));
        let a = answer(&query("ipv4only.arpa", 1)).unwrap();
        assert_eq!((a[3] & 0x0f, a[7]), (0, 0));
    }

    #[test]
    fn garbage_never_panics() {
        assert!(answer(&[]).is_none());
        let q = query("ipv4only.arpa", TYPE_AAAA);
        for n in 0..q.len() {
            let _ = answer(&q[..n]);
        }
        let bad = answer(&[1, 2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12]).unwrap();
        assert_eq!(bad[3] & 0x0f, FORMERR);
    }
}
