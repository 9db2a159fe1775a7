//! `tsunagi-relay`: STUN (RFC 8489 + RFC 5780) server; TURN and rendezvous follow.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use tsunagi_relay::udp;

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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log)
        .with_context(|| format!("invalid --log filter {:?}", args.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let options = udp::Options {
        listen: args.listen,
        rfc5780_alternate: args.rfc5780_alt,
        software: args.software,
    };
    let running = udp::start(&options).context("starting the STUN service")?;
    for address in running.local_addresses() {
        println!("listening udp {address}");
    }
    if let Some(addresses) = running.rfc5780() {
        tracing::info!(
            primary = %addresses.primary(),
            alternate = %addresses.alternate(),
            "RFC 5780 enabled"
        );
    }
    println!("ready");
    tracing::info!(version = tsunagi::VERSION, "tsunagi-relay serving STUN");
    running.wait();
    Ok(())
}
