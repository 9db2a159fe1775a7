//! Prometheus text exposition (format 0.0.4) of the relay's counters.
//!
//! Hand-written rather than the `metrics` crates (see decision record 0004):
//! the TURN core already keeps its counters as relaxed atomics in
//! [`Counters`], and the driver keeps its own per worker in [`DriverCounters`],
//! so exporting is a read of a few dozen atomics and some `write!` calls at
//! scrape time. Nothing on the packet path changes for metrics.
//!
//! ```
//! use std::sync::Arc;
//! use tsunagi_relay::metrics::{DriverCounters, Registry};
//!
//! let registry = Registry::new();
//! let worker = Arc::new(DriverCounters::default());
//! registry.add_driver(Arc::clone(&worker));
//! worker.count_received(1, 100);
//! assert!(registry.render().contains("tsunagi_relay_udp_datagrams_received_total 1\n"));
//! ```

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::counters::Counters;

/// What a driver worker counts on its sockets (the core counts the protocol).
/// One per worker thread so that no cache line is shared on the hot path.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct DriverCounters {
    datagrams_received: AtomicU64,
    bytes_received: AtomicU64,
    datagrams_sent: AtomicU64,
    bytes_sent: AtomicU64,
    send_errors: AtomicU64,
    stun_requests: AtomicU64,
}

