//! `tsunagi-bench datagrams`: 100-byte unreliable messages on loopback, through the
//! SDK (session layer over the path layer), through plain quinn datagrams (same TLS and
//! transport settings, plain UDP sockets) and through plain UDP sockets, in one run.
//!
//! Round trip: one message out, the echo back, one at a time (p50, p99). Throughput:
//! one sender as fast as the transport accepts (waiting for buffer room, not dropping),
//! counted at the receiver.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use tokio::net::UdpSocket;
use tsunagi::path::{PathAddr, PathConfig, PathSocket, PeerKey};
use tsunagi::session::{Endpoint, Event, Identity, SessionConfig, plain_quinn_configs};
use tsunagi::socket::SocketConfig;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Round trips timed per transport.
    pub round_trips: usize,
    /// Seconds of each throughput run.
    pub seconds: f64,
    /// Message size in bytes.
    pub size: usize,
    /// Rounds over all transports (medians are printed).
    pub rounds: usize,
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    p50: Duration,
    p99: Duration,
    lost_pings: usize,
    per_second: f64,
}

const PING_TIMEOUT: Duration = Duration::from_millis(500);
const WARMUP: usize = 200;

/// Runs the three measurements and prints them with the SDK/quinn ratios.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!(
            "datagrams: {} B unreliable messages on loopback [::1], {} round trips, {:.1} s throughput runs, 2 tokio worker threads, median of {} rounds",
            settings.size, settings.round_trips, settings.seconds, settings.rounds
        );
        let mut runs: [Vec<Figures>; 4] = Default::default();
        for round in 1..=settings.rounds {
            println!("round {round} of {}:", settings.rounds);
            runs[0].push(plain_udp(settings).await.context("plain UDP")?);
            runs[1].push(plain_quinn(settings, false).await.context("plain quinn")?);
            runs[2].push(plain_quinn(settings, true).await.context("quinn over PathSocket")?);
            runs[3].push(sdk(settings).await.context("Tsunagi SDK")?);
        }
        let [udp, quinn, over_paths, sdk] = runs.map(median);
        println!();
        println!("medians of {} rounds:", settings.rounds);
        println!("| transport | RTT p50 (µs) | RTT p99 (µs) | lost pings | throughput (msg/s) |");
        println!("|---|---:|---:|---:|---:|");
        for (name, f) in [
            ("plain UDP", udp),
            ("plain quinn", quinn),
            ("quinn over PathSocket (path layer only)", over_paths),
            ("Tsunagi SDK", sdk),
        ] {
            println!(
                "| {name} | {:.1} | {:.1} | {} | {:.0} |",
                micros(f.p50),
                micros(f.p99),
                f.lost_pings,
                f.per_second
            );
        }
        let rtt_ratio = micros(sdk.p50) / micros(quinn.p50);
        let rate_ratio = sdk.per_second / quinn.per_second;
        println!();
        println!(
            "SDK / plain quinn: p50 RTT {rtt_ratio:.2}x (target <= 1.3: {}), p99 RTT {:.2}x, throughput {rate_ratio:.2}x (target >= 0.8: {})",
            verdict(rtt_ratio <= 1.3),
            micros(sdk.p99) / micros(quinn.p99),
            verdict(rate_ratio >= 0.8)
        );
        println!(
            "plain quinn / plain UDP: p50 RTT {:.2}x, throughput {:.2}x",
            micros(quinn.p50) / micros(udp.p50),
            quinn.per_second / udp.per_second
        );
        Ok(())
    })
}

/// The median of each figure over the rounds.
fn median(runs: Vec<Figures>) -> Figures {
    fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v[v.len() / 2]
    }
    Figures {
        p50: mid(runs.iter().map(|f| f.p50).collect()),
        p99: mid(runs.iter().map(|f| f.p99).collect()),
        lost_pings: mid(runs.iter().map(|f| f.lost_pings).collect()),
        per_second: mid(runs.iter().map(|f| f.per_second).collect()),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn percentiles(mut samples: Vec<Duration>, lost_pings: usize, per_second: f64) -> Figures {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).copied().unwrap_or_default()
    };
    Figures {
        p50: at(0.50),
        p99: at(0.99),
        lost_pings,
        per_second,
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
}

/// Round-trip samples; the first [`WARMUP`] pings are not kept.
#[derive(Debug, Default)]
struct Pings {
    samples: Vec<Duration>,
    lost: usize,
}

impl Pings {
    fn total(settings: &Settings) -> u64 {
        (WARMUP + settings.round_trips) as u64
    }

