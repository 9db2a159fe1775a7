//! The `tsunagi` command-line tool.

use clap::Parser;

/// Tsunagi's command-line tool. Its subcommands (natcheck, mape, token, peer, demo)
/// arrive with the issues that build them.
#[derive(Debug, Parser)]
#[command(name = "tsunagi", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    println!("tsunagi {}: no subcommand is implemented yet", tsunagi::VERSION);
    Ok(())
}
