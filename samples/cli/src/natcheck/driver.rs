//! The one place that calls `tsunagi::diag`: the RFC 5780 diagnosis
//! ([`diag::run_blocking`]) on this thread, and meanwhile, on their own threads, the
//! IPv6, NAT64 and port-mapping probes, whose findings fill the report's `ipv6`,
//! `nat64_prefix` and `port_mapping` when the diagnosis left them empty.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tsunagi::diag::{
    self, CancelFlag, DiagConfig, Ipv6Report, PortMappingReport, Progress, Report, Retransmit,
    ipv6, nat64, portmap,
};

use super::{Options, Target};

/// The retransmission schedule that waits about `timeout` for a first answer: the
/// default RTOs (200 ms doubling up to 1.6 s), as many sends as fit.
fn retransmit_for(timeout: Duration) -> Retransmit {
    let mut r = Retransmit::default();
    let mut waited = Duration::ZERO;
    let mut rto = r.initial_rto;
    let mut attempts = 0;
    while waited < timeout && attempts < 64 {
        waited += rto;
        rto = (rto * 2).min(r.max_rto);
        attempts += 1;
    }
    r.max_attempts = attempts.max(1);
    r
}

/// What the side probes found.
#[derive(Debug, Default)]
struct Side {
    ipv6: Option<Ipv6Report>,
    nat64: Option<String>,
    port_mapping: Option<PortMappingReport>,
    warnings: Vec<String>,
}

fn ipv6_probe(target: &Target, opts: &Options) -> Side {
    let mut side = Side::default();
    let Some(server) = target.v6 else {
        side.warnings.push(format!(
            "IPv6 not tested: {} has no IPv6 address; give one with --server6",
            target.name
        ));
        return side;
    };
    let mut o = ipv6::Ipv6Options::new(server);
    o.timeout = opts.timeout.min(Duration::from_secs(3));
    match ipv6::probe(&o) {
        Ok(f) => {
            if f.local_address.is_none() {
                side.warnings
                    .push("IPv6: this machine has no IPv6 route to the server".into());
            } else if f.reachable && f.filtering.is_none() {
                side.warnings.push(
                    "IPv6: the server has no second IPv6 address, so the firewall's filtering \
                     could not be measured"
                        .into(),
                );
            }
            side.ipv6 = Some(f.to_report());
        }
        Err(e) => side.warnings.push(format!("IPv6 probe did not run: {e}")),
    }
    side
}

fn nat64_probe(opts: &Options) -> Side {
    let mut side = Side::default();
    let o = nat64::Nat64Options {
        server: opts.dns64.map(|ip| std::net::SocketAddr::new(ip, 53)),
        ..nat64::Nat64Options::default()
    };
    match nat64::discover(&o) {
        Ok(r) => {
            let server = r
                .server
                .map_or_else(|| "no DNS server".to_owned(), |s| s.to_string());
            match r.status {
                nat64::Nat64Status::Found | nat64::Nat64Status::NotSynthesized => {}
                nat64::Nat64Status::NoServer => side.warnings.push(
                    "NAT64 not tested: no DNS server configured; give one with --dns64".into(),
                ),
                nat64::Nat64Status::ServerError => side.warnings.push(format!(
                    "NAT64: the DNS server {server} answered with an error; try --dns64"
                )),
                _ => side.warnings.push(format!(
                    "NAT64: the DNS server {server} did not answer in time; try --dns64"
                )),
            }
            side.nat64 = r.prefix_text();
        }
        Err(e) => side.warnings.push(format!("NAT64 probe did not run: {e}")),
    }
    side
}

fn portmap_probe(opts: &Options) -> Side {
    let o = portmap::PortmapOptions {
        timeout: opts.timeout.min(Duration::from_secs(2)),
        ..portmap::PortmapOptions::default()
    };
    let f = portmap::probe(&o);
    let mut side = Side::default();
    if f.gateway.is_none() {
        side.warnings
            .push("UPnP-IGD, NAT-PMP and PCP not probed: no IPv4 default gateway found".into());
    }
    side.port_mapping = Some(f.to_report());
    side
}

/// Runs the whole check against `target`, reporting progress, until done or `cancel`
/// is set (the report then holds what was learnt so far).
pub fn diagnose(
    target: &Target,
    opts: &Options,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> anyhow::Result<Report> {
    let mut config = DiagConfig::new(&target.primary.to_string());
    config.quick = opts.quick;
    config.probe.retransmit = retransmit_for(opts.timeout);
    config.probe.lifetime.max = opts.max_lifetime;
    let flag = CancelFlag::default();
    let done = AtomicBool::new(false);
    let started = std::time::Instant::now();

    let (result, sides) = std::thread::scope(|s| {
        let side_probes: Vec<_> = [
            s.spawn(|| ipv6_probe(target, opts)),
            s.spawn(|| nat64_probe(opts)),
            s.spawn(|| portmap_probe(opts)),
        ]
        .into_iter()
        .collect();
        // The Ctrl-C flag is a plain AtomicBool (signal-hook sets it); pass it on.
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if cancel.load(Ordering::Relaxed) {
                    flag.cancel();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let result = diag::run_blocking(&config, |p| progress(p), &flag);
        done.store(true, Ordering::Relaxed);
        let sides: Vec<Side> = side_probes
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        (result, sides)
    });
    let mut report = result.context("the NAT check could not run")?;
    report.server = target.name.clone();
    // The side probes run beside the diagnosis: the whole check took this long.
    let total_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report.duration_ms = report.duration_ms.max(total_ms);
    for side in sides {
        if let Some(v6) = side.ipv6
            && report.ipv6 == Ipv6Report::default()
        {
            report.ipv6 = v6;
        }
        if report.nat64_prefix.is_none() {
            report.nat64_prefix = side.nat64;
        }
        if let Some(pm) = side.port_mapping
            && report.port_mapping == PortMappingReport::default()
        {
            report.port_mapping = pm;
        }
        report.warnings.extend(side.warnings);
    }
    // A port-mapping gateway's external address is more evidence about NAT layers.
    report.update_nat_layers();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_sets_the_number_of_sends() {
        assert_eq!(retransmit_for(Duration::from_secs(3)).max_attempts, 4);
        assert_eq!(retransmit_for(Duration::from_millis(100)).max_attempts, 1);
        assert_eq!(retransmit_for(Duration::from_secs(10)).max_attempts, 9);
    }
}
