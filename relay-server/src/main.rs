//! `tsunagi-relay`: STUN / TURN relay and rendezvous server (being built; see the issues).

use clap::Parser;

/// Tsunagi's relay server. The STUN, TURN and rendezvous services are not built yet:
/// this binary only reports its version for now.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!(
        "tsunagi-relay {}: no service is implemented yet; use coturn meanwhile",
        tsunagi::VERSION
    )
}
