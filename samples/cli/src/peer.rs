//! `tsunagi peer`: two machines connect by PeerId through a rendezvous server
//! (`tsunagi-relay --auth-secret`), for people and scripts testing real networks.
//!
//! `listen` registers, prints `{"event":"ready","peer_id":"…"}` and echoes every
//! message until Ctrl-C or SIGTERM, then releases its relay allocation (so a
//! restart that gets the same NAT port finds none in its way) and exits 0. `connect PEER_ID` dials through the same server and prints JSON lines:
//! `connected` (path, connect time), `path` on every change, one `echo` per
//! message with its round-trip time, and `done` with the counts. Its exit status
//! is 0 only if every message came back. With `--datagrams N` it also sends N
//! unreliable messages (QUIC datagrams), which the listener echoes the same way;
//! `done` then counts them too (`datagrams_sent`, `datagrams_received`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tsunagi::session::{Endpoint, Event, Events, Identity, PathKind, PeerId, SessionConfig};

/// The channel the messages and their echoes travel on.
const CHANNEL: u16 = 1;
/// How long one echo may take before the message counts as lost.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one datagram's echo may take before it counts as lost.
const DATAGRAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How often `listen` looks whether Ctrl-C or SIGTERM came.
const STOP_POLL: Duration = Duration::from_millis(100);
/// First byte of a datagram payload, so its echo cannot be mistaken for another's.
const DATAGRAM_TAG: u8 = b'D';

/// Arguments of `tsunagi peer`.
#[derive(Debug, clap::Args)]
pub struct PeerArgs {
    /// The rendezvous server (tsunagi-relay), HOST:PORT.
    #[arg(long)]
    server: String,
    /// A token for that server (see `tsunagi token`).
    #[arg(long)]
    token: String,
    /// The NAT's UDP session timer in seconds, if known (e.g. from `tsunagi
    /// natcheck`'s binding lifetime): keepalives come at 40 % of it instead of
    /// every 15 s.
    #[arg(long, value_name = "SECS")]
    nat_timer: Option<u64>,
    /// Send no keepalives toward the server (shows what they are for: behind
    /// a NAT with a short timer an idle listener becomes unreachable).
    #[arg(long)]
    no_keepalive: bool,
    /// Measure the NAT's session timer in the background (a minute or more,
    /// against --server, which must answer RFC 5780: tsunagi-relay with
    /// --rfc5780-alt) and size the keepalives by it; prints
    /// `{"event":"nat_timer","ms":…,"keepalive_ms":…}` when done (`ms` null:
    /// not measured).
    #[arg(long)]
    measure_nat_timer: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// Wait for peers and echo what they send.
    Listen,
    /// Connect to a listening peer, send messages and wait for their echoes.
    Connect {
        /// The listener's peer id (from its `ready` line).
        peer_id: String,
        /// How many messages to send.
        #[arg(long, default_value_t = 10)]
        count: u32,
        /// Stay silent this many seconds after connecting before sending
        /// (tests that keepalives hold NAT mappings open).
        #[arg(long, default_value_t = 0)]
        idle_secs: u64,
        /// After connecting (and idling), wait up to this many seconds for a
        /// direct path before sending, so the round trips are the direct
        /// path's; 0 sends at once. Sending starts anyway when it runs out.
        #[arg(long, default_value_t = 0, value_name = "SECS")]
        wait_direct: u64,
        /// Also send this many unreliable messages (datagrams), one at a time,
        /// after the reliable ones. Datagrams may be lost on real networks, so
        /// the exit status only requires that at least one came back.
        #[arg(long, default_value_t = 0)]
        datagrams: u32,
        /// Wait this many milliseconds after each echo before the next message.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
    },
}

/// The path's name in the JSON lines.
fn path_name(kind: PathKind) -> &'static str {
    match kind {
        PathKind::DirectV6 => "direct-ipv6",
        PathKind::DirectV4 => "direct-ipv4",
        PathKind::Relay => "relay",
    }
}

fn emit(value: &serde_json::Value) {
    println!("{value}");
}

