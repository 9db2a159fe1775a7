//! UPnP-IGD / NAT-PMP / PCP on a site router with miniupnpd (2.3.1, nftables build).
//!
//! miniupnpd adds its rules to chains that must already exist: the filter chain
//! `miniupnpd` and the NAT chains `prerouting_miniupnpd` / `postrouting_miniupnpd`, in
//! tables named by `upnp_table_name` / `upnp_nat_table_name` (family `inet`). Debian's
//! `nft_init.sh` is broken, so the lab creates them in a table of its own,
//! `inet miniupnpd`, with base chains that jump to them: NAT just before the lab's NAT
//! (so a UPnP mapping wins over a cone mapping of the same port), filter just before
//! the lab's firewall (whose forward chain already accepts `ct status dnat` from `wan`).
//!
//! The router's WAN address (198.18.1.i) lies in 198.18.0.0/15, which miniupnpd treats
//! as reserved: it only offers port forwarding after STUN (RFC 5780, the lab's coturn)
//! shows the address is public and unfiltered. Its STUN test expects answers from the
//! server's other address and port, so the router's input firewall lets UDP from the
//! STUN server's two addresses and ports in.
//!
//! Everything miniupnpd writes (config, pid, leases, log) lives in the lab's workdir.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::Error;
use crate::lab::{Lab, SERVER_V4};
use crate::probe::udp_socket;

/// The NAT-PMP and PCP server port (RFC 6886, RFC 6887).
pub(crate) const NATPMP_PORT: u16 = 5351;
/// The UPnP HTTP (description and SOAP) port on the router's LAN address.
pub(crate) const HTTP_PORT: u16 = 5000;
/// How long miniupnpd may take (STUN included) to answer its first NAT-PMP request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The coturn program name, as the lab records its children.
const COTURN: &str = "turnserver";

/// Starts miniupnpd on `router` (site number `index`: WAN 198.18.1.index, LAN
/// 192.168.index.1/24 on bridge `lan`) and waits until it answers NAT-PMP with its
/// external address.
pub(crate) fn start(lab: &mut Lab, router: &str, index: u8) -> Result<(), Error> {
    // One coturn per lab serves every UPnP router (and any test that wants STUN).
    if !lab.children.iter().any(|(program, _)| program == COTURN) {
        crate::coturn::start(lab, &[])?;
    }
    let ns = lab.node(router)?.ns.clone();
    let wan = Ipv4Addr::new(198, 18, 1, index);
    let lan = Ipv4Addr::new(192, 168, index, 1);
    let stun = SERVER_V4[0];
    let stun_port = crate::coturn::STUN_PORT;

    ns.nft(&tables())?;
    let servers = SERVER_V4
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    ns.nft(&format!(
        "insert rule inet natlab_fw input iifname \"wan\" ip saddr {{ {servers} }} \
         udp sport {{ {stun_port}, {} }} accept\n",
        stun_port + 1
    ))?;

    let dir = lab.workdir().join(format!("miniupnpd-{index}"));
    std::fs::create_dir_all(&dir).map_err(|e| io_err(router, "workdir", &e))?;
    let conf = dir.join("miniupnpd.conf");
    let text = format!(
        "ext_ifname=wan\n\
         listening_ip=lan\n\
         http_port={HTTP_PORT}\n\
         ipv6_disable=yes\n\
         enable_upnp=yes\n\
         enable_natpmp=yes\n\
         ext_perform_stun=yes\n\
         ext_stun_host={stun}\n\
         ext_stun_port={stun_port}\n\
         upnp_table_name=miniupnpd\n\
         upnp_nat_table_name=miniupnpd\n\
         upnp_forward_chain=miniupnpd\n\
         upnp_nat_chain=prerouting_miniupnpd\n\
         upnp_nat_postrouting_chain=postrouting_miniupnpd\n\
         lease_file={leases}\n\
         minissdpdsocket={ssdp}\n\
         secure_mode=yes\n\
         system_uptime=no\n\
         notify_interval=60\n\
         clean_ruleset_interval=600\n\
         min_lifetime=60\n\
         max_lifetime=86400\n\
         friendly_name=natlab {router}\n\
         uuid=6e61746c-6162-4000-8000-0000000000{index:02x}\n\
         allow 1-65535 192.168.{index}.0/24 1-65535\n\
         deny 0-65535 0.0.0.0/0 0-65535\n",
        leases = dir.join("upnp.leases").display(),
        ssdp = dir.join("minissdpd.sock").display(),
    );
    std::fs::write(&conf, text).map_err(|e| io_err(router, "config", &e))?;
    let log = dir.join("miniupnpd.log");
    let out = File::create(&log).map_err(|e| io_err(router, "log", &e))?;
    let err = out.try_clone().map_err(|e| io_err(router, "log", &e))?;
    let conf = conf.to_string_lossy().into_owned();
    let pid = dir.join("miniupnpd.pid").to_string_lossy().into_owned();
    let mut cmd = ns.command("miniupnpd", ["-d", "-f", &conf, "-P", &pid]);
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let child = cmd.spawn().map_err(|e| Error::Spawn {
        program: "miniupnpd".into(),
        source: e,
    })?;
    lab.children.push(("miniupnpd".into(), child));
    let child = lab
        .children
        .last_mut()
        .map(|(_, c)| c)
        .ok_or_else(|| Error::Topology("miniupnpd child vanished".into()))?;
    wait_ready(&ns, child, lan, wan, router, &log)
}