    fn record(&mut self, seq: u64, start: Instant, answered: bool) {
        if (seq as usize) < WARMUP {
            return;
        }
        if answered {
            self.samples.push(start.elapsed());
        } else {
            self.lost += 1;
        }
    }
}

fn message(size: usize, seq: u64) -> Vec<u8> {
    let mut m = vec![0u8; size.max(8)];
    m[..8].copy_from_slice(&seq.to_be_bytes());
    m
}

fn seq_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

async fn plain_udp(settings: &Settings) -> anyhow::Result<Figures> {
    let echo = Arc::new(UdpSocket::bind(loopback()).await?);
    let client = UdpSocket::bind(loopback()).await?;
    let echo_addr = echo.local_addr()?;
    let counted = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let server = {
        let (echo, counted, counting) = (echo.clone(), counted.clone(), counting.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                if counting.load(Ordering::Relaxed) {
                    counted.fetch_add(1, Ordering::Relaxed);
                } else {
                    let _ = echo.send_to(&buf[..n], from).await;
                }
            }
        })
    };
    let mut buf = vec![0u8; 2048];
    let mut pings = Pings::default();
    for seq in 0..Pings::total(settings) {
        let start = Instant::now();
        let answered = async {
            client
                .send_to(&message(settings.size, seq), echo_addr)
                .await
                .ok()?;
            let deadline = tokio::time::Instant::now() + PING_TIMEOUT;
            loop {
                let (n, _) = tokio::time::timeout_at(deadline, client.recv_from(&mut buf))
                    .await
                    .ok()?
                    .ok()?;
                if seq_of(&buf[..n]) == Some(seq) {
                    return Some(());
                }
            }
        }
        .await
        .is_some();
        pings.record(seq, start, answered);
    }
    counting.store(true, Ordering::Relaxed);
    let payload = message(settings.size, 0);
    let sent = blast(settings, || client.send_to(&payload, echo_addr)).await;
    let received = counted.load(Ordering::Relaxed);
    server.abort();
    report("plain UDP", sent, received);
    Ok(percentiles(
        pings.samples,
        pings.lost,
        received as f64 / settings.seconds,
    ))
}

/// Sends for `settings.seconds`, then waits a moment for stragglers; returns how many.
async fn blast<F, Fut, T, E>(settings: &Settings, mut send: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let end = Instant::now() + Duration::from_secs_f64(settings.seconds);
    let mut sent = 0u64;
    while Instant::now() < end {
        for _ in 0..64 {
            if send().await.is_ok() {
                sent += 1;
            }
        }
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    sent
}

fn report(name: &str, sent: u64, received: u64) {
    println!(
        "  {name}: throughput run sent {sent}, received {received} ({:.1}% delivered)",
        100.0 * received as f64 / sent.max(1) as f64
    );
}

async fn plain_quinn(settings: &Settings, over_paths: bool) -> anyhow::Result<Figures> {
    let name = if over_paths {
        "quinn over PathSocket"
    } else {
        "plain quinn"
    };
    let server_config = SessionConfig::loopback(Identity::generate()?);
    let client_config = SessionConfig::loopback(Identity::generate()?);
    let (server_quic, _) = plain_quinn_configs(&server_config, client_config.identity.peer_id())?;
    let (_, client_quic) = plain_quinn_configs(&client_config, server_config.identity.peer_id())?;
    let endpoint_config = tsunagi::socket::endpoint_config();
    let runtime = Arc::new(quinn::TokioRuntime);
    let (server, client, server_addr) = if over_paths {
        let sockets = SocketConfig {
            v4: None,
            v6: Some(loopback()),
            ..SocketConfig::loopback()
        };
        let (server_socket, server_paths) = PathSocket::bind(&sockets, PathConfig::default())?;
        let (client_socket, client_paths) = PathSocket::bind(&sockets, PathConfig::default())?;
        let real = server_paths
            .local_addrs()
            .v6
            .ok_or_else(|| anyhow!("no IPv6 socket"))?;
        let vaddr = client_paths.add_peer(&PeerKey(*server_config.identity.peer_id().public_key()));
        client_paths.add_path(vaddr, PathAddr::Direct(real))?;
        let server = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config.clone(),
            Some(server_quic),
            server_socket,
            runtime.clone(),
        )?;
        let client = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config,
            None,
            client_socket,
            runtime,
        )?;
        (server, client, vaddr)
    } else {
        let server = quinn::Endpoint::new(
            endpoint_config.clone(),
            Some(server_quic),
            std::net::UdpSocket::bind(loopback())?,
            runtime.clone(),
        )?;
        let client = quinn::Endpoint::new(
            endpoint_config,
            None,
            std::net::UdpSocket::bind(loopback())?,
            runtime,
        )?;
        let addr = server.local_addr()?;
        (server, client, addr)
    };
    let accept = tokio::spawn(async move {
        let incoming = server
            .accept()
            .await
            .ok_or_else(|| anyhow!("no incoming connection"))?;
        Ok::<_, anyhow::Error>((server, incoming.await?))
    });
    let connection = client
        .connect_with(client_quic, server_addr, "peer.tsunagi.invalid")?
        .await?;
    let (_server, server_conn) = accept.await??;
    let counted = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let echo = {
        let (counted, counting) = (counted.clone(), counting.clone());
        tokio::spawn(async move {
            while let Ok(bytes) = server_conn.read_datagram().await {
                if counting.load(Ordering::Relaxed) {
                    counted.fetch_add(1, Ordering::Relaxed);
                } else {
                    let _ = server_conn.send_datagram(bytes);
                }
            }
        })
    };
    let mut pings = Pings::default();
    for seq in 0..Pings::total(settings) {
        let start = Instant::now();
        let answered = async {
            connection
                .send_datagram(Bytes::from(message(settings.size, seq)))
                .ok()?;
            let deadline = tokio::time::Instant::now() + PING_TIMEOUT;
            loop {
                let bytes = tokio::time::timeout_at(deadline, connection.read_datagram())
                    .await
                    .ok()?
                    .ok()?;
                if seq_of(&bytes) == Some(seq) {
                    return Some(());
                }
            }
        }
        .await
        .is_some();
        pings.record(seq, start, answered);
    }
    counting.store(true, Ordering::Relaxed);
    let payload = Bytes::from(message(settings.size, 0));
    let sent = blast(settings, || connection.send_datagram_wait(payload.clone())).await;
    let received = counted.load(Ordering::Relaxed);
    echo.abort();
    connection.close(0u8.into(), b"done");
    report(name, sent, received);
    Ok(percentiles(
        pings.samples,
        pings.lost,
        received as f64 / settings.seconds,
    ))
}

