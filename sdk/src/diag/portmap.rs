//! Port-mapping protocols on the default gateway: UPnP-IGD (SSDP discovery, device
//! description, SOAP `GetExternalIPAddress`), NAT-PMP (RFC 6886, opcode 0) and PCP
//! (RFC 6887: ANNOUNCE, then a short MAP that is deleted right after, because only a
//! mapping reveals the external address), each with the external address it reports.
//!
//! Presence is information, never a requirement: behind port-sharing NAPT these
//! protocols are often missing or useless (the mission's finding 4). Everything is
//! bounded by short timeouts, runs the protocols in parallel, and treats whatever the
//! network sends as untrusted: parsers check every length and never panic.
//!
//! ```no_run
//! use tsunagi::diag::portmap::{self, PortmapOptions};
//! let found = portmap::probe(&PortmapOptions::default());
//! println!("NAT-PMP: {:?}", found.nat_pmp.present);
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::report::{PortMappingReport, PortMappingService};

/// The NAT-PMP and PCP server port.
pub const NATPMP_PORT: u16 = 5351;
/// The SSDP multicast group and port (UPnP Device Architecture 1.1 §1.3).
pub const SSDP_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)), 1900);
/// The largest HTTP response read from a gateway.
const HTTP_LIMIT: usize = 64 * 1024;
/// The IGD device types searched for.
const IGD_TYPES: [&str; 2] = [
    "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
    "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
];
/// PCP opcodes (RFC 6887 §19.2) and lifetime of the probing MAP (seconds).
const PCP_ANNOUNCE: u8 = 0;
const PCP_MAP: u8 = 1;
const PCP_PROBE_LIFETIME: u32 = 30;

/// How the port-mapping probe is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortmapOptions {
    /// The gateway to ask; `None` = the IPv4 default gateway from `/proc/net/route`.
    pub gateway: Option<Ipv4Addr>,
    /// How long each protocol exchange may take.
    pub timeout: Duration,
    /// Whether PCP may create a 30-second mapping (deleted right after) to learn the
    /// external address; without it PCP presence is tested with ANNOUNCE only.
    pub pcp_map: bool,
}

impl Default for PortmapOptions {
    fn default() -> Self {
        PortmapOptions {
            gateway: None,
            timeout: Duration::from_secs(1),
            pcp_map: true,
        }
    }
}

/// What the port-mapping probe found. `present: null` means "not probed" (no gateway).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortmapFindings {
    /// The gateway asked.
    pub gateway: Option<Ipv4Addr>,
    /// UPnP Internet Gateway Device.
    pub upnp_igd: PortMappingService,
    /// NAT-PMP (RFC 6886).
    pub nat_pmp: PortMappingService,
    /// PCP (RFC 6887).
    pub pcp: PortMappingService,
}

impl PortmapFindings {
    /// The part that [`Report::port_mapping`](super::Report::port_mapping) holds.
    pub fn to_report(&self) -> PortMappingReport {
        PortMappingReport {
            upnp_igd: self.upnp_igd.clone(),
            nat_pmp: self.nat_pmp.clone(),
            pcp: self.pcp.clone(),
        }
    }
}

/// Probes UPnP-IGD, NAT-PMP and PCP on the gateway, in parallel. Blocking; takes a few
/// `options.timeout`s at most. Never fails: what could not be learnt stays `None`.
pub fn probe(options: &PortmapOptions) -> PortmapFindings {
    let Some(gw) = options.gateway.or_else(default_gateway) else {
        tracing::debug!("no IPv4 default gateway; port-mapping protocols not probed");
        return PortmapFindings::default();
    };
    let (upnp_igd, (nat_pmp, pcp)) = std::thread::scope(|s| {
        let upnp = std::thread::Builder::new()
            .name("portmap-upnp".into())
            .spawn_scoped(s, || upnp_probe(gw, options.timeout));
        let pmp_pcp = natpmp_and_pcp(gw, options);
        let upnp = match upnp {
            Ok(handle) => handle.join().unwrap_or_default(),
            // No thread to spare: run it after the others.
            Err(_) => upnp_probe(gw, options.timeout),
        };
        (upnp, pmp_pcp)
    });
    let f = PortmapFindings {
        gateway: Some(gw),
        upnp_igd,
        nat_pmp,
        pcp,
    };
    tracing::debug!(?f, "port-mapping probe");
    f
}

