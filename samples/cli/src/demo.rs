//! `tsunagi demo`: two players on this machine connect through a relay, play, and
//! move to a direct path under the running session.
//!
//! An embedded tsunagi-relay (its library, in this process) listens on loopback with
//! a generated user. Alice allocates on it and dials Bob by PeerId with only the
//! relay path (relay first). Both send their state unreliably at 60 Hz and game
//! events reliably. Halfway, Alice learns Bob's direct addresses; the path layer
//! confirms one and the session moves to it without noticing. The demo prints the
//! time to connect, RTT and loss for each phase, and the switch.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tsunagi::path::{PathAddr, PeerKey, virtual_addr};
use tsunagi::relay::{Config, Credentials};
use tsunagi::session::{Endpoint, Event, Events, Identity, PathKind, PeerStats, SessionConfig};
use tsunagi_relay::TurnConfig;
use tsunagi_relay::udp::{Options, Running};

/// Run two players on loopback: relay first, then the switch to a direct path.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seconds of play (half over the relay, half direct).
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// State updates per second (unreliable).
    #[arg(long, default_value_t = 60)]
    hz: u32,
}

const EVENTS_CHANNEL: u16 = 1;

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(play(args))
}

#[derive(Debug, Default)]
struct Tally {
    states_sent: u64,
    states_received: u64,
    events_sent: u64,
    events_received: u64,
}

/// What one phase (relay, direct) measured, from Alice's side.
struct Phase {
    name: &'static str,
    path: String,
    probe_rtt: Option<Duration>,
    quic_rtt: Duration,
    packets_sent: u64,
    packets_lost: u64,
    alice: Tally,
    bob: Tally,
}

/// The embedded relay: stopped when dropped.
struct EmbeddedRelay(Option<Running>);

impl Drop for EmbeddedRelay {
    fn drop(&mut self) {
        if let Some(running) = self.0.take() {
            running.shutdown(Duration::from_secs(1));
        }
    }
}

/// Starts tsunagi-relay in this process on 127.0.0.1 with a fresh user.
fn start_relay() -> anyhow::Result<(EmbeddedRelay, SocketAddr, Credentials)> {
    // Fresh random names from the key generator: nothing to configure, nothing reused.
    let user = format!("demo-{}", Identity::generate()?.peer_id().short());
    let password: String = Identity::generate()?
        .secret_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let turn = TurnConfig {
        users: HashMap::from([(user.clone(), password.clone())]),
        relay_ips: vec!["127.0.0.1".parse()?],
        relay_ports: None,
        // Both players are on this machine: open loopback, which a relay denies by default.
        allowed_peers: vec!["127.0.0.0/8".parse()?, "::1/128".parse()?],
        max_bytes_per_sec: 0,
        ..TurnConfig::default()
    };
    let options = Options {
        listen: vec!["127.0.0.1:0".parse()?],
        threads: 1,
        turn: Some(turn),
        software: Some("tsunagi demo".into()),
        ..Options::default()
    };
    let running = tsunagi_relay::udp::start(&options)
        .context("could not start the embedded relay on 127.0.0.1")?;
    let server = *running
        .local_addresses()
        .first()
        .context("the embedded relay bound no address")?;
    Ok((
        EmbeddedRelay(Some(running)),
        server,
        Credentials::new(user, password),
    ))
}

