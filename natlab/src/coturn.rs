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

/// coturn on 127.0.0.1 for tests that need no lab (no root, no namespace): a child
/// `turnserver` with its own work directory and a 50-port block (the listening port,
/// then relay ports 2–49 above it), killed and cleaned up on drop.
#[derive(Debug)]
pub struct Loopback {
    child: std::process::Child,
    dir: std::path::PathBuf,
    /// Where it listens (UDP, 127.0.0.1).
    pub addr: SocketAddr,
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where a [`Loopback`] coturn may listen: `slots` blocks of 50 ports from `first`.
/// Test binaries that run at the same time need disjoint ranges; within a binary,
/// tests pass distinct `index` values.
#[derive(Debug, Clone, Copy)]
pub struct PortBlocks {
    /// The first port of the first block.
    pub first: u16,
    /// How many 50-port blocks.
    pub slots: u32,
}

impl Loopback {
    /// Whether coturn's `turnserver` can be run here.
    pub fn installed() -> bool {
        std::process::Command::new("turnserver")
            .arg("--version")
            .output()
            .is_ok()
    }

    /// Starts coturn with `args` (authentication, realm, relay IPs, …) appended to
    /// the fixed ones (UDP only, loopback, loopback peers allowed), in a block picked
    /// from the process id, `index` and the attempt; another block only when the port
    /// is taken, any other failure is returned with coturn's log. Waits until it
    /// answers STUN (at most 10 s).
    pub fn start(blocks: PortBlocks, index: u32, args: &[&str]) -> Result<Loopback, Error> {
        let pid = std::process::id();
        let slots = blocks.slots.max(1);
        let mut last = String::new();
        for attempt in 0..8u32 {
            let slot = pid
                .wrapping_mul(31)
                .wrapping_add(index.wrapping_mul(104_729))
                .wrapping_add(attempt.wrapping_mul(7_919))
                % slots;
            let port = u32::from(blocks.first) + slot * 50;
            let Ok(port) = u16::try_from(port) else {
                break;
            };
            match Loopback::try_start(port, index, args) {
                Ok(coturn) => return Ok(coturn),
                Err(log) if log.contains("in use") || log.contains("annot bind") => last = log,
                Err(log) => {
                    return Err(Error::Command {
                        command: format!("turnserver on 127.0.0.1:{port}"),
                        status: "did not start".into(),
                        stderr: log,
                    });
                }
            }
        }
        Err(Error::Command {
            command: "turnserver on 127.0.0.1".into(),
            status: "no free 50-port block after 8 tries".into(),
            stderr: last,
        })
    }

    /// What coturn has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turn.log")).unwrap_or_default()
    }

    fn try_start(port: u16, index: u32, args: &[&str]) -> Result<Loopback, String> {
        use std::process::{Command, Stdio};
        let dir = std::env::temp_dir().join(format!(
            "natlab-coturn-{}-{index}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("turn.log")).map_err(|e| e.to_string())?;
        let (listen, min, max) = (
            port.to_string(),
            (port + 2).to_string(),
            (port + 49).to_string(),
        );
        let child = Command::new("turnserver")
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp"])
            .args(["--no-tcp-relay", "--listening-ip", "127.0.0.1"])
            .args(["--listening-port", &listen, "--min-port", &min])
            .args(["--max-port", &max, "--allow-loopback-peers"])
            .args(["--log-file", "stdout"])
            .arg("--userdb")
            .arg(dir.join("turndb"))
            .arg("--pidfile")
            .arg(dir.join("pid"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot run turnserver: {e}"))?;
        let mut coturn = Loopback {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        coturn.wait_ready()?;
        Ok(coturn)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let request = binding_request(*b"natlab-loopb");
        let end = Instant::now() + READY_TIMEOUT;
        let mut buf = [0u8; 1500];
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("turnserver exited with {status}:\n{}", self.log()));
            }
            let _ = probe.send_to(&request, self.addr);
            if let Ok((n, from)) = probe.recv_from(&mut buf)
                && from == self.addr
                && n >= 20
                && buf[..2] == [0x01, 0x01]
                && buf[8..20] == request[8..20]
            {
                return Ok(());
            }
        }
        Err(format!("no STUN answer within 10 s:\n{}", self.log()))
    }
}