fn service(present: bool, external: Option<IpAddr>) -> PortMappingService {
    PortMappingService {
        present: Some(present),
        external_address: external,
    }
}

// ---------------------------------------------------------------- default gateway

/// The IPv4 default gateway of this thread's network namespace (lowest metric).
pub fn default_gateway() -> Option<Ipv4Addr> {
    ["/proc/thread-self/net/route", "/proc/net/route"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| gateway_from_route_table(&t))
}

/// The default gateway in the text of `/proc/net/route` (hex fields in host order).
pub fn gateway_from_route_table(text: &str) -> Option<Ipv4Addr> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, gw, flags) = (hex(f.get(1)?)?, hex(f.get(2)?)?, hex(f.get(3)?)?);
            let metric = f.get(6).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
            // RTF_UP | RTF_GATEWAY, destination 0.0.0.0
            (dest == 0 && flags & 0x3 == 0x3 && gw != 0)
                .then(|| (metric, Ipv4Addr::from(gw.to_ne_bytes())))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, gw)| gw)
}

// ---------------------------------------------------------------- NAT-PMP and PCP

/// A NAT-PMP answer to the external-address request (RFC 6886 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatPmpAnswer {
    /// The result code (0 = success).
    pub result: u16,
    /// The external address (meaningful on success only).
    pub external: Ipv4Addr,
}

/// Parses a NAT-PMP external-address response.
pub fn parse_natpmp(resp: &[u8]) -> Option<NatPmpAnswer> {
    match resp {
        [0, 128, r0, r1, _, _, _, _, a, b, c, d, ..] => Some(NatPmpAnswer {
            result: u16::from_be_bytes([*r0, *r1]),
            external: Ipv4Addr::new(*a, *b, *c, *d),
        }),
        _ => None,
    }
}

/// A PCP response (RFC 6887 §7.2), with the MAP fields when it answers a MAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcpAnswer {
    /// The opcode answered.
    pub opcode: u8,
    /// The result code (0 = success).
    pub result: u8,
    /// The granted lifetime (seconds).
    pub lifetime: u32,
    /// For MAP: the nonce, the assigned external port and address.
    pub map: Option<([u8; 12], u16, IpAddr)>,
}

/// A PCP request header (client address as IPv4-mapped IPv6) plus opcode data.
pub fn pcp_request(opcode: u8, lifetime: u32, client: Ipv4Addr, data: &[u8]) -> Vec<u8> {
    let mut m = vec![2, opcode & 0x7f, 0, 0];
    m.extend_from_slice(&lifetime.to_be_bytes());
    m.extend_from_slice(&client.to_ipv6_mapped().octets());
    m.extend_from_slice(data);
    m
}

/// The opcode data of a UDP MAP request for `internal_port` (any external port).
pub fn pcp_map_data(nonce: [u8; 12], internal_port: u16) -> Vec<u8> {
    let mut d = nonce.to_vec();
    d.extend_from_slice(&[17, 0, 0, 0]);
    d.extend_from_slice(&internal_port.to_be_bytes());
    d.extend_from_slice(&0u16.to_be_bytes());
    d.extend_from_slice(&Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets());
    d
}

/// Parses a PCP response; `None` if it is not one (a NAT-PMP "unsupported version"
/// answer is version 0, so it is not).
pub fn parse_pcp(resp: &[u8]) -> Option<PcpAnswer> {
    if resp.len() < 24 || resp.len() > 1100 || resp.first() != Some(&2) {
        return None;
    }
    let op = *resp.get(1)?;
    if op & 0x80 == 0 {
        return None;
    }
    let opcode = op & 0x7f;
    let lifetime = u32::from_be_bytes(resp.get(4..8)?.try_into().ok()?);
    let map = match (opcode, resp.get(24..60)) {
        (PCP_MAP, Some(d)) => {
            let nonce: [u8; 12] = d.get(..12)?.try_into().ok()?;
            let port = u16::from_be_bytes(d.get(18..20)?.try_into().ok()?);
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(d.get(20..36)?).ok()?);
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            Some((nonce, port, ip))
        }
        _ => None,
    };
    Some(PcpAnswer {
        opcode,
        result: *resp.get(3)?,
        lifetime,
        map,
    })
}

