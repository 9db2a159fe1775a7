//! `tsunagi-bench`: benchmark commands that print figures measured against a baseline in
//! the same run. Results are recorded in `docs/src/benchmarks.md`.

mod datagrams;
mod natlab_bench;
mod relay;
mod relay_client;

use std::time::Duration;

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
    /// 100-byte unreliable messages on loopback: round trip (p50, p99) and throughput
    /// through the SDK, plain quinn and plain UDP, with the ratios.
    Datagrams {
        /// Round trips timed per transport.
        #[arg(long, default_value_t = 5000)]
        round_trips: usize,
        /// Seconds of each throughput run.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Message size in bytes.
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Rounds over all transports (medians are printed).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// NAT lab bring-up and teardown time per site kind, against an empty lab (needs root).
    Natlab {
        /// Repetitions per site kind (the median is printed).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// coturn 4.6.1 against tsunagi-relay on loopback: CPU per relayed message,
    /// saturation rate and loss, and round-trip time, with the ratio.
    Relay {
        /// Messages per fixed-rate measurement (a).
        #[arg(long, default_value_t = 60_000)]
        messages: u64,
        /// Offered load for (a), messages/s (both relays must keep up).
        #[arg(long, default_value_t = 30_000)]
        rate: u64,
        /// Seconds of each saturation measurement (b).
        #[arg(long, default_value_t = 2.0)]
        saturation_secs: f64,
        /// Allocations carrying the load; a comma-separated list (e.g.
        /// `1,4,32`) runs every workload once per count and ends with a
        /// summary of the ratios.
        #[arg(long, value_delimiter = ',', default_value = "4")]
        flows: Vec<usize>,
        /// CPUs given to the relay under test (the last ones; capped so that at
        /// least CPU 0 is left to the load generator).
        #[arg(long, default_value_t = 2)]
        relay_cpus: usize,
        /// Force this many worker threads on both relays (coturn's
        /// `--relay-threads`, tsunagi's `--threads`). Default: each relay's own
        /// production default.
        #[arg(long)]
        threads: Option<usize>,
        /// Round trips sampled for (c).
        #[arg(long, default_value_t = 1000)]
        rtt_samples: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().bench {
        Bench::Datagrams {
            round_trips,
            seconds,
            size,
            rounds,
        } => datagrams::run(&datagrams::Settings {
            rounds: rounds.max(1),
            round_trips: round_trips.max(1),
            seconds: seconds.max(0.1),
            size: size.clamp(8, 1200),
        }),
        Bench::Natlab { runs } => natlab_bench::run(runs),
        Bench::Relay {
            messages,
            rate,
            saturation_secs,
            flows,
            relay_cpus,
            threads,
            rtt_samples,
        } => relay::run(&relay::Settings {
            messages,
            rate,
            saturation: Duration::from_secs_f64(saturation_secs.max(0.1)),
            flows: flows.into_iter().map(|f| f.max(1)).collect(),
            relay_cpus: relay_cpus.max(1),
            threads: threads.map(|t| t.max(1)),
            rtt_samples: rtt_samples.max(1),
        }),
    }
}
