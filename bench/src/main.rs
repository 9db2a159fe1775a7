//! `tsunagi-bench`: benchmark commands that print figures measured against a baseline in
//! the same run. Results are recorded in `docs/src/benchmarks.md`.

mod natlab_bench;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tsunagi-bench",
    about = "Tsunagi's benchmarks (figures, not pass/fail)."
)]
struct Args {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// NAT lab bring-up and teardown time per site kind, against an empty lab (needs root).
    Natlab {
        /// Repetitions per site kind (the median is printed).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().bench {
        Bench::Natlab { runs } => natlab_bench::run(runs),
    }
}
