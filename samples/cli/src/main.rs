//! The `tsunagi` command-line tool.

use clap::{Parser, Subcommand};

mod demo;
mod mape;
mod natcheck;
mod peer;
mod token;

/// Tsunagi's command-line tool: checks and calculators for players, support staff and
/// ISPs. More subcommands (natcheck, token, peer, demo) arrive with the issues that
/// build them.
#[derive(Debug, Parser)]
#[command(name = "tsunagi", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Two players on this machine connect and play for a few seconds.
    Demo(demo::DemoArgs),
    Mape(mape::MapeArgs),
    Natcheck(natcheck::NatcheckArgs),
    /// Connect to another player by peer id through a rendezvous server.
    Peer(peer::PeerArgs),
    /// Mint a TURN credential token from a relay's shared secret.
    Token(token::TokenArgs),
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Demo(args) => demo::run(&args),
        Command::Mape(args) => mape::run(&args),
        Command::Natcheck(args) => natcheck::run(&args),
        Command::Peer(args) => peer::run(&args),
        Command::Token(args) => token::run(&args),
    }
}
