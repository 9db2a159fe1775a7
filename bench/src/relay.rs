//! `tsunagi-bench relay`: coturn 4.6.1 and tsunagi-relay, one after the other in
//! the same run, on loopback, under the same workloads (ChannelData and Send
//! indications; 100- and 1000-byte messages). For each it prints
//! (a) the relay's CPU-seconds per 100k relayed messages at a fixed offered load,
//! (b) messages/s and loss at saturation, (c) round-trip p50/p99 at a low rate,
//! and the ratio tsunagi/coturn. CPU time is the relay process's own
//! utime + stime from /proc, so the load generator sharing the cores does not count.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::relay_client::{Allocation, Credentials, Framing, frame, unframe};

/// Settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Messages per fixed-rate measurement.
    pub messages: u64,
    /// Offered load of the fixed-rate measurement, messages/s.
    pub rate: u64,
    /// Length of a saturation measurement.
    pub saturation: Duration,
    /// Allocations (client 5-tuples) carrying the load.
    pub flows: usize,
    /// Relay worker threads (both relays).
    pub threads: usize,
    /// Round trips sampled for (c).
    pub rtt_samples: usize,
}

const USER: &str = "bench";
const PASS: &str = "bench-password";
const REALM: &str = "tsunagi";
/// Linux's USER_HZ (`getconf CLK_TCK`), the unit of /proc/<pid>/stat times.
const CLOCK_TICKS: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Coturn,
    Tsunagi,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Coturn => "coturn",
            Kind::Tsunagi => "tsunagi",
        }
    }
}

/// A relay process, killed on drop.
struct RelayProcess {
    child: Child,
    server: SocketAddr,
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RelayProcess {
    fn start(kind: Kind, tsunagi: &std::path::Path, threads: usize) -> anyhow::Result<Self> {
        let port = free_udp_port()?;
        let server: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let threads = threads.to_string();
        let mut command = match kind {
            Kind::Coturn => {
                let mut c = Command::new("turnserver");
                c.args(["-n", "--listening-ip", "127.0.0.1", "--listening-port"])
                    .arg(port.to_string())
                    .args([
                        "--relay-ip",
                        "127.0.0.1",
                        "--min-port",
                        "50000",
                        "--max-port",
                        "50999",
                    ])
                    .args([
                        "--lt-cred-mech",
                        "--user",
                        &format!("{USER}:{PASS}"),
                        "--realm",
                        REALM,
                    ])
                    .args(["--relay-threads", &threads, "--allow-loopback-peers"])
                    .args([
                        "--no-cli",
                        "--no-tls",
                        "--no-dtls",
                        "--no-tcp",
                        "--no-tcp-relay",
                    ])
                    .args(["--no-stdout-log", "--log-file", "/dev/null", "--simple-log"])
                    .args(["--pidfile", "/dev/null"]);
                c
            }
            Kind::Tsunagi => {
                let mut c = Command::new(tsunagi);
                c.args(["--listen", &server.to_string(), "--threads", &threads])
                    .args([
                        "--log",
                        "error",
                        "--user",
                        &format!("{USER}:{PASS}"),
                        "--realm",
                        REALM,
                    ])
                    .args([
                        "--relay-ip",
                        "127.0.0.1",
                        "--min-port",
                        "51000",
                        "--max-port",
                        "51999",
                    ])
                    .args(["--allow-peer", "127.0.0.0/8", "--max-bytes-per-sec", "0"]);
                c
            }
        };
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

    /// The process's CPU time so far (all threads), in seconds.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
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

/// Load from `flows` allocations to one peer socket.
struct Load {
    peer: UdpSocket,
    clients: Vec<Allocation>,
}

impl Load {
    fn new(server: SocketAddr, flows: usize, framing: Framing) -> anyhow::Result<Load> {
        let peer = UdpSocket::bind("127.0.0.1:0")?;
        let peer_addr = peer.local_addr()?;
        let credentials = Credentials {
            username: USER.into(),
            password: PASS.into(),
        };
        let mut clients = Vec::new();
        for _ in 0..flows {
            let mut a = Allocation::new(server, &credentials)?;
            a.prepare(peer_addr, framing)?;
            clients.push(a);
        }
        Ok(Load { peer, clients })
    }
}

/// What one load run measured.
struct Run {
    sent: u64,
    received: u64,
    send_time: Duration,
    cpu: f64,
}

/// Sends `messages` (or for `duration` when `rate` is 0: as fast as possible)
/// and counts what reaches the peer.
fn offer(
    relay: &RelayProcess,
    load: &Load,
    framing: Framing,
    size: usize,
    rate: u64,
    limit: Limit,
) -> anyhow::Result<Run> {
    let peer = load.peer.try_clone()?;
    peer.set_read_timeout(Some(Duration::from_millis(300)))?;
    let done = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (done, received) = (Arc::clone(&done), Arc::clone(&received));
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                match peer.recv_from(&mut buf) {
                    Ok(_) => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) if done.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
        })
    };
    let peer_addr = load.peer.local_addr()?;
    let payload = vec![0xA5u8; size];
    let mut datagram = Vec::with_capacity(size + 64);
    let cpu_before = relay.cpu_seconds()?;
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        let elapsed = start.elapsed();
        let target = match limit {
            Limit::Messages(n) if sent >= n => break,
            Limit::Duration(d) if elapsed >= d => break,
            Limit::Messages(n) if rate > 0 => ((elapsed.as_secs_f64() * rate as f64) as u64).min(n),
            _ => sent + 64,
        };
        if sent >= target {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        while sent < target {
            let client = &load.clients[(sent as usize) % load.clients.len()];
            frame(framing, peer_addr, &payload, sent, &mut datagram);
            if client.socket.send(&datagram).is_ok() {
                sent += 1;
            }
        }
    }
    let send_time = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = receiver.join();
    let cpu = relay.cpu_seconds()? - cpu_before;
    Ok(Run {
        sent,
        received: received.load(Ordering::Relaxed),
        send_time,
        cpu,
    })
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    Messages(u64),
    Duration(Duration),
}

