//! The I/O side of [`IceAgent`]: datagrams and time in, datagrams and events out.

use std::time::Instant;

use super::IceAgent;
use crate::ice::gather::Gathered;
use crate::ice::{IceEvent, IceState, IceTransmit};
use crate::path::{Via, canonical};

impl IceAgent {
    /// A STUN datagram that arrived by `via` and that the path layer did not
    /// consume (see [`crate::path::PathHandle::stun_receiver`]). Returns whether
    /// it was ours: an answer to our server-reflexive gathering, or an ICE
    /// check or answer for this agent's credentials. Never panics on garbage.
    pub fn handle_stun(&mut self, now: Instant, via: Via, bytes: &[u8]) -> bool {
        if let Via::Socket(from) = via
            && let Some(g) = self.gatherer.handle_response(canonical(from), bytes)
        {
            self.gathered(g);
            return true;
        }
        let Ok(message) = is::stun::StunMessage::parse(bytes) else {
            return false;
        };
        if let Via::Socket(from) = via
            && self.probe_answered(canonical(from), &message)
        {
            return true;
        }
        if !self.agent.accepts_message(&message) {
            return false;
        }
        let (source, destination) = match via {
            Via::Socket(from) => {
                let from = canonical(from);
                (from, self.base_for(from).unwrap_or(from))
            }
            Via::Turn { server, peer } => {
                let relayed = self
                    .relays
                    .iter()
                    .filter(|r| r.server == server)
                    .map(|r| r.relayed)
                    .min_by_key(|r| r.is_ipv4() != peer.is_ipv4());
                let Some(relayed) = relayed else {
                    return false;
                };
                (peer, relayed)
            }
        };
        let is_check = message.is_binding_request() || message.is_successful_binding_response();
        let packet = is::stun::StunPacket {
            proto: is::Protocol::Udp,
            source,
            destination,
            message,
        };
        if !self.agent.handle_packet(now, packet) {
            return false;
        }
        if is_check {
            // An authenticated check arrived, or one of ours was answered: the
            // pair works both ways (the answer retraces the request's path).
            let path = self.path_of(via);
            self.path_usable(path);
        }
        self.drain_agent();
        true
    }

    fn gathered(&mut self, g: Gathered) {
        match g {
            Gathered::Mapped {
                server,
                base,
                mapped,
                previous,
            } => {
                tracing::debug!(%server, %mapped, "server-reflexive candidate");
                self.events.push_back(IceEvent::ServerReflexive {
                    server,
                    base,
                    mapped,
                    previous,
                });
                if let Err(e) = self.add_server_reflexive(mapped, base) {
                    tracing::debug!(error = %e, "server-reflexive address not usable");
                }
            }
            Gathered::TimedOut { server } => {
                self.events.push_back(IceEvent::GatheringFailed { server });
            }
        }
    }

    /// Runs timers: retransmissions of gathering requests, ICE checks,
    /// nomination, consent. Call once right after creating the agent, then
    /// whenever [`IceAgent::poll_timeout`] says.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut out = Vec::new();
        for g in self.gatherer.handle_timeout(now, &mut out) {
            self.gathered(g);
        }
        for (server, bytes) in out {
            self.transmits.push_back(IceTransmit {
                via: Via::Socket(server),
                bytes,
            });
        }
        self.agent.handle_timeout(now);
        self.drain_agent();
        self.hard_nat_timeout(now);
    }

    /// When [`IceAgent::handle_timeout`] must next run (`None` before its
    /// first call).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        [
            self.agent.poll_timeout(),
            self.gatherer.poll_timeout(),
            self.hard_nat_poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next datagram to send from the shared socket (or through a TURN
    /// allocation, for [`Via::Turn`]).
    pub fn poll_transmit(&mut self) -> Option<IceTransmit> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        let t = self.agent.poll_transmit()?;
        let via = self.via_for(t.source, t.destination);
        Some(IceTransmit {
            via,
            bytes: t.contents.into(),
        })
    }

    /// The next event. New local candidates come first, batched.
    pub fn poll_event(&mut self) -> Option<IceEvent> {
        if !self.unsent.is_empty() {
            return Some(IceEvent::LocalCandidates(std::mem::take(&mut self.unsent)));
        }
        self.events.pop_front()
    }

    /// Whether server-reflexive gathering is still waiting for a server.
    pub fn is_gathering(&self) -> bool {
        self.gatherer.is_busy()
    }

    fn drain_agent(&mut self) {
        while let Some(e) = self.agent.poll_event() {
            match e {
                is::IceAgentEvent::IceConnectionStateChange(s) => {
                    let state = IceState::from(s);
                    if state != self.state {
                        self.state = state;
                        tracing::debug!(?state, "ICE state");
                        self.events.push_back(IceEvent::StateChanged(state));
                    }
                }
                is::IceAgentEvent::NominatedSend {
                    source,
                    destination,
                    ..
                } => {
                    let path = self.path_of(self.via_for(source, destination));
                    self.path_usable(path);
                    if self.nominated != Some(path) {
                        tracing::info!(%path, "ICE: nominated");
                        self.nominated = Some(path);
                        self.events.push_back(IceEvent::Nominated(path));
                    }
                }
                // Received checks are reported where they arrive (handle_stun
                // knows whether they came through a relay).
                is::IceAgentEvent::DiscoveredRecv { .. } | is::IceAgentEvent::IceRestart(_) => {}
            }
        }
    }
}

impl From<is::IceConnectionState> for IceState {
    fn from(s: is::IceConnectionState) -> IceState {
        match s {
            is::IceConnectionState::New => IceState::New,
            is::IceConnectionState::Checking => IceState::Checking,
            is::IceConnectionState::Connected => IceState::Connected,
            is::IceConnectionState::Completed => IceState::Completed,
            is::IceConnectionState::Disconnected => IceState::Disconnected,
        }
    }
}