async fn play(args: &DemoArgs) -> anyhow::Result<()> {
    println!("Tsunagi demo: two players on this machine, relay first, then direct\n");
    let (_relay, server, credentials) = start_relay()?;
    println!(
        "relay:  tsunagi-relay embedded in this process, TURN on {server}, generated user {}",
        credentials.username
    );
    println!(
        "        loopback peers allowed (--allow-peer 127.0.0.0/8 --allow-peer ::1/128): both"
    );
    println!("        players are on this machine; a public relay denies such peers by default");

    let (alice, mut alice_events) =
        Endpoint::bind(SessionConfig::loopback(Identity::generate()?)).await?;
    let (bob, mut bob_events) =
        Endpoint::bind(SessionConfig::loopback(Identity::generate()?)).await?;
    println!(
        "alice:  {}  on {}",
        alice.peer_id(),
        list(&alice.local_addrs())
    );
    println!(
        "bob:    {}  on {}\n",
        bob.peer_id(),
        list(&bob.local_addrs())
    );

    let allocating = Instant::now();
    let paths = alice.path_handle();
    paths.add_relay(Config::new(server, credentials));
    let relayed = paths
        .wait_relay(server, Duration::from_secs(5))
        .await
        .context("the embedded relay gave alice no allocation")?;
    println!(
        "alice's TURN allocation: relayed address {} (in {:.1} ms)",
        list(&relayed),
        allocating.elapsed().as_secs_f64() * 1e3
    );

    let b_id = bob.peer_id();
    let bob_v4 = bob
        .local_addrs()
        .into_iter()
        .find(SocketAddr::is_ipv4)
        .context("bob has no IPv4 loopback address")?;
    let relay_path = PathAddr::Relay {
        server,
        peer: bob_v4,
    };
    println!("alice dials bob by id over the relay only: {relay_path} ...");
    let info = alice
        .connect_paths(b_id, &[relay_path])
        .await
        .context("alice could not connect to bob through the relay")?;
    println!(
        "connected in {:.1} ms over {} (TLS 1.3, raw Ed25519 keys checked on both sides)",
        info.took.as_secs_f64() * 1e3,
        info.path
    );
    println!(
        "unreliable message limit: {} bytes\n",
        alice.datagram_limit(b_id).unwrap_or(0)
    );

    let half = Duration::from_secs_f64((args.seconds / 2.0).max(0.5));
    let mut game = Game {
        alice: &alice,
        bob: &bob,
        alice_events: &mut alice_events,
        bob_events: &mut bob_events,
        hz: args.hz.max(1),
        frame: 0,
        switches: Vec::new(),
    };
    println!(
        "playing {:.1} s per phase: state at {} Hz (unreliable), an event every 0.5 s (reliable)",
        half.as_secs_f64(),
        game.hz
    );
    let relay_phase = game.phase("relay", half, None).await?;

    let direct: Vec<PathAddr> = bob
        .local_addrs()
        .into_iter()
        .map(PathAddr::Direct)
        .collect();
    println!(
        "\nalice learns bob's direct addresses {} (as ICE would find them) ...",
        list(&bob.local_addrs())
    );
    let learned = Instant::now();
    alice.add_paths(b_id, &direct)?;
    let direct_phase = game.phase("direct", half, Some(learned)).await?;

    let vaddr = virtual_addr(&PeerKey(*b_id.public_key()));
    println!("\nsummary (alice's side)");
    println!(
        "  time to connect: {:.1} ms over the relay",
        info.took.as_secs_f64() * 1e3
    );
    let mut before = (0, 0);
    for phase in [&relay_phase, &direct_phase] {
        phase.print(&mut before);
    }
    for s in &game.switches {
        println!("  path switch:     {s}");
    }
    if let Some(stats) = alice.path_handle().stats(vaddr) {
        println!("  paths alice keeps (probed every second; the relay stays as a fallback):");
        for p in &stats.paths {
            println!(
                "    {:<48} {:<5} probe RTT {:>7}  {} packets sent",
                p.path.to_string(),
                if p.active { "[on]" } else { "" },
                p.rtt.map_or("-".into(), micros),
                p.packets_sent
            );
        }
    }
    alice.disconnect(b_id, "demo over");
    alice.close().await;
    bob.close().await;
    Ok(())
}

struct Game<'a> {
    alice: &'a Endpoint,
    bob: &'a Endpoint,
    alice_events: &'a mut Events,
    bob_events: &'a mut Events,
    hz: u32,
    frame: u64,
    switches: Vec<String>,
}

