//! `tsunagi-bench relay`: coturn 4.6.1 and tsunagi-relay in the same run, on
//! loopback, under the same workloads (ChannelData and Send indications; 100- and
//! 1000-byte messages). For each it prints (a) the relay's CPU-seconds per 100k
//! relayed messages at a fixed offered load, (b) messages/s and loss at
//! saturation, (c) round-trip p50/p99 at a low rate, and the ratio tsunagi/coturn.
//!
//! Fairness on a small shared machine: the relay (every thread of it) is pinned
//! to the last CPUs and the load generator to CPU 0, the same for both relays;
//! each workload runs coturn and tsunagi interleaved (c, t, c, t, …) so both see
//! similar background load, and the median of the repeats is reported. CPU time
//! is the relay process's own, from the scheduler's per-thread run times.

mod process;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::relay_client::{Allocation, Credentials, Framing, frame, unframe};
use process::{Kind, PASS, Placement, RelayProcess, USER};

/// Settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Messages per fixed-rate measurement.
    pub messages: u64,
    /// Offered load of the fixed-rate measurement, messages/s.
    pub rate: u64,
    /// Length of a saturation measurement.
    pub saturation: Duration,
    /// Allocations (client 5-tuples) carrying the load; each count is a
    /// separate pass over the workloads.
    pub flows: Vec<usize>,
    /// CPUs the relay is pinned to (the last ones), capped so that the load
    /// generator keeps at least one.
    pub relay_cpus: usize,
    /// Worker threads forced on both relays; `None` runs each at its own
    /// default (coturn: one relay thread per online CPU of the machine;
    /// tsunagi-relay: one per CPU it may run on).
    pub threads: Option<usize>,
    /// Round trips sampled for (c).
    pub rtt_samples: usize,
}

/// Receive buffer asked for the peer socket (capped by `net.core.rmem_max`).
const PEER_BUFFER: usize = 4 << 20;

/// Load from `flows` allocations to one peer socket.
struct Load {
    peer: UdpSocket,
    clients: Vec<Allocation>,
}