/// Runs `tsunagi peer`.
pub fn run(args: &PeerArgs) -> anyhow::Result<()> {
    // RUST_LOG=tsunagi=debug shows the SDK's view (signalling, ICE, paths) on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let server = args
        .server
        .to_socket_addrs()
        .with_context(|| format!("--server {}: expected HOST:PORT", args.server))?
        .next()
        .with_context(|| format!("--server {}: the name has no address", args.server))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        let identity = Identity::generate().context("could not make an identity")?;
        let mut config = SessionConfig::new(identity);
        config.paths.nat_timer = args.nat_timer.map(Duration::from_secs);
        if args.no_keepalive {
            config.paths.keepalive = None;
        }
        let (endpoint, events) = Endpoint::bind(config)
            .await
            .context("could not open the UDP sockets")?;
        if args.measure_nat_timer {
            let measuring = endpoint.measure_nat_timer(&args.server, Duration::from_secs(60));
            let paths = endpoint.path_handle().clone();
            tokio::spawn(async move {
                let ms = measuring.await.ok().flatten().map(|t| t.as_millis());
                let keepalive_ms = paths.keepalive_interval().map(|k| k.as_millis());
                emit(&json!({"event": "nat_timer", "ms": ms, "keepalive_ms": keepalive_ms}));
            });
        }
        match &args.mode {
            Mode::Listen => listen(&endpoint, events, server, &args.token).await,
            Mode::Connect {
                peer_id,
                count,
                idle_secs,
                wait_direct,
                datagrams,
                interval_ms,
            } => {
                let peer: PeerId = peer_id.parse().with_context(|| {
                    format!("{peer_id} is not a peer id: copy it from the listener's ready line")
                })?;
                let plan = Plan {
                    count: *count,
                    idle: Duration::from_secs(*idle_secs),
                    wait_direct: Duration::from_secs(*wait_direct),
                    datagrams: *datagrams,
                    interval: Duration::from_millis(*interval_ms),
                };
                connect(&endpoint, events, server, &args.token, peer, plan).await
            }
        }
    })
}

async fn listen(
    endpoint: &Endpoint,
    mut events: Events,
    server: SocketAddr,
    token: &str,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the Ctrl-C/SIGTERM handler")?;
    }
    let _rendezvous = endpoint.listen_via(server, token).await?;
    emit(&json!({"event": "ready", "peer_id": endpoint.peer_id().to_string()}));
    loop {
        if stop.load(Ordering::Relaxed) {
            // Release the TURN allocations (Refresh with LIFETIME 0) and tell
            // the peers, instead of leaving both to time out on the server.
            let paths = endpoint.path_handle();
            for relay in paths.relays() {
                paths.remove_relay(relay.server);
            }
            endpoint.close().await;
            return Ok(());
        }
        let event = match tokio::time::timeout(STOP_POLL, events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(_) => continue,
        };
        match event {
            Event::Message {
                peer,
                channel,
                bytes,
            } => {
                if let Err(e) = endpoint.send(peer, channel, bytes).await {
                    eprintln!("echo to {} failed: {e}", peer.short());
                }
            }
            Event::Datagram { peer, bytes } => {
                if let Err(e) = endpoint.send_datagram(peer, bytes) {
                    eprintln!("datagram echo to {} failed: {e}", peer.short());
                }
            }
            Event::Connected { peer, path, .. } => {
                eprintln!("{} connected over {}", peer.short(), path_name(path));
            }
            Event::PathChanged { peer, path } => {
                eprintln!("{} now over {}", peer.short(), path_name(path));
            }
            Event::Disconnected { peer, reason } => {
                eprintln!("{} left: {reason}", peer.short());
            }
            _ => {}
        }
    }
    Ok(())
}

/// What `connect` does once connected.
#[derive(Debug, Clone, Copy)]
struct Plan {
    count: u32,
    idle: Duration,
    wait_direct: Duration,
    datagrams: u32,
    interval: Duration,
}