/// Sends `request` on the connected `sock` every quarter of `timeout` until `accept`
/// takes an answer; `None` on silence or an ICMP error (nothing listens).
pub(crate) fn exchange<T>(
    sock: &UdpSocket,
    request: &[u8],
    timeout: Duration,
    accept: impl Fn(&[u8]) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1100];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.send(request).ok()?;
        let round = Instant::now() + left.min(timeout / 4);
        while let Some(wait) = round.checked_duration_since(Instant::now()) {
            sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .ok()?;
            match sock.recv(&mut buf) {
                Ok(n) => {
                    if let Some(t) = accept(buf.get(..n)?) {
                        return Some(t);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break;
                }
                Err(_) => return None,
            }
        }
    }
    None
}

fn natpmp_and_pcp(
    gw: Ipv4Addr,
    options: &PortmapOptions,
) -> (PortMappingService, PortMappingService) {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect((gw, NATPMP_PORT)).map(|()| s));
    let (sock, local) = match sock.and_then(|s| s.local_addr().map(|a| (s, a))) {
        Ok((s, SocketAddr::V4(a))) => (s, a),
        Ok(_) | Err(_) => {
            tracing::debug!(%gw, "no UDP socket toward the gateway for NAT-PMP/PCP");
            return (PortMappingService::default(), PortMappingService::default());
        }
    };
    let t = options.timeout;
    let pmp = exchange(&sock, &[0, 0], t, parse_natpmp);
    let nat_pmp = service(
        pmp.is_some(),
        pmp.filter(|a| a.result == 0).map(|a| a.external.into()),
    );
    let announce = pcp_request(PCP_ANNOUNCE, 0, *local.ip(), &[]);
    let ann = exchange(&sock, &announce, t, |r| {
        parse_pcp(r).filter(|a| a.opcode == PCP_ANNOUNCE)
    });
    if ann.is_none() || !options.pcp_map {
        return (nat_pmp, service(ann.is_some(), None));
    }
    let nonce = super::ipv6::random_bytes::<12>();
    let data = pcp_map_data(nonce, local.port());
    let map = pcp_request(PCP_MAP, PCP_PROBE_LIFETIME, *local.ip(), &data);
    let is_ours = |r: &[u8]| parse_pcp(r).filter(|a| a.map.is_some_and(|m| m.0 == nonce));
    let answer = exchange(&sock, &map, t, is_ours);
    let external = answer
        .filter(|a| a.result == 0)
        .and_then(|a| a.map)
        .map(|m| m.2);
    if answer.is_some_and(|a| a.result == 0) {
        // Delete it at once (lifetime 0, same nonce): the probe leaves nothing open.
        let delete = pcp_request(PCP_MAP, 0, *local.ip(), &data);
        if exchange(&sock, &delete, t, is_ours).is_none() {
            tracing::debug!(%gw, "PCP did not confirm deleting the probe mapping; it expires in 30 s");
        }
    }
    (nat_pmp, service(true, external))
}

// ---------------------------------------------------------------- UPnP-IGD

/// The LOCATION of an SSDP search response that announces an IGD or its WAN
/// connection services.
pub fn parse_ssdp(resp: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(resp).ok()?;
    let mut lines = text.split("\r\n");
    if !lines.next()?.starts_with("HTTP/1.1 200") {
        return None;
    }
    let mut location = None;
    let mut igd = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "location" {
            location = Some(v.to_owned());
        } else if k == "st" {
            igd = [
                "InternetGatewayDevice",
                "WANIPConnection",
                "WANPPPConnection",
            ]
            .iter()
            .any(|t| v.contains(t));
        }
    }
    location.filter(|_| igd)
}