impl Game<'_> {
    /// Plays for `length`; `learned` is when a better path was offered, to time
    /// the switch.
    async fn phase(
        &mut self,
        name: &'static str,
        length: Duration,
        learned: Option<Instant>,
    ) -> anyhow::Result<Phase> {
        let (a_id, b_id) = (self.alice.peer_id(), self.bob.peer_id());
        let (mut alice, mut bob) = (Tally::default(), Tally::default());
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(self.hz)));
        let start = Instant::now();
        let mut next_report = start + Duration::from_secs(1);
        while start.elapsed() < length {
            ticker.tick().await;
            self.frame += 1;
            for (me, other, tally) in [(self.alice, b_id, &mut alice), (self.bob, a_id, &mut bob)] {
                if me.send_datagram(other, state(self.frame)).is_ok() {
                    tally.states_sent += 1;
                }
                if self.frame.is_multiple_of(u64::from((self.hz / 2).max(1))) {
                    let event = format!("frame {}: picked up item {}", self.frame, self.frame / 30);
                    if me
                        .try_send(other, EVENTS_CHANNEL, event.into_bytes())
                        .is_ok()
                    {
                        tally.events_sent += 1;
                    }
                }
            }
            let switched = drain(self.alice_events, &mut alice, &mut self.switches, "alice");
            drain(self.bob_events, &mut bob, &mut self.switches, "bob");
            if let (Some(t), true) = (learned, switched) {
                println!(
                    "  switched to {} {:.1} ms after the direct addresses were learned",
                    self.alice
                        .stats(b_id)
                        .and_then(|s| s.path)
                        .map_or("?".into(), |p| p.to_string()),
                    t.elapsed().as_secs_f64() * 1e3
                );
            }
            if Instant::now() >= next_report {
                next_report += Duration::from_secs(1);
                if let Some(stats) = self.alice.stats(b_id) {
                    report_line(&stats, start);
                }
            }
        }
        // Let the last packets land.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drain(self.alice_events, &mut alice, &mut self.switches, "alice");
        drain(self.bob_events, &mut bob, &mut self.switches, "bob");
        let stats = self.alice.stats(b_id).context("the session ended early")?;
        let vaddr = virtual_addr(&PeerKey(*b_id.public_key()));
        let probe_rtt = self
            .alice
            .path_handle()
            .stats(vaddr)
            .and_then(|s| s.active_path().and_then(|p| p.rtt));
        let path = match (stats.path, stats.remote) {
            (Some(PathKind::Relay), Some(r)) => format!("relay (via {r})"),
            (Some(p), Some(r)) => format!("{p} ({r})"),
            (Some(p), None) => p.to_string(),
            (None, _) => "none confirmed".into(),
        };
        Ok(Phase {
            name,
            path,
            probe_rtt,
            quic_rtt: stats.rtt,
            packets_sent: stats.packets_sent,
            packets_lost: stats.packets_lost,
            alice,
            bob,
        })
    }
}

impl Phase {
    /// Prints the phase; `before` holds the QUIC packet counters at its start.
    fn print(&self, before: &mut (u64, u64)) {
        let sent = self.packets_sent.saturating_sub(before.0);
        let lost = self.packets_lost.saturating_sub(before.1);
        *before = (self.packets_sent, self.packets_lost);
        println!("  {} phase: {}", self.name, self.path);
        println!(
            "    RTT:   {} (path probe), {} (QUIC smoothed)",
            self.probe_rtt.map_or("-".into(), micros),
            micros(self.quic_rtt)
        );
        println!(
            "    loss:  {:.2}% of QUIC packets ({lost} of {sent})",
            100.0 * lost as f64 / sent.max(1) as f64
        );
        for (who, got, other) in [
            ("alice", &self.alice, &self.bob),
            ("bob", &self.bob, &self.alice),
        ] {
            println!(
                "    {who:5} received {} of {} states ({:.1}%), {} of {} events (reliable, in order)",
                got.states_received,
                other.states_sent,
                100.0 * got.states_received as f64 / other.states_sent.max(1) as f64,
                got.events_received,
                other.events_sent
            );
        }
    }
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A 32-byte player state: frame number and a position that moves in a circle.
fn state(frame: u64) -> Vec<u8> {
    let angle = frame as f32 / 60.0;
    let mut bytes = frame.to_be_bytes().to_vec();
    for v in [angle.cos() * 10.0, angle.sin() * 10.0, 0.0, angle] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.resize(32, 0);
    bytes
}

/// Counts what arrived; returns whether the path changed.
fn drain(events: &mut Events, tally: &mut Tally, switches: &mut Vec<String>, who: &str) -> bool {
    let mut switched = false;
    while let Some(event) = events.try_recv() {
        match event {
            Event::Datagram { .. } => tally.states_received += 1,
            Event::Message { .. } => tally.events_received += 1,
            Event::PathChanged { peer, path } => {
                switched = true;
                switches.push(format!("{who} -> {}: now {path}", peer.short()));
            }
            Event::Disconnected { peer, reason } => {
                println!("{who}: {} disconnected: {reason}", peer.short())
            }
            _ => {}
        }
    }
    switched
}

fn report_line(stats: &PeerStats, start: Instant) {
    println!(
        "  t={:.0}s  path {}  RTT {}  loss {:.2}%",
        start.elapsed().as_secs_f64(),
        stats.path.map_or("?".into(), |p| p.to_string()),
        micros(stats.rtt),
        stats.loss * 100.0,
    );
}
