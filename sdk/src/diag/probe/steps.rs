//! The phases of [`Prober`]: what each sends and what it concludes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Output, Phase, Prober, Progress, Tag, Trial};
use crate::diag::analysis::{self, Sample};
use crate::diag::report::{Behaviour, LifetimeBracket};
use crate::diag::txn::{Ask, MAIN_SOCKET, Outcome, SocketId, Txn};

impl Prober {
    pub(super) fn request(
        &mut self,
        tag: Tag,
        socket: SocketId,
        dest: SocketAddr,
        ask: Ask,
        now: Instant,
    ) {
        let id = self.ids.next_id();
        self.txns.push((tag, Txn::new(id, socket, dest, ask, now)));
    }

    pub(super) fn progress(&mut self, p: Progress) {
        self.out.push_back(Output::Progress(p));
    }

    pub(super) fn warn(&mut self, w: String) {
        tracing::info!(warning = %w, "diagnosis");
        self.report.warnings.push(w);
    }

    fn open_socket(&mut self, tag: Tag) -> SocketId {
        let id = SocketId(self.next_socket);
        self.next_socket += 1;
        self.pending_sockets.insert(id, tag);
        self.open_sockets.insert(id);
        self.out.push_back(Output::OpenSocket(id));
        id
    }

    fn close_socket(&mut self, id: SocketId) {
        if self.open_sockets.remove(&id) {
            self.pending_sockets.remove(&id);
            self.out.push_back(Output::CloseSocket(id));
        }
    }

    fn outcome(&self, tag: Tag) -> Option<&Outcome> {
        self.txns
            .iter()
            .find(|(t, _)| *t == tag)
            .and_then(|(_, t)| t.outcome.as_ref())
    }

    fn mapped_of(&self, tag: Tag) -> Option<SocketAddr> {
        match self.outcome(tag)? {
            Outcome::Response { mapped, .. } => Some(*mapped),
            _ => None,
        }
    }

    fn all_done(&self, f: impl Fn(Tag) -> bool) -> bool {
        self.txns
            .iter()
            .filter(|(t, _)| f(*t))
            .all(|(_, t)| t.done())
    }

    fn behind_nat(&self) -> bool {
        self.m1.is_some_and(|m| m != self.main_local)
    }

    /// Sends what is due and moves through phases until nothing changes.
    pub(super) fn drive(&mut self, now: Instant) {
        while self.phase != Phase::Finished {
            self.start_due_probes(now);
            let timers = self.cfg.retransmit;
            for (_, t) in &mut self.txns {
                if let Some((socket, destination, payload)) = t.poll_send(now, &timers) {
                    self.out.push_back(Output::Transmit {
                        socket,
                        destination,
                        payload,
                    });
                }
            }
            if !self.step(now) {
                break;
            }
        }
    }