/// Splits `http://a.b.c.d[:port]/path` into the address and path. Only IPv4 literals:
/// a gateway's URLs name its LAN address.
pub fn parse_http_url(url: &str) -> Option<(SocketAddr, String)> {
    let rest = url.strip_prefix("http://")?;
    let (hostport, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let (host, port) = match hostport.split_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, 80),
    };
    Some((
        SocketAddr::new(IpAddr::V4(host.parse().ok()?), port),
        path.to_owned(),
    ))
}

/// The text of the first `<tag>…</tag>` in `xml` (no attributes or namespace prefix).
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml.get(start..)?.find(&format!("</{tag}>"))?;
    Some(xml.get(start..start + len)?.trim())
}

/// The service type and control URL of the first WANIPConnection or
/// WANPPPConnection service in a device description.
pub fn find_wan_service(description: &str) -> Option<(String, String)> {
    description.split("<service>").skip(1).find_map(|block| {
        let block = block.split("</service>").next()?;
        let st = element(block, "serviceType")?;
        let wan = st.contains(":WANIPConnection:") || st.contains(":WANPPPConnection:");
        wan.then(|| Some((st.to_owned(), element(block, "controlURL")?.to_owned())))?
    })
}

/// The address in a SOAP `GetExternalIPAddress` response.
pub fn parse_external_ip(soap: &str) -> Option<IpAddr> {
    element(soap, "NewExternalIPAddress")?.parse().ok()
}

/// One HTTP/1.1 exchange with `addr` (connection closed after), bounded by `timeout`
/// and [`HTTP_LIMIT`]. Returns the status code and the (de-chunked) body.
fn http(addr: SocketAddr, head: &str, body: &str, timeout: Duration) -> Option<(u16, String)> {
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(format!("{head}Host: {addr}\r\nConnection: close\r\n\r\n{body}").as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while raw.len() < HTTP_LIMIT {
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(buf.get(..n)?),
            Err(_) if !raw.is_empty() => break,
            Err(_) => return None,
        }
    }
    parse_http_response(&raw)
}

/// Parses an HTTP/1.1 response: status code and body (Content-Length or chunked).
pub fn parse_http_response(raw: &[u8]) -> Option<(u16, String)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..split)?).ok()?;
    let mut body = raw.get(split + 4..)?.to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        if k == "transfer-encoding" && v.contains("chunked") {
            body = dechunk(&body)?;
        } else if k == "content-length" {
            body.truncate(v.parse().ok()?);
        }
    }
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(rest.get(..eol)?).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let end = eol.checked_add(2)?.checked_add(size)?;
        out.extend_from_slice(rest.get(eol + 2..end)?);
        rest = rest.get(end.checked_add(2)?..)?;
    }
}

/// Searches for an IGD on the gateway and asks it for its external address.
fn upnp_probe(gw: Ipv4Addr, timeout: Duration) -> PortMappingService {
    let Some(location) = ssdp_search(gw, timeout) else {
        return service(false, None);
    };
    let Some((addr, path)) = parse_http_url(&location).filter(|(a, _)| a.ip() == IpAddr::V4(gw))
    else {
        tracing::debug!(%location, "IGD description not on the gateway; ignored");
        return service(false, None);
    };
    let desc = http(addr, &format!("GET {path} HTTP/1.1\r\n"), "", timeout);
    let Some((st, control)) = desc.and_then(|(_, d)| find_wan_service(&d)) else {
        tracing::debug!(%location, "no WAN connection service in the IGD description");
        return service(false, None);
    };
    let control_path = match parse_http_url(&control) {
        Some((a, p)) if a == addr => p,
        Some(_) => return service(true, None),
        None if control.starts_with('/') => control,
        None => format!("/{control}"),
    };
    let body = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
         <u:GetExternalIPAddress xmlns:u=\"{st}\"></u:GetExternalIPAddress></s:Body></s:Envelope>\r\n"
    );
    let head = format!(
        "POST {control_path} HTTP/1.1\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n\
         SOAPAction: \"{st}#GetExternalIPAddress\"\r\nContent-Length: {}\r\n",
        body.len()
    );
    let external = http(addr, &head, &body, timeout)
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, b)| parse_external_ip(&b));
    service(true, external)
}

