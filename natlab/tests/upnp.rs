//! A UPnP site (miniupnpd on a port-restricted cone router) checked with independent
//! clients: `upnpc` (miniupnpc) for UPnP-IGD discovery and port mappings, `natpmpc`
//! (libnatpmp) for NAT-PMP, and raw PCP (RFC 6887) ANNOUNCE and MAP requests.
//!
//! A mapping counts only when an unsolicited datagram from the internet reaches the
//! host through it; before the mapping the same datagram must be filtered.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Output;
use std::time::{Duration, Instant};

use natlab::probe::{receive, udp_socket};
use natlab::{Lab, Nat, SERVER_V4, Site, SiteKind, Topology};

const EXTERNAL: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const PCP_PORT: u16 = 5351;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a client in the host's namespace (bounded by the lab's command timeout).
fn client(lab: &Lab, program: &str, args: &[&str]) -> String {
    let host = lab.host("upnp").expect("upnp host");
    println!("$ {program} {}", args.join(" "));
    let out = host
        .ns
        .exec_unchecked(program, args)
        .expect("running a client in the host namespace");
    let t = text(&out);
    println!("{t}");
    assert!(out.status.success(), "{program} {args:?} failed: {t}");
    t
}

/// Sends `payload` from `from` to `to` every 200 ms until `sink` receives it or
/// `timeout` passes; returns the sender address the sink saw.
fn deliver(
    from: &UdpSocket,
    to: SocketAddr,
    sink: &UdpSocket,
    payload: &[u8],
    timeout: Duration,
) -> Option<SocketAddr> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        from.send_to(payload, to).expect("send from the server");
        while let Some((data, src)) = receive(sink, Duration::from_millis(200)) {
            if data == payload {
                return Some(src);
            }
        }
    }
    None
}

/// A PCP request header (RFC 6887 §7.1) from `client` (IPv4-mapped).
fn pcp_header(opcode: u8, lifetime: u32, client: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![2, opcode & 0x7f, 0, 0];
    m.extend_from_slice(&lifetime.to_be_bytes());
    m.extend_from_slice(&client.to_ipv6_mapped().octets());
    m
}

/// Sends a PCP request and returns the first response to it (R bit and opcode match),
/// retransmitting every 300 ms, ten times at most.
fn pcp_exchange(sock: &UdpSocket, req: &[u8]) -> Option<Vec<u8>> {
    let server = SocketAddr::from((GATEWAY, PCP_PORT));
    for _ in 0..10 {
        sock.send_to(req, server).expect("send PCP request");
        while let Some((resp, from)) = receive(sock, Duration::from_millis(300)) {
            if from == server && resp.len() >= 24 && resp[1] == 0x80 | req[1] {
                return Some(resp);
            }
        }
    }
    None
}

