//! `tsunagi demo`: two players on this machine connect and play for a few seconds.
//!
//! Alice and Bob each get a fresh identity and endpoint on loopback. Alice dials Bob by
//! PeerId at both of his addresses (IPv6 first, IPv4 after a 50 ms head start). Then
//! both send their state unreliably at 60 Hz and game events reliably, and the demo
//! prints the path, the time to connect, RTT, loss and any path switch.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tsunagi::session::{Endpoint, Event, Events, Identity, PeerId, SessionConfig};

/// Run two players on loopback through a short game-like exchange.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seconds of play.
    #[arg(long, default_value_t = 3.0)]
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

async fn play(args: &DemoArgs) -> anyhow::Result<()> {
    println!("Tsunagi demo: two players on this machine\n");
    println!("relay:  pending. tsunagi-relay serves STUN and TURN, but the path layer's TURN");
    println!("        wiring (sdk/src/path/relay.rs) is still a stub, so this run shows the");
    println!("        direct path only; no relay -> direct switch yet.\n");

    let (alice, mut alice_events) =
        Endpoint::bind(SessionConfig::loopback(Identity::generate()?)).await?;
    let (bob, mut bob_events) =
        Endpoint::bind(SessionConfig::loopback(Identity::generate()?)).await?;
    println!(
        "alice:  {}  listening on {}",
        alice.peer_id(),
        list(&alice.local_addrs())
    );
    println!(
        "bob:    {}  listening on {}",
        bob.peer_id(),
        list(&bob.local_addrs())
    );
    println!(
        "\nalice dials bob by id at {} ...",
        list(&bob.local_addrs())
    );

    let info = alice
        .connect(bob.peer_id(), &bob.local_addrs())
        .await
        .context("alice could not connect to bob")?;
    println!(
        "connected in {:.1} ms over {}{} (handshake: TLS 1.3, raw Ed25519 keys checked on both sides)",
        info.took.as_secs_f64() * 1e3,
        info.path,
        info.remote.map(|r| format!(" to {r}")).unwrap_or_default()
    );
    let limit = alice.datagram_limit(bob.peer_id()).unwrap_or(0);
    println!("unreliable message limit: {limit} bytes\n");

    let (a_id, b_id) = (alice.peer_id(), bob.peer_id());
    let mut alice_tally = Tally::default();
    let mut bob_tally = Tally::default();
    let mut switches = Vec::new();
    let tick = Duration::from_secs_f64(1.0 / f64::from(args.hz.max(1)));
    let mut ticker = tokio::time::interval(tick);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds.max(0.5));
    let mut frame: u64 = 0;
    let mut next_report = start + Duration::from_secs(1);
    println!(
        "playing for {:.1} s: state at {} Hz (unreliable), an event every 0.5 s (reliable)",
        args.seconds, args.hz
    );
    while Instant::now() < end {
        ticker.tick().await;
        frame += 1;
        for (me, other, tally) in [
            (&alice, b_id, &mut alice_tally),
            (&bob, a_id, &mut bob_tally),
        ] {
            if me.send_datagram(other, state(frame)).is_ok() {
                tally.states_sent += 1;
            }
            if frame.is_multiple_of(u64::from((args.hz / 2).max(1))) {
                let event = format!("frame {frame}: picked up item {}", frame / 30);
                if me
                    .try_send(other, EVENTS_CHANNEL, event.into_bytes())
                    .is_ok()
                {
                    tally.events_sent += 1;
                }
            }
        }
        drain(&mut alice_events, &mut alice_tally, &mut switches, "alice");
        drain(&mut bob_events, &mut bob_tally, &mut switches, "bob");
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            report_line(&alice, b_id, start, &alice_tally);
        }
    }
    // Let the last packets land.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drain(&mut alice_events, &mut alice_tally, &mut switches, "alice");
    drain(&mut bob_events, &mut bob_tally, &mut switches, "bob");

    let stats = alice.stats(b_id).context("the session ended early")?;
    println!("\nsummary (alice's side)");
    println!(
        "  path:            {}{}",
        stats
            .path
            .map(|p| p.to_string())
            .unwrap_or_else(|| "none confirmed".into()),
        stats.remote.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    println!("  time to connect: {:.1} ms", info.took.as_secs_f64() * 1e3);
    println!(
        "  RTT:             {:.0} µs (QUIC smoothed)",
        stats.rtt.as_secs_f64() * 1e6
    );
    println!(
        "  loss:            {:.2}% of QUIC packets ({} of {})",
        stats.loss * 100.0,
        stats.packets_lost,
        stats.packets_sent
    );
    for (name, tally) in [("alice", &alice_tally), ("bob", &bob_tally)] {
        let other = if name == "alice" {
            &bob_tally
        } else {
            &alice_tally
        };
        println!(
            "  {name:5} received: {} of {} states ({:.1}%), {} of {} events (reliable, in order)",
            tally.states_received,
            other.states_sent,
            100.0 * tally.states_received as f64 / other.states_sent.max(1) as f64,
            tally.events_received,
            other.events_sent
        );
    }
    println!(
        "  bytes:           {} sent, {} received",
        stats.bytes_sent, stats.bytes_received
    );
    if switches.is_empty() {
        println!("  path switches:   none (relay -> direct needs the relay leg, pending)");
    } else {
        for s in &switches {
            println!("  path switch:     {s}");
        }
    }
    alice.disconnect(b_id, "demo over");
    alice.close().await;
    bob.close().await;
    Ok(())
}

fn list(addrs: &[std::net::SocketAddr]) -> String {
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

fn drain(events: &mut Events, tally: &mut Tally, switches: &mut Vec<String>, who: &str) {
    while let Some(event) = events.try_recv() {
        match event {
            Event::Datagram { .. } => tally.states_received += 1,
            Event::Message { .. } => tally.events_received += 1,
            Event::PathChanged { peer, path } => {
                switches.push(format!("{who} -> {}: now {path}", peer.short()))
            }
            Event::Disconnected { peer, reason } => {
                println!("{who}: {} disconnected: {reason}", peer.short())
            }
            _ => {}
        }
    }
}

fn report_line(endpoint: &Endpoint, peer: PeerId, start: Instant, tally: &Tally) {
    if let Some(stats) = endpoint.stats(peer) {
        println!(
            "  t={:.0}s  path {}  RTT {:.0} µs  loss {:.2}%  alice sent {} states, {} events",
            start.elapsed().as_secs_f64(),
            stats
                .path
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into()),
            stats.rtt.as_secs_f64() * 1e6,
            stats.loss * 100.0,
            tally.states_sent,
            tally.events_sent
        );
    }
}