impl DriverCounters {
    /// Counts `datagrams` received, `bytes` in all.
    pub fn count_received(&self, datagrams: u64, bytes: u64) {
        self.datagrams_received
            .fetch_add(datagrams, Ordering::Relaxed);
        self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `datagrams` sent, `bytes` in all.
    pub fn count_sent(&self, datagrams: u64, bytes: u64) {
        self.datagrams_sent.fetch_add(datagrams, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a send that the OS refused.
    pub fn count_send_error(&self) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts STUN requests (any method) received.
    pub fn count_stun_requests(&self, n: u64) {
        self.stun_requests.fetch_add(n, Ordering::Relaxed);
    }
}

/// Everything the exporter reads: the cores' [`Counters`] (one per shard) and
/// the workers' [`DriverCounters`]. Cheap to share (`Arc<Registry>`).
#[derive(Debug)]
pub struct Registry {
    started: Instant,
    cores: Mutex<Vec<Arc<Counters>>>,
    drivers: Mutex<Vec<Arc<DriverCounters>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

/// How one core counter is exported: metric name, type, help, label.
struct Export {
    counter: &'static str,
    metric: &'static str,
    kind: &'static str,
    help: &'static str,
    label: Option<&'static str>,
}

const fn export(
    counter: &'static str,
    metric: &'static str,
    kind: &'static str,
    help: &'static str,
    label: Option<&'static str>,
) -> Export {
    Export {
        counter,
        metric,
        kind,
        help,
        label,
    }
}

/// The core counters, in exposition order. Counters the core adds later and
/// this table does not know are still exported, as `tsunagi_relay_<name>_total`.
const EXPORTS: &[Export] = &[
    export(
        "allocations_active",
        "tsunagi_relay_allocations",
        "gauge",
        "TURN allocations in place now.",
        None,
    ),
    export(
        "allocations_created",
        "tsunagi_relay_allocations_created_total",
        "counter",
        "TURN allocations created.",
        None,
    ),
    export(
        "allocations_ended",
        "tsunagi_relay_allocations_ended_total",
        "counter",
        "TURN allocations deleted by their client or expired.",
        None,
    ),
    export(
        "packets_to_peers",
        "tsunagi_relay_relayed_packets_total",
        "counter",
        "Datagrams relayed, by direction.",
        Some("direction=\"to_peer\""),
    ),
    export(
        "packets_to_clients",
        "tsunagi_relay_relayed_packets_total",
        "counter",
        "Datagrams relayed, by direction.",
        Some("direction=\"to_client\""),
    ),
    export(
        "bytes_to_peers",
        "tsunagi_relay_relayed_bytes_total",
        "counter",
        "Application bytes relayed (without TURN framing), by direction.",
        Some("direction=\"to_peer\""),
    ),
    export(
        "bytes_to_clients",
        "tsunagi_relay_relayed_bytes_total",
        "counter",
        "Application bytes relayed (without TURN framing), by direction.",
        Some("direction=\"to_client\""),
    ),
    export(
        "auth_failures",
        "tsunagi_relay_auth_failures_total",
        "counter",
        "Requests rejected for credentials (unknown user, expired or forged REST credential, wrong MESSAGE-INTEGRITY).",
        None,
    ),
    export(
        "stale_nonces",
        "tsunagi_relay_stale_nonces_total",
        "counter",
        "Requests answered 438 Stale Nonce (normal in long sessions).",
        None,
    ),
    export(
        "quota_rejections",
        "tsunagi_relay_quota_hits_total",
        "counter",
        "Requests refused by a quota or limit, by kind.",
        Some("kind=\"allocation_quota\""),
    ),
    export(
        "capacity_rejections",
        "tsunagi_relay_quota_hits_total",
        "counter",
        "Requests refused by a quota or limit, by kind.",
        Some("kind=\"capacity\""),
    ),
    export(
        "bandwidth_drops",
        "tsunagi_relay_quota_hits_total",
        "counter",
        "Requests refused by a quota or limit, by kind.",
        Some("kind=\"bandwidth\""),
    ),
    export(
        "denied_peers",
        "tsunagi_relay_denied_peers_total",
        "counter",
        "CreatePermission / ChannelBind refused because the peer address is denied.",
        None,
    ),
    export(
        "unpermitted_drops",
        "tsunagi_relay_unpermitted_drops_total",
        "counter",
        "Datagrams dropped for lack of a permission, channel or allocation.",
        None,
    ),
    export(
        "malformed",
        "tsunagi_relay_malformed_total",
        "counter",
        "Datagrams that are not well-formed STUN or ChannelData.",
        None,
    ),
];

impl Registry {
    /// An empty registry; its uptime starts now.
    pub fn new() -> Registry {
        Registry {
            started: Instant::now(),
            cores: Mutex::new(Vec::new()),
            drivers: Mutex::new(Vec::new()),
        }
    }

    /// Adds one core shard's counters (summed with the others at scrape time).
    pub fn add_core(&self, counters: Arc<Counters>) {
        let mut cores = self.cores.lock().unwrap_or_else(|p| p.into_inner());
        if !cores.iter().any(|c| Arc::ptr_eq(c, &counters)) {
            cores.push(counters);
        }
    }

    /// Adds one driver worker's counters.
    pub fn add_driver(&self, counters: Arc<DriverCounters>) {
        let mut drivers = self.drivers.lock().unwrap_or_else(|p| p.into_inner());
        drivers.push(counters);
    }

    /// The sum of one core counter over all shards (by its [`Counters::snapshot`] name).
    pub fn core_total(&self, name: &str) -> u64 {
        let cores = self.cores.lock().unwrap_or_else(|p| p.into_inner());
        cores
            .iter()
            .flat_map(|c| c.snapshot())
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// The exposition text, as served on `/metrics`.
    pub fn render(&self) -> String {
        let mut core_sums: Vec<(&'static str, u64)> = Vec::new();
        {
            let cores = self.cores.lock().unwrap_or_else(|p| p.into_inner());
            for (name, value) in cores.iter().flat_map(|c| c.snapshot()) {
                match core_sums.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, sum)) => *sum += value,
                    None => core_sums.push((name, value)),
                }
            }
        }
        let mut out = String::with_capacity(4096);
        let mut described: Vec<&str> = Vec::new();
        for e in EXPORTS {
            let value = core_sums
                .iter()
                .find(|(n, _)| *n == e.counter)
                .map_or(0, |(_, v)| *v);
            if !described.contains(&e.metric) {
                described.push(e.metric);
                let _ = writeln!(out, "# HELP {} {}", e.metric, e.help);
                let _ = writeln!(out, "# TYPE {} {}", e.metric, e.kind);
            }
            match e.label {
                Some(label) => {
                    let _ = writeln!(out, "{}{{{label}}} {value}", e.metric);
                }
                None => {
                    let _ = writeln!(out, "{} {value}", e.metric);
                }
            }
        }
        for (name, value) in &core_sums {
            if EXPORTS.iter().all(|e| e.counter != *name) {
                let metric = format!("tsunagi_relay_{name}_total");
                let _ = writeln!(out, "# HELP {metric} The core's `{name}` counter.");
                let _ = writeln!(out, "# TYPE {metric} counter");
                let _ = writeln!(out, "{metric} {value}");
            }
        }
        self.render_driver(&mut out);
        out
    }

    fn render_driver(&self, out: &mut String) {
        let drivers = self.drivers.lock().unwrap_or_else(|p| p.into_inner());
        let sum = |f: fn(&DriverCounters) -> &AtomicU64| -> u64 {
            drivers.iter().map(|d| f(d).load(Ordering::Relaxed)).sum()
        };
        let rows: [(&str, &str, u64); 6] = [
            (
                "tsunagi_relay_stun_requests_total",
                "STUN requests received (any method, before authentication).",
                sum(|d| &d.stun_requests),
            ),
            (
                "tsunagi_relay_udp_datagrams_received_total",
                "UDP datagrams received on all sockets (listening and relay ports).",
                sum(|d| &d.datagrams_received),
            ),
            (
                "tsunagi_relay_udp_bytes_received_total",
                "UDP payload bytes received on all sockets.",
                sum(|d| &d.bytes_received),
            ),
            (
                "tsunagi_relay_udp_datagrams_sent_total",
                "UDP datagrams sent on all sockets.",
                sum(|d| &d.datagrams_sent),
            ),
            (
                "tsunagi_relay_udp_bytes_sent_total",
                "UDP payload bytes sent on all sockets.",
                sum(|d| &d.bytes_sent),
            ),
            (
                "tsunagi_relay_udp_send_errors_total",
                "UDP sends the OS refused (e.g. ICMP unreachable, full buffers).",
                sum(|d| &d.send_errors),
            ),
        ];
        for (metric, help, value) in rows {
            let _ = writeln!(out, "# HELP {metric} {help}");
            let _ = writeln!(out, "# TYPE {metric} counter");
            let _ = writeln!(out, "{metric} {value}");
        }
        let workers = drivers.len();
        let _ = writeln!(
            out,
            "# HELP tsunagi_relay_workers Packet-processing threads."
        );
        let _ = writeln!(out, "# TYPE tsunagi_relay_workers gauge");
        let _ = writeln!(out, "tsunagi_relay_workers {workers}");
        let _ = writeln!(
            out,
            "# HELP tsunagi_relay_uptime_seconds Seconds since the relay started."
        );
        let _ = writeln!(out, "# TYPE tsunagi_relay_uptime_seconds gauge");
        let _ = writeln!(
            out,
            "tsunagi_relay_uptime_seconds {:.3}",
            self.started.elapsed().as_secs_f64()
        );
        let _ = writeln!(
            out,
            "# HELP tsunagi_relay_build_info The relay's version (value is always 1)."
        );
        let _ = writeln!(out, "# TYPE tsunagi_relay_build_info gauge");
        let _ = writeln!(
            out,
            "tsunagi_relay_build_info{{version=\"{}\"}} 1",
            tsunagi::VERSION
        );
    }
}