impl Load {
    fn new(server: SocketAddr, flows: usize, framing: Framing) -> anyhow::Result<Load> {
        let peer = UdpSocket::bind("127.0.0.1:0")?;
        // The peer shares its core with the sender: a large buffer keeps its
        // own drops (while descheduled) out of the relay's figures.
        let _ = socket2::SockRef::from(&peer).set_recv_buffer_size(PEER_BUFFER);
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
    flows: usize,
    s: &Settings,
) -> anyhow::Result<Figures> {
    let load = Load::new(relay.server, flows, framing)?;
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

/// Knobs beyond the command-line flags, from the environment:
/// `TSUNAGI_BENCH_REPEATS` (default 3), `TSUNAGI_BENCH_ONLY` (`coturn` or
/// `tsunagi`, for profiling one of them), `TSUNAGI_BENCH_PIN=0` (no pinning).
#[derive(Debug, Clone)]
struct Extra {
    repeats: usize,
    kinds: Vec<Kind>,
    pin: bool,
}

impl Extra {
    fn from_env() -> Extra {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let repeats = var("TSUNAGI_BENCH_REPEATS")
            .parse()
            .unwrap_or(3usize)
            .max(1);
        let kinds = match var("TSUNAGI_BENCH_ONLY").as_str() {
            "coturn" => vec![Kind::Coturn],
            "tsunagi" => vec![Kind::Tsunagi],
            _ => vec![Kind::Coturn, Kind::Tsunagi],
        };
        Extra {
            repeats,
            kinds,
            pin: var("TSUNAGI_BENCH_PIN") != "0",
        }
    }
}

/// Where the relay and the generator run: with pinning on a machine of `cores`,
/// the relay gets the last `relay_cpus` cores (leaving at least CPU 0) and the
/// generator the rest. `threads` is passed through (forced worker threads).
fn placement(
    relay_cpus: usize,
    threads: Option<usize>,
    pin: bool,
    cores: usize,
) -> (Placement, Option<String>) {
    if !pin || cores < 2 {
        return (
            Placement {
                threads,
                cpus: None,
            },
            None,
        );
    }
    let relay_cpus = relay_cpus.clamp(1, cores - 1);
    let first = cores - relay_cpus;
    let relay = if relay_cpus == 1 {
        first.to_string()
    } else {
        format!("{first}-{}", cores - 1)
    };
    let generator = if first == 1 {
        "0".to_string()
    } else {
        format!("0-{}", first - 1)
    };
    (
        Placement {
            threads,
            cpus: Some(relay),
        },
        Some(generator),
    )
}

/// The median of each figure over the repeats (each column on its own).
fn median(runs: &[Figures]) -> Option<Figures> {
    let of = |f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    Some(Figures {
        cpu_per_100k: of(|f| f.cpu_per_100k)?,
        fixed_loss: of(|f| f.fixed_loss)?,
        sat_rate: of(|f| f.sat_rate)?,
        sat_loss: of(|f| f.sat_loss)?,
        p50_us: of(|f| f.p50_us)?,
        p99_us: of(|f| f.p99_us)?,
    })
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_row(workload: &str, relay: &str, run: &str, f: &Figures, note: &str) {
    println!(
        "{workload:<18} {relay:<8} {run:>4} {:>11.3} {:>8.2}% {:>11.0} {:>8.2}% {:>8.1} {:>8.1}  {note}",
        f.cpu_per_100k,
        f.fixed_loss * 100.0,
        f.sat_rate,
        f.sat_loss * 100.0,
        f.p50_us,
        f.p99_us
    );
}

/// Runs the whole comparison and prints every run, the medians and the ratios.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let tsunagi = build_tsunagi()?;
    if Command::new("turnserver")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("coturn's `turnserver` is not installed (apt-get install coturn)");
    }
    let extra = Extra::from_env();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let (placement, generator) = placement(settings.relay_cpus, settings.threads, extra.pin, cores);
    if let Some(cpus) = &generator {
        process::pin_self(cpus)?;
    }
    let rmem = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap_or_default();
    println!(
        "relay benchmark: {} msgs at {}/s (a), {:?} saturation (b), {} round trips (c), with {} flows; median of {} interleaved runs",
        settings.messages,
        settings.rate,
        settings.saturation,
        settings.rtt_samples,
        flow_list(&settings.flows),
        extra.repeats,
    );
    println!(
        "cores: {cores}; relay: {} on CPU {}; generator on CPU {}; net.core.rmem_max: {}; loadavg at start: {}",
        placement.threads.map_or_else(
            || "each relay's default worker threads".to_string(),
            |t| format!("{t} worker thread(s) forced")
        ),
        placement.cpus.as_deref().unwrap_or("any"),
        generator.as_deref().unwrap_or("any"),
        rmem.trim(),
        load_average()
    );
    println!(
        "{:<18} {:<8} {:>4} {:>11} {:>9} {:>11} {:>9} {:>8} {:>8}  process threads; loadavg",
        "workload",
        "relay",
        "run",
        "CPU-s/100k",
        "loss(a)",
        "sat msg/s",
        "loss(b)",
        "p50 µs",
        "p99 µs"
    );
    let workloads = [
        (Framing::Channel, 100),
        (Framing::Channel, 1000),
        (Framing::Send, 100),
        (Framing::Send, 1000),
    ];
    let mut summary: Vec<(String, f64)> = Vec::new();
    for (&flows, (framing, size)) in settings
        .flows
        .iter()
        .flat_map(|f| workloads.iter().map(move |w| (f, *w)))
    {
        let kind_name = match framing {
            Framing::Channel => "channel",
            Framing::Send => "send",
        };
        let name = format!("{kind_name} {size}B {flows}f");
        let mut runs: Vec<(Kind, Figures)> = Vec::new();
        for repeat in 1..=extra.repeats {
            for &kind in &extra.kinds {
                let result = RelayProcess::start(kind, &tsunagi, &placement).and_then(|relay| {
                    eprintln!("# {name} {} run {repeat}: pid {}", kind.name(), relay.id());
                    let threads = relay.thread_count();
                    measure(&relay, framing, size, flows, settings).map(|f| (f, threads))
                });
                match result {
                    Ok((f, threads)) => {
                        let note = format!("{threads} threads; {}", load_average());
                        print_row(&name, kind.name(), &repeat.to_string(), &f, &note);
                        runs.push((kind, f));
                    }
                    Err(e) => println!("{name:<18} {:<8} {repeat:>4} failed: {e:#}", kind.name()),
                }
            }
        }
        let of = |k: Kind| -> Vec<Figures> {
            runs.iter()
                .filter(|(kind, _)| *kind == k)
                .map(|(_, f)| *f)
                .collect()
        };
        let coturn = median(&of(Kind::Coturn));
        let ours = median(&of(Kind::Tsunagi));
        for (kind, f) in [(Kind::Coturn, coturn), (Kind::Tsunagi, ours)] {
            if let Some(f) = f {
                print_row(&name, kind.name(), "med", &f, "");
            }
        }
        if let (Some(c), Some(t)) = (coturn, ours) {
            summary.push((name.clone(), c.cpu_per_100k / t.cpu_per_100k));
            println!(
                "{name:<18} {:<8} {:>4} {:>11.2} {:>9} {:>11.2} {:>9} {:>8.2} {:>8.2}  packets per CPU-second: tsunagi {:.2}x coturn",
                "t/c",
                "",
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
    if !summary.is_empty() {
        println!("packets per CPU-second, tsunagi / coturn (median runs):");
        for (name, ratio) in &summary {
            println!("  {name:<18} {ratio:.2}x");
        }
    }
    println!("loadavg at end: {}", load_average());
    Ok(())
}

/// `1, 4, 32` for the header line.
fn flow_list(flows: &[usize]) -> String {
    flows
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_leaves_cpu_zero_to_the_generator() {
        let (p, g) = placement(2, None, true, 2);
        assert_eq!(
            (p.threads, p.cpus.as_deref(), g.as_deref()),
            (None, Some("1"), Some("0"))
        );
        let (p, g) = placement(2, Some(3), true, 8);
        assert_eq!(
            (p.threads, p.cpus.as_deref(), g.as_deref()),
            (Some(3), Some("6-7"), Some("0-5"))
        );
        let (p, g) = placement(2, Some(2), false, 8);
        assert_eq!((p.threads, p.cpus, g), (Some(2), None, None));
    }

    #[test]
    fn median_is_per_column() {
        let f = |x: f64| Figures {
            cpu_per_100k: x,
            fixed_loss: 0.0,
            sat_rate: 10.0 - x,
            sat_loss: 0.0,
            p50_us: x,
            p99_us: x,
        };
        let m = median(&[f(3.0), f(1.0), f(2.0)]).map(|m| (m.cpu_per_100k, m.sat_rate));
        assert_eq!(m, Some((2.0, 8.0)));
        assert!(median(&[]).is_none());
    }
}
