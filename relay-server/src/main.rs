//! `tsunagi-relay`: STUN (RFC 8489 + RFC 5780) server; TURN and rendezvous follow.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use tsunagi_relay::{config, health, udp};

/// Tsunagi's relay server. Serves STUN Binding on every --listen address; with
/// --rfc5780-alt it also listens on the alternate IP and port combinations and
/// implements RFC 5780 NAT behaviour discovery.
///
/// Once every socket is bound it prints `listening udp ADDRESS` per socket and
/// then `ready` on standard output.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// UDP address to serve STUN on; repeat for more (e.g. one IPv4, one IPv6).
    /// Port 0 lets the kernel choose (printed at start).
    #[arg(long, default_value = "0.0.0.0:3478")]
    listen: Vec<SocketAddr>,

    /// The RFC 5780 alternate IP and port, paired with the first --listen address
    /// of the same family (both must be specific addresses).
    #[arg(long, value_name = "ADDRESS")]
    rfc5780_alt: Option<SocketAddr>,

    /// SOFTWARE attribute for responses (off by default: smaller responses).
    #[arg(long)]
    software: Option<String>,

    /// Log filter for standard error, e.g. `info`, `debug`, `tsunagi_relay=trace`.
    #[arg(long, default_value = "info")]
    log: String,

    /// Log line format on standard error: `text` for people, `json` (one object
    /// per line) for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Worker threads, each with its own SO_REUSEPORT socket per address;
    /// 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,

    /// TCP address of the operator endpoint serving `/metrics` (Prometheus) and
    /// `/healthz`, e.g. 127.0.0.1:9090. Off when not given.
    #[arg(long, value_name = "ADDRESS")]
    http: Option<SocketAddr>,

    /// After binding, switch to this user (name or numeric id), e.g. `nobody`.
    /// The relay must be started as root for this.
    #[arg(long, value_name = "USER")]
    user_id: Option<String>,

    /// With --user-id: the group to switch to (default: the user's primary group).
    #[arg(long, value_name = "GROUP", requires = "user_id")]
    group_id: Option<String>,

    /// On SIGTERM or SIGINT, how long in-flight work may take before exiting.
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 1500)]
    shutdown_grace_ms: u64,

    /// TURN (RFC 8656): on when --user or --auth-secret is given.
    #[command(flatten)]
    turn: tsunagi_relay::TurnFlags,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn main() -> anyhow::Result<()> {
    // Flags > TSUNAGI_RELAY_* environment > --config FILE > defaults.
    let args: Args = match config::load() {
        Ok(args) => args,
        Err(config::ConfigError::Cli(e)) => e.exit(),
        Err(e) => anyhow::bail!("{e}"),
    };
    let filter = EnvFilter::try_new(&args.log)
        .with_context(|| format!("invalid --log filter {:?}", args.log))?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    // Before any thread starts serving, so no signal is missed after `ready`.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("installing SIGTERM / SIGINT handlers")?;

    let turn = args.turn.to_config(&args.listen)?;
    let options = udp::Options {
        listen: args.listen,
        rfc5780_alternate: args.rfc5780_alt,
        software: args.software,
        threads: args.threads,
        turn,
    };
    let running = udp::start(&options).context("starting the STUN service")?;
    for address in running.local_addresses() {
        println!("listening udp {address}");
    }
    let http = match args.http {
        Some(address) => {
            let endpoint =
                health::HttpEndpoint::start(address, running.registry(), running.health())?;
            println!("listening http {}", endpoint.local_addr());
            Some(endpoint)
        }
        None => None,
    };
    if let Some(user) = &args.user_id {
        let (uid, gid) = config::drop_privileges(user, args.group_id.as_deref())?;
        tracing::info!(uid, gid, "dropped privileges after binding");
    }
    if let Some(addresses) = running.rfc5780() {
        tracing::info!(
            primary = %addresses.primary(),
            alternate = %addresses.alternate(),
            "RFC 5780 enabled"
        );
    }
    println!("ready");
    tracing::info!(
        version = tsunagi::VERSION,
        workers = running.workers(),
        "tsunagi-relay serving"
    );

    let signal = signals.forever().next();
    tracing::info!(?signal, "shutting down");
    let grace = Duration::from_millis(args.shutdown_grace_ms);
    if !running.shutdown(grace) {
        tracing::warn!(
            ?grace,
            "workers still busy after the grace period; exiting anyway"
        );
    }
    if let Some(http) = http {
        http.stop();
    }
    tracing::info!("stopped");
    Ok(())
}
