//! coturn 4.6 (`turnserver`) in the lab's server namespace: the independent STUN /
//! RFC 5780 server that the self-test and other tools check the lab against.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::Error;
use crate::lab::{Lab, SERVER_V4, SERVER_V6};
use crate::probe::udp_socket;

/// The primary STUN port; the RFC 5780 alternate port is this + 1.
pub const STUN_PORT: u16 = 3478;
/// How long coturn may take to answer its first Binding request.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts coturn on the server's two IPv4 and two IPv6 addresses (ports 3478 and
/// 3479, so RFC 5780 is on) with `extra` arguments appended, and waits until it
/// answers STUN on every address.
///
/// Idempotent: if the lab already runs coturn (a UPnP site starts it for miniupnpd's
/// STUN check), this returns at once and `extra` is ignored.
pub fn start(lab: &mut Lab, extra: &[&str]) -> Result<(), Error> {
    if lab
        .children
        .iter()
        .any(|(program, _)| program == "turnserver")
    {
        return Ok(());
    }
    let pidfile = lab
        .workdir()
        .join("turnserver.pid")
        .to_string_lossy()
        .into_owned();
    // Its own user database: the default /var/lib/turn/turndb would be shared by labs.
    let userdb = lab.workdir().join("turndb").to_string_lossy().into_owned();
    let port = STUN_PORT.to_string();
    let alt = (STUN_PORT + 1).to_string();
    let ips: Vec<String> = SERVER_V4
        .iter()
        .map(|a| a.to_string())
        .chain(SERVER_V6.iter().map(|a| a.to_string()))
        .collect();
    let mut args: Vec<&str> = vec![
        "-n",
        "--no-cli",
        "--no-tls",
        "--no-dtls",
        "--simple-log",
        "--log-file",
        "stdout",
        "--pidfile",
        &pidfile,
        "--userdb",
        &userdb,
        "--listening-port",
        &port,
        "--alt-listening-port",
        &alt,
    ];
    for ip in &ips {
        args.extend(["--listening-ip", ip]);
    }
    args.extend_from_slice(extra);
    lab.spawn("server", "turnserver", &args)?;
    let ns = lab.server()?.ns.clone();
    for ip in SERVER_V4
        .iter()
        .map(|a| IpAddr::V4(*a))
        .chain(SERVER_V6.iter().map(|a| IpAddr::V6(*a)))
    {
        let bind = SocketAddr::new(
            if ip.is_ipv4() {
                [0u8; 4].into()
            } else {
                [0u16; 8].into()
            },
            0,
        );
        let sock = udp_socket(&ns, bind)?;
        wait_binding(&sock, SocketAddr::new(ip, STUN_PORT))?;
    }
    Ok(())
}

/// A minimal RFC 8489 Binding request (no attributes).
pub fn binding_request(txid: [u8; 12]) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    m.extend_from_slice(&txid);
    m
}

/// Sends Binding requests to `server` every 100 ms until a success response comes
/// back, within the start-up bound.
fn wait_binding(sock: &std::net::UdpSocket, server: SocketAddr) -> Result<(), Error> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let req = binding_request(*b"natlab-ready");
    let mut buf = [0u8; 1500];
    let io = |e: std::io::Error| Error::Netns {
        name: "server".into(),
        reason: e.to_string(),
    };
    while Instant::now() < deadline {
        sock.send_to(&req, server).map_err(io)?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(io)?;
        if let Ok((n, from)) = sock.recv_from(&mut buf)
            && from == server
            && n >= 20
            && buf[..2] == [0x01, 0x01]
            && buf[8..20] == req[8..20]
        {
            return Ok(());
        }
    }
    Err(Error::Timeout {
        what: format!("coturn answering STUN on {server}"),
        after: READY_TIMEOUT,
    })
}