#[test]
fn miniupnpd_offers_upnp_igd_natpmp_and_pcp() {
    if !natlab::is_root() {
        println!("SKIPPED(not root)");
        return;
    }
    let lab =
        Lab::build(Topology::new().site(Site::new("upnp", SiteKind::Upnp(Nat::port_restricted()))))
            .expect("building a lab with a UPnP site");
    let host = lab.host("upnp").expect("upnp host").clone();
    let host_ip = host.v4().expect("host IPv4");
    let server = lab.server().expect("server").clone();
    let from_internet =
        udp_socket(&server.ns, SocketAddr::from((SERVER_V4[0], 0))).expect("server socket");

    // UPnP-IGD: discovery and status. upnpc calls an IGD whose external address is
    // reserved (198.18.0.0/15) "not connected?", hence -i (use it anyway).
    let status = client(&lab, "upnpc", &["-i", "-s"]);
    assert!(
        status.contains("desc: http://192.168.1.1:5000/rootDesc.xml"),
        "{status}"
    );
    assert!(status.contains("InternetGatewayDevice"), "{status}");
    assert!(status.contains("Status : Connected"), "{status}");
    assert!(
        status.contains(&format!("ExternalIPAddress = {EXTERNAL}")),
        "{status}"
    );

    // Before any mapping the router filters unsolicited datagrams.
    let sink = udp_socket(&host.ns, "0.0.0.0:40000".parse().expect("addr")).expect("host socket");
    let upnp_port = SocketAddr::from((EXTERNAL, 40000));
    assert_eq!(
        deliver(
            &from_internet,
            upnp_port,
            &sink,
            b"unsolicited",
            Duration::from_secs(1)
        ),
        None,
        "an unsolicited datagram reached the host before any mapping"
    );

    // UPnP AddPortMapping, then the same datagram gets through.
    let ip = host_ip.to_string();
    let added = client(
        &lab,
        "upnpc",
        &["-i", "-a", &ip, "40000", "40000", "UDP", "600"],
    );
    assert!(
        added.contains(&format!(
            "external {EXTERNAL}:40000 UDP is redirected to internal {ip}:40000"
        )),
        "{added}"
    );
    let seen = deliver(
        &from_internet,
        upnp_port,
        &sink,
        b"via upnp",
        Duration::from_secs(3),
    );
    assert_eq!(
        seen,
        Some(from_internet.local_addr().expect("local addr")),
        "a datagram to the UPnP mapping did not arrive (or arrived rewritten)"
    );
    let listed = client(&lab, "upnpc", &["-i", "-l"]);
    assert!(listed.contains(&format!("40000->{ip}:40000")), "{listed}");

    // NAT-PMP with libnatpmp's client: external address, then a mapping that forwards.
    let gw = GATEWAY.to_string();
    let pmp = client(&lab, "natpmpc", &["-g", &gw]);
    assert!(
        pmp.contains(&format!("Public IP address : {EXTERNAL}")),
        "{pmp}"
    );
    let pmp_map = client(
        &lab,
        "natpmpc",
        &["-g", &gw, "-a", "40001", "40001", "udp", "600"],
    );
    assert!(
        pmp_map.contains("Mapped public port 40001 protocol UDP to local port 40001"),
        "{pmp_map}"
    );
    let sink_pmp =
        udp_socket(&host.ns, "0.0.0.0:40001".parse().expect("addr")).expect("host socket");
    assert!(
        deliver(
            &from_internet,
            SocketAddr::from((EXTERNAL, 40001)),
            &sink_pmp,
            b"via nat-pmp",
            Duration::from_secs(3)
        )
        .is_some(),
        "a datagram to the NAT-PMP mapping did not arrive"
    );

    // PCP: ANNOUNCE (opcode 0) must succeed; MAP (opcode 1) returns the external
    // address and port, and the mapping forwards.
    let pcp = udp_socket(&host.ns, "0.0.0.0:0".parse().expect("addr")).expect("PCP socket");
    let announce = pcp_exchange(&pcp, &pcp_header(0, 0, host_ip)).expect("a PCP ANNOUNCE response");
    println!("PCP ANNOUNCE response: {announce:02x?}");
    assert_eq!(announce[0], 2, "PCP version");
    assert_eq!(announce[3], 0, "PCP ANNOUNCE result code (0 = SUCCESS)");

    let mut map = pcp_header(1, 600, host_ip);
    map.extend_from_slice(b"natlab-nonce"); // 12-byte mapping nonce
    map.extend_from_slice(&[17, 0, 0, 0]); // UDP
    map.extend_from_slice(&40002u16.to_be_bytes()); // internal port
    map.extend_from_slice(&40002u16.to_be_bytes()); // suggested external port
    map.extend_from_slice(&Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets());
    let resp = pcp_exchange(&pcp, &map).expect("a PCP MAP response");
    println!("PCP MAP response: {resp:02x?}");
    assert!(resp.len() >= 60, "short PCP MAP response");
    assert_eq!(resp[3], 0, "PCP MAP result code (0 = SUCCESS)");
    assert_eq!(&resp[24..36], b"natlab-nonce", "PCP MAP nonce");
    let ext_port = u16::from_be_bytes([resp[42], resp[43]]);
    let mut ext = [0u8; 16];
    ext.copy_from_slice(&resp[44..60]);
    let ext_ip = std::net::Ipv6Addr::from(ext).to_ipv4_mapped();
    println!("PCP MAP: external {ext_ip:?}:{ext_port}");
    assert_eq!(ext_ip, Some(EXTERNAL), "PCP MAP external address");
    let sink_pcp =
        udp_socket(&host.ns, "0.0.0.0:40002".parse().expect("addr")).expect("host socket");
    assert!(
        deliver(
            &from_internet,
            SocketAddr::from((EXTERNAL, ext_port)),
            &sink_pcp,
            b"via pcp",
            Duration::from_secs(3)
        )
        .is_some(),
        "a datagram to the PCP mapping did not arrive"
    );
}
