//! An opt-in background measurement of the NAT's UDP session timer with `diag`,
//! which then sizes the keepalives ([`crate::path::PathHandle::set_nat_timer`]).
//!
//! Opt-in because it takes a minute or more (each trial leaves a fresh mapping
//! idle for seconds to minutes) and needs an RFC 5780 server (tsunagi-relay with
//! `--rfc5780-alt`, or coturn with an alternate address). It never delays
//! connecting: it runs on its own sockets in a task of its own; until it ends the
//! keepalives use what is known (the default, a configured or cached timer, or a
//! mapping seen to expire).

use std::time::Duration;

use super::Endpoint;
use crate::diag::{CancelFlag, DiagConfig, LifetimeConfig, ProbeConfig};

impl Endpoint {
    /// Measures the binding lifetime against the RFC 5780 STUN server `server`
    /// (`host:port`) in the background, trying idle times up to `max`; when the
    /// search brackets the timer, its proven lower bound becomes the endpoint's
    /// NAT timer. The task's result is that timer (`None`: not measured — the
    /// mapping outlived `max`, the server is not RFC 5780 capable, or UDP is
    /// blocked). Aborting the task stops the measurement.
    pub fn measure_nat_timer(
        &self,
        server: &str,
        max: Duration,
    ) -> tokio::task::JoinHandle<Option<Duration>> {
        let config = DiagConfig {
            probe: ProbeConfig {
                lifetime: LifetimeConfig {
                    max,
                    ..LifetimeConfig::default()
                },
                ..ProbeConfig::default()
            },
            ..DiagConfig::new(server)
        };
        let paths = self.path_handle().clone();
        self.shared().runtime.spawn(async move {
            let report = match crate::diag::run(&config, |_| {}, &CancelFlag::default()).await {
                Ok(report) => report,
                Err(e) => {
                    tracing::warn!(server = %config.server, error = %e, "NAT timer not measured");
                    return None;
                }
            };
            let Some(bracket) = report.binding_lifetime else {
                tracing::info!(server = %config.server, "NAT timer not measured (no RFC 5780 answers?); keepalives keep their interval");
                return None;
            };
            if bracket.upper_s.is_none() {
                tracing::info!(at_least_s = bracket.lower_s, "NAT timer longer than the search; keepalives keep their interval");
                return None;
            }
            let timer = Duration::try_from_secs_f64(bracket.lower_s)
                .ok()
                .filter(|t| !t.is_zero())?;
            tracing::info!(?timer, ?bracket, "NAT timer measured");
            paths.set_nat_timer(Some(timer));
            Some(timer)
        })
    }
}