async fn connect(
    endpoint: &Endpoint,
    mut events: Events,
    server: SocketAddr,
    token: &str,
    peer: PeerId,
    plan: Plan,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let (_rendezvous, info) = endpoint.connect_via(server, token, peer).await?;
    let mut path = info.path;
    emit(&json!({
        "event": "connected",
        "path": path_name(path),
        "connect_ms": start.elapsed().as_millis(),
    }));
    // Idle: nothing sent, but path changes are still reported.
    let idle_end = tokio::time::Instant::now() + plan.idle;
    loop {
        match tokio::time::timeout_at(idle_end, events.recv()).await {
            Ok(Some(event)) => note_path(&event, &mut path, start),
            Ok(None) => bail!("the endpoint closed while idle"),
            Err(_) => break,
        }
    }
    // Then, if asked, until the session leaves the relay for a direct path.
    let direct_end = tokio::time::Instant::now() + plan.wait_direct;
    while path == PathKind::Relay && !plan.wait_direct.is_zero() {
        match tokio::time::timeout_at(direct_end, events.recv()).await {
            Ok(Some(event)) => note_path(&event, &mut path, start),
            Ok(None) => bail!("the endpoint closed while waiting for a direct path"),
            Err(_) => break,
        }
    }
    let mut received = 0u32;
    for n in 0..plan.count {
        if n > 0 && !plan.interval.is_zero() {
            let pause_end = tokio::time::Instant::now() + plan.interval;
            while let Ok(Some(event)) = tokio::time::timeout_at(pause_end, events.recv()).await {
                note_path(&event, &mut path, start);
            }
        }
        let sent_at = Instant::now();
        let payload = n.to_be_bytes().to_vec();
        if let Err(e) = endpoint.send(peer, CHANNEL, payload.clone()).await {
            eprintln!("message {n} not sent: {e}");
            continue;
        }
        let deadline = tokio::time::Instant::now() + ECHO_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Event::Message { bytes, .. })) if bytes[..] == payload[..] => {
                    received += 1;
                    let rtt = sent_at.elapsed().as_secs_f64() * 1000.0;
                    emit(&json!({"event": "echo", "rtt_ms": (rtt * 1000.0).round() / 1000.0}));
                    break;
                }
                Ok(Some(event)) => note_path(&event, &mut path, start),
                Ok(None) => bail!("the endpoint closed while waiting for an echo"),
                Err(_) => {
                    eprintln!("message {n}: no echo within {ECHO_TIMEOUT:?}");
                    break;
                }
            }
        }
    }
    let datagrams_received = datagrams(endpoint, &mut events, peer, plan, &mut path, start).await?;
    let mut done = json!({
        "event": "done",
        "sent": plan.count,
        "received": received,
        "path": path_name(path),
    });
    if plan.datagrams > 0 {
        done["datagrams_sent"] = plan.datagrams.into();
        done["datagrams_received"] = datagrams_received.into();
    }
    emit(&done);
    endpoint.close().await;
    if received != plan.count {
        bail!(
            "{} of {} messages did not come back",
            plan.count - received,
            plan.count
        );
    }
    if plan.datagrams > 0 && datagrams_received == 0 {
        bail!(
            "none of {} datagrams came back: the session carries reliable messages but not unreliable ones",
            plan.datagrams
        );
    }
    Ok(())
}

/// Sends the plan's datagrams one at a time and counts the echoes.
async fn datagrams(
    endpoint: &Endpoint,
    events: &mut Events,
    peer: PeerId,
    plan: Plan,
    path: &mut PathKind,
    start: Instant,
) -> anyhow::Result<u32> {
    let mut received = 0u32;
    for n in 0..plan.datagrams {
        let mut payload = vec![DATAGRAM_TAG];
        payload.extend_from_slice(&n.to_be_bytes());
        if let Err(e) = endpoint.send_datagram(peer, payload.clone()) {
            eprintln!("datagram {n} not sent: {e}");
            continue;
        }
        let deadline = tokio::time::Instant::now() + DATAGRAM_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Event::Datagram { bytes, .. })) if bytes[..] == payload[..] => {
                    received += 1;
                    break;
                }
                Ok(Some(event)) => note_path(&event, path, start),
                Ok(None) => bail!("the endpoint closed while waiting for a datagram echo"),
                Err(_) => {
                    eprintln!("datagram {n}: no echo within {DATAGRAM_TIMEOUT:?}");
                    break;
                }
            }
        }
    }
    Ok(received)
}

/// Reports a path change (with the time since `connect` started) and a
/// disconnect while waiting.
fn note_path(event: &Event, path: &mut PathKind, start: Instant) {
    match event {
        Event::PathChanged { path: new, .. } => {
            *path = *new;
            emit(&json!({
                "event": "path",
                "path": path_name(*new),
                "after_ms": start.elapsed().as_millis(),
            }));
        }
        Event::Disconnected { reason, .. } => eprintln!("disconnected: {reason}"),
        _ => {}
    }
}