/// The tables and chains miniupnpd 2.3.1 fills in, in their own table.
fn tables() -> String {
    "table inet miniupnpd {\n\
     \x20 chain forward {\n\
     \x20   type filter hook forward priority -10; policy accept;\n\
     \x20   jump miniupnpd\n\
     \x20 }\n\
     \x20 chain miniupnpd {\n\
     \x20 }\n\
     \x20 chain prerouting {\n\
     \x20   type nat hook prerouting priority -110; policy accept;\n\
     \x20   jump prerouting_miniupnpd\n\
     \x20 }\n\
     \x20 chain prerouting_miniupnpd {\n\
     \x20 }\n\
     \x20 chain postrouting {\n\
     \x20   type nat hook postrouting priority 90; policy accept;\n\
     \x20   jump postrouting_miniupnpd\n\
     \x20 }\n\
     \x20 chain postrouting_miniupnpd {\n\
     \x20 }\n\
     }\n"
    .to_owned()
}

/// A NAT-PMP external-address request (RFC 6886 §3.2: version 0, opcode 0).
pub(crate) fn natpmp_address_request() -> [u8; 2] {
    [0, 0]
}

/// Parses a NAT-PMP external-address response: `(result code, external address)`.
pub(crate) fn parse_natpmp_address(resp: &[u8]) -> Option<(u16, Ipv4Addr)> {
    if resp.len() < 12 || resp[0] != 0 || resp[1] != 128 {
        return None;
    }
    let result = u16::from_be_bytes([resp[2], resp[3]]);
    Some((result, Ipv4Addr::new(resp[8], resp[9], resp[10], resp[11])))
}

/// Asks miniupnpd over NAT-PMP (from the router's own LAN address) for its external
/// address every 100 ms until it answers with `wan`, it exits, or the bound passes.
fn wait_ready(
    ns: &crate::netns::Netns,
    child: &mut Child,
    lan: Ipv4Addr,
    wan: Ipv4Addr,
    router: &str,
    log: &Path,
) -> Result<(), Error> {
    let sock = udp_socket(ns, SocketAddr::V4(SocketAddrV4::new(lan, 0)))?;
    let server = SocketAddr::V4(SocketAddrV4::new(lan, NATPMP_PORT));
    let io = |e: std::io::Error| io_err(router, "NAT-PMP probe", &e);
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(io)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = None;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Netns {
                name: router.to_owned(),
                reason: format!(
                    "miniupnpd exited ({status}) during start-up:\n{}",
                    tail(log)
                ),
            });
        }
        // Nobody listens yet: the send may fail with ECONNREFUSED; just retry.
        let _ = sock.send_to(&natpmp_address_request(), server);
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from != server {
                continue;
            }
            match parse_natpmp_address(buf.get(..n).unwrap_or_default()) {
                Some((0, addr)) if addr == wan => return Ok(()),
                other => last = other,
            }
        }
    }
    let seen = match last {
        Some((code, addr)) => format!("last answer: result {code}, address {addr}"),
        None => "no answer".into(),
    };
    Err(Error::Timeout {
        what: format!(
            "miniupnpd on {router} answering NAT-PMP with external address {wan} ({seen}); log:\n{}",
            tail(log)
        ),
        after: READY_TIMEOUT,
    })
}

/// The last lines of miniupnpd's log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn io_err(router: &str, what: &str, e: &std::io::Error) -> Error {
    Error::Netns {
        name: router.to_owned(),
        reason: format!("miniupnpd {what}: {e}"),
    }
}