/// Sends SSDP M-SEARCHes for IGDs and returns the first LOCATION from the gateway.
fn ssdp_search(gw: Ipv4Addr, timeout: Duration) -> Option<String> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    let deadline = Instant::now() + timeout;
    for st in IGD_TYPES {
        let msg = format!(
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: {st}\r\n\r\n"
        );
        if let Err(e) = sock.send_to(msg.as_bytes(), SSDP_ADDR) {
            tracing::debug!(error = %e, "cannot send an SSDP search");
            return None;
        }
    }
    let mut buf = [0u8; 2048];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let (n, from) = sock.recv_from(&mut buf).ok()?;
        if from.ip() == IpAddr::V4(gw)
            && let Some(loc) = parse_ssdp(buf.get(..n)?)
        {
            return Some(loc);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_gateway_from_proc_net_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
                     eth1\t00000000\t0102A8C0\t0003\t0\t0\t200\t00000000\n\
                     eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\n";
        let want = Ipv4Addr::from(u32::from_str_radix("0101A8C0", 16).unwrap().to_ne_bytes());
        assert_eq!(gateway_from_route_table(table), Some(want));
        if cfg!(target_endian = "little") {
            assert_eq!(want, Ipv4Addr::new(192, 168, 1, 1));
        }
        assert_eq!(gateway_from_route_table("Iface\teth0\tzz\n"), None);
        assert_eq!(gateway_from_route_table(""), None);
    }

    #[test]
    fn natpmp_answers() {
        let ok = [0, 128, 0, 0, 0, 0, 0, 9, 198, 18, 1, 1];
        let a = parse_natpmp(&ok).unwrap();
        assert_eq!((a.result, a.external), (0, Ipv4Addr::new(198, 18, 1, 1)));
        assert_eq!(
            parse_natpmp(&[0, 128, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0])
                .unwrap()
                .result,
            3
        );
        for bad in [
            &ok[..11],
            &[0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4][..],
            &[2, 128][..],
            &[],
        ] {
            assert_eq!(parse_natpmp(bad), None);
        }
    }

    #[test]
    fn pcp_requests_and_answers() {
        let client = Ipv4Addr::new(192, 168, 1, 10);
        let announce = pcp_request(PCP_ANNOUNCE, 0, client, &[]);
        assert_eq!(announce.len(), 24);
        assert_eq!(&announce[..4], &[2, 0, 0, 0]);
        assert_eq!(&announce[8..], &client.to_ipv6_mapped().octets());
        let nonce = [7u8; 12];
        let req = pcp_request(PCP_MAP, 30, client, &pcp_map_data(nonce, 4000));
        assert_eq!(req.len(), 60);
        assert_eq!(
            (&req[36..40], &req[40..42]),
            (&[17u8, 0, 0, 0][..], &4000u16.to_be_bytes()[..])
        );
        // The server's answer: R bit, result 0, assigned port and address.
        let mut resp = req.clone();
        resp[1] |= 0x80;
        resp[8..24].fill(0);
        resp[42..44].copy_from_slice(&40000u16.to_be_bytes());
        resp[44..60].copy_from_slice(&Ipv4Addr::new(198, 18, 1, 1).to_ipv6_mapped().octets());
        let a = parse_pcp(&resp).unwrap();
        assert_eq!((a.opcode, a.result, a.lifetime), (PCP_MAP, 0, 30));
        assert_eq!(
            a.map,
            Some((nonce, 40000, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1))))
        );
        // A request is not an answer; NAT-PMP's "unsupported version" is not PCP.
        assert_eq!(parse_pcp(&req), None);
        assert_eq!(parse_pcp(&[0, 128, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        for n in 0..resp.len() {
            let _ = parse_pcp(&resp[..n]);
        }
        assert!(parse_pcp(&resp[..40]).unwrap().map.is_none());
    }

    const SSDP: &[u8] = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n\
        ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
        USN: uuid:x::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
        Location: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n";

    #[test]
    fn ssdp_and_urls() {
        assert_eq!(
            parse_ssdp(SSDP).as_deref(),
            Some("http://192.168.1.1:5000/rootDesc.xml")
        );
        let printer = String::from_utf8_lossy(SSDP).replace("InternetGatewayDevice", "Printer");
        assert_eq!(parse_ssdp(printer.as_bytes()), None);
        assert_eq!(parse_ssdp(b"NOTIFY * HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_ssdp(&[0xff, 0xfe]), None);
        let (addr, path) = parse_http_url("http://192.168.1.1:5000/rootDesc.xml").unwrap();
        assert_eq!(
            (addr, path.as_str()),
            ("192.168.1.1:5000".parse().unwrap(), "/rootDesc.xml")
        );
        assert_eq!(parse_http_url("http://10.0.0.1").unwrap().1, "/");
        for bad in [
            "https://10.0.0.1/",
            "http://router.local/x",
            "http://10.0.0.1:99999/",
            "",
        ] {
            assert_eq!(parse_http_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn description_and_soap() {
        let desc = "<root><device><serviceList>\
            <service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>\
            <controlURL>/ctl/L3F</controlURL></service></serviceList><deviceList><device>\
            <serviceList><service>\n <serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>\
            <controlURL> /ctl/IPConn </controlURL></service></serviceList></device></deviceList></device></root>";
        assert_eq!(
            find_wan_service(desc),
            Some((
                "urn:schemas-upnp-org:service:WANIPConnection:2".into(),
                "/ctl/IPConn".into()
            ))
        );
        assert_eq!(
            find_wan_service("<service><serviceType>x</serviceType>"),
            None
        );
        assert_eq!(
            find_wan_service("<service><serviceType>:WANIPConnection:1"),
            None
        );
        let soap = "<s:Envelope><s:Body><u:GetExternalIPAddressResponse>\
            <NewExternalIPAddress>198.18.1.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>";
        assert_eq!(parse_external_ip(soap), Some("198.18.1.1".parse().unwrap()));
        assert_eq!(
            parse_external_ip("<NewExternalIPAddress></NewExternalIPAddress>"),
            None
        );
        assert_eq!(parse_external_ip("<NewExternalIPAddress>1.2.3.4"), None);
    }

    #[test]
    fn http_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more";
        assert_eq!(parse_http_response(plain), Some((200, "hello".into())));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n";
        assert_eq!(parse_http_response(chunked), Some((200, "hello!".into())));
        assert_eq!(
            parse_http_response(b"HTTP/1.1 500 Oops\r\n\r\n"),
            Some((500, String::new()))
        );
        let bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\nab";
        assert_eq!(parse_http_response(bad_chunk), None);
        let overflow =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab";
        assert_eq!(parse_http_response(overflow), None);
        assert_eq!(parse_http_response(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(parse_http_response(b"garbage\r\n\r\n"), None);
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nx";
        assert_eq!(parse_http_response(huge), Some((200, "x".into())));
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let prefixes: [&[u8]; 4] = [b"", b"HTTP/1.1 200 OK\r\n", SSDP, b"\x02\x81\x00\x00"];
        for len in 0..400 {
            let noise: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if x.is_multiple_of(7) { b'\r' } else { x as u8 }
                })
                .collect();
            for p in prefixes {
                let buf = [p, &noise].concat();
                let text = String::from_utf8_lossy(&buf);
                let _ = (parse_natpmp(&buf), parse_pcp(&buf), parse_ssdp(&buf));
                let _ = (parse_http_response(&buf), find_wan_service(&text));
                let _ = (parse_external_ip(&text), parse_http_url(&text));
                let _ = gateway_from_route_table(&text);
            }
        }
    }

    #[test]
    fn a_gateway_without_any_protocol_is_absent_quickly() {
        // Loopback: nothing listens on 5351 (ICMP refused) nor answers SSDP.
        let options = PortmapOptions {
            gateway: Some(Ipv4Addr::LOCALHOST),
            timeout: Duration::from_millis(300),
            pcp_map: true,
        };
        let f = probe(&options);
        assert_eq!(f.gateway, Some(Ipv4Addr::LOCALHOST));
        for s in [&f.upnp_igd, &f.nat_pmp, &f.pcp] {
            assert_eq!((s.present, s.external_address), (Some(false), None));
        }
        assert_eq!(f.to_report().pcp, f.pcp);
    }
}
