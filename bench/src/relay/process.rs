//! The relay under test as a child process: started with the same settings for
//! coturn and tsunagi-relay, optionally pinned to a set of CPUs, and its CPU time
//! read from the kernel's scheduler statistics.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Long-term credentials both relays are started with.
pub const USER: &str = "bench";
/// See [`USER`].
pub const PASS: &str = "bench-password";
/// See [`USER`].
pub const REALM: &str = "tsunagi";

/// Which relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// coturn's `turnserver`.
    Coturn,
    /// tsunagi-relay.
    Tsunagi,
}

impl Kind {
    /// The name printed in the table.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Coturn => "coturn",
            Kind::Tsunagi => "tsunagi",
        }
    }
}

/// How the relay runs: worker threads, and the CPUs it may use (`None`: any).
#[derive(Debug, Clone)]
pub struct Placement {
    /// Relay (worker) threads forced on both (coturn's `--relay-threads`,
    /// tsunagi's `--threads`); `None` leaves each relay at its own default.
    pub threads: Option<usize>,
    /// CPU list for `taskset -c`, e.g. `"1"`; applies to every thread of the relay.
    pub cpus: Option<String>,
}

/// A relay process, killed on drop.
pub struct RelayProcess {
    child: Child,
    /// Its listening address.
    pub server: SocketAddr,
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RelayProcess {
    /// Starts `kind` on a free loopback port and waits until it answers STUN.
    pub fn start(
        kind: Kind,
        tsunagi: &std::path::Path,
        placement: &Placement,
    ) -> anyhow::Result<Self> {
        let port = free_udp_port()?;
        let server: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let credentials = format!("{USER}:{PASS}");
        let program = match kind {
            Kind::Coturn => std::path::Path::new("turnserver"),
            Kind::Tsunagi => tsunagi,
        };
        // taskset sets the affinity before exec, so every thread inherits it.
        let mut command = match &placement.cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(program);
                c
            }
            None => Command::new(program),
        };
        match kind {
            Kind::Coturn => {
                command
                    .args(["-n", "--listening-ip", "127.0.0.1", "--listening-port"])
                    .arg(port.to_string())
                    .args(["--relay-ip", "127.0.0.1"])
                    .args(["--min-port", "50000", "--max-port", "50999"])
                    .args(["--lt-cred-mech", "--user", &credentials, "--realm", REALM])
                    .arg("--allow-loopback-peers")
                    .args(["--no-cli", "--no-tls", "--no-dtls", "--no-tcp"])
                    .args([
                        "--no-tcp-relay",
                        "--no-stdout-log",
                        "--log-file",
                        "/dev/null",
                    ])
                    .args(["--simple-log", "--pidfile", "/dev/null"]);
            }
            Kind::Tsunagi => {
                command
                    .args(["--listen", &server.to_string()])
                    .args(["--log", "error", "--user", &credentials, "--realm", REALM])
                    .args(["--relay-ip", "127.0.0.1"])
                    .args(["--min-port", "51000", "--max-port", "51999"])
                    .args(["--allow-peer", "127.0.0.0/8", "--max-bytes-per-sec", "0"])
                    // Like coturn's defaults: no allocation quota, so any
                    // `--flows` count runs.
                    .args(["--user-quota", "0", "--ip-quota", "0"]);
            }
        }
        if let Some(threads) = placement.threads {
            let flag = match kind {
                Kind::Coturn => "--relay-threads",
                Kind::Tsunagi => "--threads",
            };
            command.args([flag, &threads.to_string()]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", kind.name()))?;
        let relay = RelayProcess { child, server };
        wait_for_binding(server).with_context(|| format!("{} did not answer STUN", kind.name()))?;
        Ok(relay)
    }

    /// How many threads the process runs now (all of them, not only workers).
    pub fn thread_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id())).map_or(0, Iterator::count)
    }

    /// The process id (for profilers).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The CPU time of all the process's threads so far, in seconds, with
    /// nanosecond resolution: the sum of each thread's run time in
    /// `/proc/<pid>/task/<tid>/schedstat` (user and kernel time together).
    /// Falls back to utime + stime from `/proc/<pid>/stat` (10 ms ticks).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        match schedstat_seconds(self.child.id()) {
            Ok(seconds) => Ok(seconds),
            Err(_) => stat_seconds(self.child.id()),
        }
    }
}

fn schedstat_seconds(pid: u32) -> anyhow::Result<f64> {
    let mut nanos: u128 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may exit between listing and reading; it has no more time to add.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let first = text.split_whitespace().next().context("empty schedstat")?;
        nanos += first.parse::<u128>()?;
    }
    Ok(nanos as f64 / 1e9)
}

/// Linux's USER_HZ (`getconf CLK_TCK`), the unit of /proc/<pid>/stat times.
const CLOCK_TICKS: f64 = 100.0;

fn stat_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / CLOCK_TICKS)
}

/// Pins the calling process (and the threads it starts later) to `cpus`.
pub fn pin_self(cpus: &str) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-c", "-p", cpus])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset -c -p {cpus} failed");
    }
    Ok(())
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_binding(server: SocketAddr) -> anyhow::Result<()> {
    use tsunagi::stun::{Class, MessageBuilder, Method, TransactionId};
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let request =
        MessageBuilder::new(Class::Request, Method::BINDING, TransactionId::new([7; 12])).finish();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        socket.send_to(&request, server)?;
        if socket.recv_from(&mut buf).is_ok() {
            return Ok(());
        }
    }
    bail!("no Binding response from {server} in 10 s")
}