async fn sdk(settings: &Settings) -> anyhow::Result<Figures> {
    let config = |identity| SessionConfig {
        sockets: SocketConfig {
            v4: None,
            v6: Some(loopback()),
            ..SocketConfig::loopback()
        },
        ..SessionConfig::loopback(identity)
    };
    let (a, mut a_events) = Endpoint::bind(config(Identity::generate()?)).await?;
    let (b, mut b_events) = Endpoint::bind(config(Identity::generate()?)).await?;
    let info = a.connect(b.peer_id(), &b.local_addrs()).await?;
    println!(
        "  Tsunagi SDK: connected over {} in {:.1} ms",
        info.path,
        info.took.as_secs_f64() * 1e3
    );
    let a_id = a.peer_id();
    let b_id = b.peer_id();
    let counted = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let echo = {
        let (b, counted, counting) = (b.clone(), counted.clone(), counting.clone());
        tokio::spawn(async move {
            while let Some(event) = b_events.recv().await {
                if let Event::Datagram { bytes, .. } = event {
                    if counting.load(Ordering::Relaxed) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let _ = b.send_datagram(a_id, bytes);
                    }
                }
            }
        })
    };
    let mut pings = Pings::default();
    for seq in 0..Pings::total(settings) {
        let start = Instant::now();
        let answered = async {
            a.send_datagram(b_id, message(settings.size, seq)).ok()?;
            let deadline = tokio::time::Instant::now() + PING_TIMEOUT;
            loop {
                let event = tokio::time::timeout_at(deadline, a_events.recv())
                    .await
                    .ok()??;
                if let Event::Datagram { bytes, .. } = event
                    && seq_of(&bytes) == Some(seq)
                {
                    return Some(());
                }
            }
        }
        .await
        .is_some();
        pings.record(seq, start, answered);
    }
    counting.store(true, Ordering::Relaxed);
    let payload = Bytes::from(message(settings.size, 0));
    let sent = blast(settings, || a.send_datagram_wait(b_id, payload.clone())).await;
    let received = counted.load(Ordering::Relaxed);
    echo.abort();
    a.close().await;
    b.close().await;
    report("Tsunagi SDK", sent, received);
    Ok(percentiles(
        pings.samples,
        pings.lost,
        received as f64 / settings.seconds,
    ))
}