    /// Concludes the current phase if its transactions are over; `true` if it moved on.
    fn step(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Binding if self.all_done(|t| t == Tag::Test1) => self.conclude_binding(now),
            Phase::Filtering
                if self.all_done(|t| {
                    matches!(
                        t,
                        Tag::FilterChangeBoth | Tag::FilterChangePort | Tag::Hairpin
                    )
                }) =>
            {
                self.conclude_filtering(now)
            }
            Phase::Mapping if self.all_done(|t| matches!(t, Tag::Map2 | Tag::Map3 | Tag::Map4)) => {
                self.conclude_mapping(now)
            }
            Phase::PortAllocation
                if self.pending_sockets.is_empty() && self.all_done(|t| t == Tag::PortSample) =>
            {
                self.conclude_ports(now)
            }
            Phase::Lifetime => return self.lifetime_step(now),
            _ => return false,
        }
        true
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.progress(Progress::Phase(phase));
    }

    fn conclude_binding(&mut self, now: Instant) {
        match self.outcome(Tag::Test1).cloned() {
            Some(Outcome::Response { mapped, other, .. }) => {
                self.m1 = Some(mapped);
                self.report.mapped_address = Some(mapped);
                self.samples.push(Sample {
                    local_port: self.main_local.port(),
                    mapped_port: mapped.port(),
                    first_of_socket: true,
                });
                // From the addresses for now; the driver adds the traced path.
                self.report.update_nat_layers();
                let other =
                    other.filter(|o| o.ip() != self.server.ip() && o.port() != self.server.port());
                self.report.server_other_address = other;
                self.other = other;
                if other.is_none() {
                    self.warn(format!(
                        "{} gave no usable OTHER-ADDRESS (RFC 5780): mapping and filtering cannot be tested; use a STUN server with two IP addresses (e.g. tsunagi-relay --rfc5780-alt)",
                        self.server
                    ));
                    self.start_ports(now);
                    return;
                }
                self.enter(Phase::Filtering);
                let both = Ask {
                    change_ip: true,
                    change_port: true,
                    response_port: None,
                };
                let port = Ask {
                    change_port: true,
                    ..Ask::default()
                };
                self.request(Tag::FilterChangeBoth, MAIN_SOCKET, self.server, both, now);
                self.request(Tag::FilterChangePort, MAIN_SOCKET, self.server, port, now);
                if self.behind_nat() {
                    self.request(Tag::Hairpin, MAIN_SOCKET, mapped, Ask::default(), now);
                }
            }
            Some(Outcome::Error(code)) => {
                self.warn(format!(
                    "{} answered Binding with error {code}; is it a STUN server?",
                    self.server
                ));
                self.finish(now);
            }
            _ => {
                self.warn(format!(
                    "no STUN answer from {} over UDP: UDP is blocked on this network or the server is down; check the address and that outbound UDP to port {} is allowed",
                    self.server,
                    self.server.port()
                ));
                self.finish(now);
            }
        }
    }

    fn conclude_filtering(&mut self, now: Instant) {
        let server = self.server;
        let both = self.outcome(Tag::FilterChangeBoth).cloned();
        let port = self.outcome(Tag::FilterChangePort).cloned();
        let mut ignored = false;
        self.report.filtering = match (both, port) {
            (Some(Outcome::Response { from, .. }), _) if from.ip() != server.ip() => {
                Some(Behaviour::EndpointIndependent)
            }
            (Some(Outcome::Timeout), Some(Outcome::Response { from, .. }))
                if from.ip() == server.ip() && from.port() != server.port() =>
            {
                Some(Behaviour::AddressDependent)
            }
            (Some(Outcome::Timeout), Some(Outcome::Timeout)) => {
                Some(Behaviour::AddressAndPortDependent)
            }
            _ => {
                ignored = true;
                None
            }
        };
        if ignored {
            self.warn(format!(
                "{server} did not honour CHANGE-REQUEST (RFC 5780): filtering unknown; use a server with full RFC 5780 support"
            ));
        }
        if self.behind_nat() {
            self.report.hairpinning = Some(matches!(
                self.outcome(Tag::Hairpin),
                Some(Outcome::Looped { .. })
            ));
        }
        self.enter(Phase::Mapping);
        if let Some(other) = self.other {
            let alt_ip = SocketAddr::new(other.ip(), server.port());
            let alt_port = SocketAddr::new(server.ip(), other.port());
            self.request(Tag::Map2, MAIN_SOCKET, alt_ip, Ask::default(), now);
            self.request(Tag::Map3, MAIN_SOCKET, other, Ask::default(), now);
            self.request(Tag::Map4, MAIN_SOCKET, alt_port, Ask::default(), now);
        }
    }

    fn conclude_mapping(&mut self, now: Instant) {
        let (m2, m3, m4) = (
            self.mapped_of(Tag::Map2),
            self.mapped_of(Tag::Map3),
            self.mapped_of(Tag::Map4),
        );
        for m in [m2, m3, m4].into_iter().flatten() {
            self.samples.push(Sample {
                local_port: self.main_local.port(),
                mapped_port: m.port(),
                first_of_socket: false,
            });
        }
        match (self.m1, m2, m3) {
            (Some(m1), Some(m2), Some(m3)) => {
                self.report.mapping = Some(analysis::mapping(m1, m2, m3))
            }
            _ => self.warn(format!(
                "the server's alternate address {} did not answer: mapping behaviour unknown",
                self.other.map(|o| o.to_string()).unwrap_or_default()
            )),
        }
        self.start_ports(now);
    }

    fn start_ports(&mut self, now: Instant) {
        let moved = self.m1.is_some_and(|m| m.port() != self.main_local.port());
        if self.report.mapping == Some(Behaviour::EndpointIndependent)
            && moved
            && self.cfg.port_sockets > 0
        {
            // One socket shows one port behind an EIM NAT: a few more show the pattern.
            self.enter(Phase::PortAllocation);
            for _ in 0..self.cfg.port_sockets {
                self.open_socket(Tag::PortSample);
            }
        } else {
            self.conclude_ports(now);
        }
    }

    fn conclude_ports(&mut self, now: Instant) {
        let extra: Vec<(SocketId, Option<SocketAddr>)> = self
            .txns
            .iter()
            .filter(|(t, _)| *t == Tag::PortSample)
            .map(|(_, t)| match &t.outcome {
                Some(Outcome::Response { mapped, .. }) => (t.socket, Some(*mapped)),
                _ => (t.socket, None),
            })
            .collect();
        for (socket, mapped) in extra {
            if let (Some(m), Some(local)) = (mapped, self.socket_ports.get(&socket)) {
                self.samples.push(Sample {
                    local_port: *local,
                    mapped_port: m.port(),
                    first_of_socket: true,
                });
            }
            self.close_socket(socket);
        }
        if self.m1.is_some() {
            self.report.port_allocation = analysis::port_allocation(&self.samples);
            self.report.port_range = analysis::port_range(&self.samples);
            if self.behind_nat()
                && self.report.port_allocation != Some(crate::diag::PortAllocation::Preserving)
            {
                let ports = self
                    .report
                    .port_range
                    .as_ref()
                    .map(|r| r.observed.clone())
                    .unwrap_or_default();
                self.report.mape_hint = analysis::mape_hint(&ports);
            }
        }
        self.start_lifetime(now);
    }

    fn start_lifetime(&mut self, now: Instant) {
        if self.cfg.quick {
            self.finish(now);
            return;
        }
        if !self.behind_nat() && self.report.filtering == Some(Behaviour::EndpointIndependent) {
            // No NAT and no filter: nothing times out.
            self.finish(now);
            return;
        }
        self.enter(Phase::Lifetime);
        self.start_round(now);
    }

    fn start_round(&mut self, now: Instant) {
        let waits = self.bracket.next_waits(&self.cfg.lifetime);
        if waits.is_empty() {
            self.finish_lifetime(now);
            return;
        }
        self.trials.clear();
        for (i, wait) in waits.iter().enumerate() {
            let socket = self.open_socket(Tag::LifeOpen(i));
            self.trials.push(Trial {
                wait: *wait,
                socket,
                alive_since: None,
                mapped_port: None,
                probe_at: None,
                probe_sent: None,
                verdict: None,
            });
        }
        self.lifetime_progress(waits);
    }

    fn lifetime_progress(&mut self, trying_s: Vec<f64>) {
        self.progress(Progress::Lifetime {
            lower_s: self.bracket.lower,
            upper_s: self.bracket.upper,
            max_s: self.cfg.lifetime.max.as_secs_f64(),
            trying_s,
        });
    }

    fn start_due_probes(&mut self, now: Instant) {
        let due: Vec<(usize, u16)> = self
            .trials
            .iter()
            .enumerate()
            .filter(|(_, t)| t.probe_sent.is_none() && t.probe_at.is_some_and(|at| at <= now))
            .filter_map(|(i, t)| Some((i, t.mapped_port?)))
            .collect();
        for (i, port) in due {
            if let Some(t) = self.trials.get_mut(i) {
                t.probe_sent = Some(now);
            }
            let ask = Ask {
                response_port: Some(port),
                ..Ask::default()
            };
            self.request(Tag::LifeProbe(i), MAIN_SOCKET, self.server, ask, now);
        }
    }

    fn lifetime_step(&mut self, now: Instant) -> bool {
        let rtt = self.rtt;
        let mut abort = None;
        let mut verdicts = Vec::new();
        for (tag, txn) in &self.txns {
            let (Tag::LifeOpen(i) | Tag::LifeProbe(i)) = *tag else {
                continue;
            };
            let Some(trial) = self.trials.get_mut(i) else {
                continue;
            };
            match (tag, &txn.outcome) {
                (Tag::LifeOpen(_), Some(Outcome::Response { mapped, at, .. }))
                    if trial.alive_since.is_none() =>
                {
                    trial.alive_since = Some(*at);
                    trial.mapped_port = Some(mapped.port());
                    let wait = Duration::from_secs_f64(trial.wait.max(0.0));
                    trial.probe_at = Some((*at + wait).checked_sub(rtt).unwrap_or(*at));
                }
                (
                    Tag::LifeOpen(_),
                    Some(Outcome::Timeout | Outcome::Error(_) | Outcome::Looped { .. }),
                ) if trial.verdict.is_none() => {
                    abort = Some(
                        "a fresh socket got no STUN answer; the binding lifetime was not measured"
                            .to_owned(),
                    );
                }
                (Tag::LifeProbe(_), Some(o)) if trial.verdict.is_none() => {
                    let idle = match (trial.probe_sent, trial.alive_since) {
                        (Some(sent), Some(since)) => {
                            (sent + rtt).saturating_duration_since(since).as_secs_f64()
                        }
                        _ => trial.wait,
                    };
                    match o {
                        Outcome::Response { socket, .. } if *socket == trial.socket => {
                            trial.verdict = Some(true);
                            verdicts.push((idle, true));
                        }
                        Outcome::Timeout => {
                            trial.verdict = Some(false);
                            verdicts.push((idle, false));
                        }
                        _ => {
                            abort = Some(format!(
                                "{} does not support RESPONSE-PORT (RFC 5780 §7.5); the binding lifetime was not measured",
                                self.server
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        for (idle, alive) in verdicts {
            if !self.bracket.record(idle, alive) {
                self.warn(format!(
                    "binding lifetime trials disagree (a mapping {} after {idle:.1} s); packet loss or a changing timer — the bracket keeps the consistent trials",
                    if alive { "alive" } else { "gone" }
                ));
            }
        }
        if let Some(reason) = abort {
            self.warn(reason);
            self.end_round();
            self.finish(now);
            return true;
        }
        // A round is over when every trial has a verdict, or a mapping died and every
        // shorter trial has its verdict (longer ones would die too).
        let first_dead = self
            .trials
            .iter()
            .filter(|t| t.verdict == Some(false))
            .map(|t| t.wait)
            .fold(f64::INFINITY, f64::min);
        let over = self
            .trials
            .iter()
            .all(|t| t.verdict.is_some() || t.wait > first_dead);
        if !over {
            return false;
        }
        self.end_round();
        self.lifetime_progress(Vec::new());
        if self.bracket.done(&self.cfg.lifetime) {
            self.finish_lifetime(now);
        } else {
            self.start_round(now);
        }
        true
    }

    pub(super) fn end_round(&mut self) {
        let sockets: Vec<SocketId> = self.trials.iter().map(|t| t.socket).collect();
        for s in sockets {
            self.close_socket(s);
        }
        self.trials.clear();
        self.txns
            .retain(|(t, _)| !matches!(t, Tag::LifeOpen(_) | Tag::LifeProbe(_)));
    }

    fn finish_lifetime(&mut self, now: Instant) {
        self.finish(now);
    }

    pub(super) fn finish(&mut self, now: Instant) {
        if self.bracket.trials > 0 {
            let round = |x: f64| (x * 100.0).round() / 100.0;
            self.report.binding_lifetime = Some(LifetimeBracket {
                lower_s: round(self.bracket.lower),
                upper_s: self.bracket.upper.map(round),
                trials: self.bracket.trials,
            });
            self.report.binding_lifetime_s = self.bracket.estimate().map(round);
            if self.bracket.upper.is_none() {
                self.warn(format!(
                    "the mapping outlived the lifetime search's maximum ({:.0} s)",
                    self.cfg.lifetime.max.as_secs_f64()
                ));
            }
        }
        self.end_round();
        let open: Vec<SocketId> = self.open_sockets.iter().copied().collect();
        for s in open {
            self.close_socket(s);
        }
        self.txns.clear();
        self.report.duration_ms =
            u64::try_from(now.saturating_duration_since(self.started).as_millis())
                .unwrap_or(u64::MAX);
        self.enter(Phase::Finished);
    }
}
