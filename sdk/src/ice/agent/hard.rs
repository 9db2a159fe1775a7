//! The hard-NAT side of [`IceAgent`]: planning once both NAT descriptions are
//! known, sending the probes as ICE checks, and turning an answer into a
//! remote candidate and a usable path.

use std::net::SocketAddr;
use std::time::Instant;

use is::Sha1HmacProvider;

use super::IceAgent;
use crate::ice::IceTransmit;
use crate::ice::candidate::remote_candidate;
use crate::ice::hardnat::{NoPlan, Prober, plan};
use crate::path::{PathAddr, Via};
use crate::signal::{Candidate, CandidateKind};

/// PRIORITY of a probe: what a peer-reflexive candidate of our host base
/// would get (RFC 8445 §7.1.1; type preference 110).
const PROBE_PRIORITY: u32 = (110 << 24) | (65_535 << 8) | 255;
/// Large enough for a Binding request with USERNAME (≤ 129 bytes), PRIORITY,
/// ICE-CONTROLLING, MESSAGE-INTEGRITY and FINGERPRINT.
const PROBE_BUF: usize = 256;

impl IceAgent {
    /// Plans once everything is known, then sends due probes.
    pub(super) fn hard_nat_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        if self.prober.is_none() && self.hard_nat_plan.is_none() {
            self.try_plan(now);
        }
        let Some(mut prober) = self.prober.take() else {
            return;
        };
        let mut out = Vec::new();
        prober.handle_timeout(now, |target| {
            let tid = is::stun::TransId::new();
            if let Some(bytes) = self.probe_bytes(tid) {
                out.push(IceTransmit {
                    via: Via::Socket(target),
                    bytes,
                });
            }
            tid
        });
        self.transmits.extend(out);
        self.prober = Some(prober);
    }

    /// Due now while a plan is waiting to be made, then the prober's pace.
    pub(super) fn hard_nat_poll_timeout(&self) -> Option<Instant> {
        match &self.prober {
            Some(p) => p.poll_timeout(),
            None if self.hard_nat_plan.is_none() && self.ready_to_plan() => self.last_now,
            None => None,
        }
    }

    fn ready_to_plan(&self) -> bool {
        self.remote_nat.is_some()
            && self.remote_public_v4.is_some()
            && self.agent.remote_credentials().is_some()
            && self.bases.iter().any(|b| b.is_ipv4())
    }

    fn try_plan(&mut self, now: Instant) {
        if !self.ready_to_plan() {
            return;
        }
        let (Some(remote), Some(ip)) = (self.remote_nat.clone(), self.remote_public_v4) else {
            return;
        };
        if self
            .usable_paths
            .iter()
            .any(|p| matches!(p, PathAddr::Direct(_)))
        {
            self.hard_nat_plan = Some(NoPlan::NotNeeded);
            return;
        }
        let config = self.config.hard_nat.clone();
        match plan(self.local_nat.as_ref(), &remote, ip, &config, &mut self.rng) {
            Ok(p) => {
                tracing::info!(
                    technique = ?p.technique,
                    ports = p.targets.len(),
                    rounds = p.rounds,
                    peer = %ip,
                    "hard NAT: probing"
                );
                self.prober = Some(Prober::new(p, &config, now));
            }
            Err(no) => {
                tracing::debug!(reason = %no, "hard NAT: no probing");
                self.hard_nat_plan = Some(no);
            }
        }
    }

    /// An ICE check from our host base, authenticated for the peer.
    fn probe_bytes(&self, tid: is::stun::TransId) -> Option<Vec<u8>> {
        let remote = self.agent.remote_credentials()?;
        let local = self.agent.local_credentials();
        let username = format!("{}:{}", remote.ufrag, local.ufrag);
        let msg = is::stun::StunMessage::binding_request(
            &username,
            tid,
            self.agent.controlling(),
            self.tie_breaker,
            PROBE_PRIORITY,
            false,
        );
        let mut buf = vec![0u8; PROBE_BUF];
        let hmac =
            |key: &[u8], payloads: &[&[u8]]| is::DefaultSha1HmacProvider.sha1_hmac(key, payloads);
        let n = msg
            .to_bytes(Some(remote.pass.as_bytes()), &mut buf, hmac)
            .ok()?;
        buf.truncate(n);
        Some(buf)
    }

    /// Whether `message` from `from` answers one of our probes. An answer is a
    /// working path both ways: it becomes a remote candidate (the ICE agent
    /// checks and may nominate it) and a usable direct path at once.
    pub(super) fn probe_answered(
        &mut self,
        from: SocketAddr,
        message: &is::stun::StunMessage<'_>,
    ) -> bool {
        if !message.is_successful_binding_response() {
            return false;
        }
        // The peer's agent signs its answer with its password (ours for it):
        // an answer that does not verify is someone else's or forged.
        let Some(remote) = self.agent.remote_credentials() else {
            return false;
        };
        let hmac =
            |key: &[u8], payloads: &[&[u8]]| is::DefaultSha1HmacProvider.sha1_hmac(key, payloads);
        if !message.verify(remote.pass.as_bytes(), hmac) {
            return false;
        }
        let Some(prober) = &mut self.prober else {
            return false;
        };
        let Some(hit) = prober.handle_response(message.trans_id(), from) else {
            return false;
        };
        tracing::info!(%hit, "hard NAT: a probe was answered");
        if self.remote.insert(hit) {
            let c = Candidate {
                addr: hit,
                kind: CandidateKind::ServerReflexive,
                priority: PROBE_PRIORITY,
            };
            self.agent
                .add_remote_candidate(remote_candidate(&c, self.remote.len()));
        }
        self.path_usable(PathAddr::Direct(hit));
        true
    }
}