/// Round trips client → relay → peer (echo) → relay → client, one at a time.
fn round_trips(
    load: &Load,
    framing: Framing,
    size: usize,
    samples: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let peer = load.peer.try_clone()?;
    peer.set_read_timeout(Some(Duration::from_millis(100)))?;
    let done = Arc::new(AtomicBool::new(false));
    let echo = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if let Ok((len, from)) = peer.recv_from(&mut buf) {
                    let _ = peer.send_to(&buf[..len], from);
                }
            }
        })
    };
    let client = load.clients.first().context("no flow")?;
    client
        .socket
        .set_read_timeout(Some(Duration::from_millis(200)))?;
    let peer_addr = load.peer.local_addr()?;
    let mut payload = vec![0u8; size.max(8)];
    let mut datagram = Vec::new();
    let mut buf = [0u8; 2048];
    let mut rtts = Vec::with_capacity(samples);
    let mut lost = 0;
    for seq in 0..samples as u64 {
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        frame(framing, peer_addr, &payload, seq, &mut datagram);
        let t0 = Instant::now();
        client.socket.send(&datagram)?;
        loop {
            let Ok(len) = client.socket.recv(&mut buf) else {
                lost += 1;
                break;
            };
            if unframe(&buf[..len]).and_then(|d| d.get(..8)) == Some(&seq.to_be_bytes()[..]) {
                rtts.push(t0.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done.store(true, Ordering::Relaxed);
    let _ = echo.join();
    rtts.sort();
    Ok((rtts, lost))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

/// One relay's figures for one workload.
#[derive(Debug, Clone, Copy)]
struct Figures {
    cpu_per_100k: f64,
    fixed_loss: f64,
    sat_rate: f64,
    sat_loss: f64,
    p50_us: f64,
    p99_us: f64,
}

fn measure(
    relay: &RelayProcess,
    framing: Framing,
    size: usize,
    s: &Settings,
) -> anyhow::Result<Figures> {
    let load = Load::new(relay.server, s.flows, framing)?;
    let fixed = offer(
        relay,
        &load,
        framing,
        size,
        s.rate,
        Limit::Messages(s.messages),
    )?;
    let sat = offer(
        relay,
        &load,
        framing,
        size,
        0,
        Limit::Duration(s.saturation),
    )?;
    let (rtts, _lost) = round_trips(&load, framing, size, s.rtt_samples)?;
    let loss = |r: &Run| 1.0 - r.received as f64 / r.sent.max(1) as f64;
    Ok(Figures {
        cpu_per_100k: fixed.cpu / fixed.received.max(1) as f64 * 100_000.0,
        fixed_loss: loss(&fixed),
        sat_rate: sat.received as f64 / sat.send_time.as_secs_f64(),
        sat_loss: loss(&sat),
        p50_us: percentile(&rtts, 0.50),
        p99_us: percentile(&rtts, 0.99),
    })
}

/// Builds tsunagi-relay (release) and returns its path.
fn build_tsunagi() -> anyhow::Result<std::path::PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "tsunagi-relay"])
        .status()
        .context("running cargo to build tsunagi-relay")?;
    if !status.success() {
        bail!("cargo build --release -p tsunagi-relay failed");
    }
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("tsunagi-relay");
    if !path.exists() {
        bail!("{} not found after building", path.display());
    }
    Ok(path)
}

/// Runs the whole comparison and prints the table.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let tsunagi = build_tsunagi()?;
    if Command::new("turnserver")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("coturn's `turnserver` is not installed (apt-get install coturn)");
    }
    let rmem = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "relay benchmark: {} msgs at {}/s (a), {:?} saturation with {} flows (b), {} round trips (c); {} relay threads",
        settings.messages,
        settings.rate,
        settings.saturation,
        settings.flows,
        settings.rtt_samples,
        settings.threads
    );
    println!(
        "cores: {}; loadavg at start: {}; net.core.rmem_max: {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        load.trim(),
        rmem.trim()
    );
    println!(
        "{:<16} {:<8} {:>11} {:>9} {:>12} {:>9} {:>8} {:>8}",
        "workload", "relay", "CPU-s/100k", "loss(a)", "sat msgs/s", "loss(b)", "p50 µs", "p99 µs"
    );
    let workloads = [
        (Framing::Channel, 100),
        (Framing::Channel, 1000),
        (Framing::Send, 100),
        (Framing::Send, 1000),
    ];
    for (framing, size) in workloads {
        let name = format!(
            "{} {size}B",
            if framing == Framing::Channel {
                "channel"
            } else {
                "send"
            }
        );
        let mut figures = Vec::new();
        for kind in [Kind::Coturn, Kind::Tsunagi] {
            let result = RelayProcess::start(kind, &tsunagi, settings.threads)
                .and_then(|relay| measure(&relay, framing, size, settings));
            match result {
                Ok(f) => {
                    println!(
                        "{:<16} {:<8} {:>11.3} {:>8.2}% {:>12.0} {:>8.2}% {:>8.1} {:>8.1}",
                        name,
                        kind.name(),
                        f.cpu_per_100k,
                        f.fixed_loss * 100.0,
                        f.sat_rate,
                        f.sat_loss * 100.0,
                        f.p50_us,
                        f.p99_us
                    );
                    figures.push(f);
                }
                Err(e) => println!("{:<16} {:<8} failed: {e:#}", name, kind.name()),
            }
        }
        if let [c, t] = figures[..] {
            println!(
                "{:<16} {:<8} {:>11.2} {:>9} {:>12.2} {:>9} {:>8.2} {:>8.2}   (packets per CPU-second: tsunagi {:.2}× coturn)",
                name,
                "t/c",
                t.cpu_per_100k / c.cpu_per_100k,
                "",
                t.sat_rate / c.sat_rate,
                "",
                t.p50_us / c.p50_us,
                t.p99_us / c.p99_us,
                c.cpu_per_100k / t.cpu_per_100k
            );
        }
    }
    Ok(())
}
