//! Connecting by offer/answer blobs that the game carries itself (a Steam
//! lobby, EOS, its own server) instead of the rendezvous server.
//!
//! ```text
//!   Alice                         game's channel                       Bob
//!   create_offer(bob) ── offer ───────────────────────────────▶ apply_signal(offer)
//!   apply_signal(answer) ◀──────────────────────────── answer ── returns Some(answer)
//!   (dials QUIC to bob)  ─── relay path first, then direct paths as ICE proves them ──▶
//!   Event::Connected                                              Event::Connected
//! ```
//!
//! Blobs are complete (no trickle): each carries every candidate this side
//! has when it is made — host addresses, the server-reflexive address and the
//! relayed addresses of every relay added to the path layer (e.g.
//! `endpoint.path_handle().add_relay(..)`, or the relay of a
//! [`super::Rendezvous`]). Making one waits for a relay allocation still in
//! progress (up to 3 s), so one round trip through a slow lobby is enough.
//! Peer-reflexive candidates are still found by the checks. Relay paths need
//! an allocation on both sides: the peer's relayed address is reached through
//! ours.
//!
//! Blobs are not secret but are not trusted either: the offering side dials
//! QUIC to the PeerId it made the offer for, and the TLS handshake with raw
//! public keys (RFC 7250) proves the peer holds that key. A forged answer can
//! at worst make the attempt fail ([`super::Event::ConnectFailed`]); an answer
//! from an identity we made no offer to is refused
//! ([`SessionError::AnswerWithoutOffer`]). On the answering side, a session
//! arriving over the paths set up for an offer must prove the identity the
//! offer named, or it is closed.

use std::time::Duration;

use tracing::{debug, warn};

use super::signalling::{Applied, Local, Origin, random_u64};
use super::{Endpoint, Event, PeerId, SessionError};
use crate::path::PeerKey;
use crate::signal::{Role, Signal};

/// How long making a blob waits for a relay allocation still in progress.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

impl Endpoint {
    /// Makes an offer to `peer` for the game to carry to it (at most
    /// [`crate::signal::MAX_BLOB_LEN`] bytes, binary). Pass the answer that
    /// comes back to [`Endpoint::apply_signal`]. A new offer to the same peer
    /// replaces the previous one. Waits up to 3 s for a relay allocation still
    /// in progress.
    pub async fn create_offer(&self, peer: PeerId) -> Result<Vec<u8>, SessionError> {
        if peer == self.peer_id() {
            return Err(SessionError::OwnSignal);
        }
        let local = self.gather_local().await;
        let signalling = self.shared().signalling();
        let vaddr = self.path_handle().add_peer(&PeerKey(*peer.public_key()));
        signalling.start_agent(
            vaddr,
            peer,
            Role::Offer,
            random_u64(),
            &local,
            Origin::Blob,
            None,
        );
        Ok(signalling.signal(vaddr)?.to_blob()?)
    }

    /// Applies a blob from the other player. An offer returns `Some(answer)`:
    /// send it back through the same channel (the other side dials). An answer
    /// returns `None` and starts connecting in the background: watch for
    /// [`Event::Connected`] or [`Event::ConnectFailed`]. A repeated offer gets
    /// the same answer again; a repeated answer changes nothing.
    ///
    /// When both players make offers to each other at once, the offer of the
    /// smaller PeerId wins: its receiver answers it, and the other offer's
    /// receiver returns `None` (its own offer is the one answered).
    ///
    /// Errors: [`SessionError::BadSignal`] (not a blob of this format version,
    /// too large, corrupted), [`SessionError::OwnSignal`],
    /// [`SessionError::AnswerWithoutOffer`], [`SessionError::UnknownAttempt`]
    /// (an answer to an older offer), [`SessionError::SignalRefused`].
    pub async fn apply_signal(&self, blob: &[u8]) -> Result<Option<Vec<u8>>, SessionError> {
        let signal = Signal::from_blob(blob)?;
        if signal.from == *self.peer_id().public_key() {
            return Err(SessionError::OwnSignal);
        }
        let peer = PeerId::from_public_key(signal.from);
        let local = if signal.role == Role::Offer {
            self.gather_local().await
        } else {
            Local::default()
        };
        let signalling = self.shared().signalling();
        match signalling.apply(peer, &signal, &local, Origin::Blob, None)? {
            Applied::Answer(answer) => Ok(Some(answer.to_blob()?)),
            Applied::Update if signal.role == Role::Offer => {
                let vaddr = self.path_handle().add_peer(&PeerKey(*peer.public_key()));
                Ok(Some(signalling.signal(vaddr)?.to_blob()?))
            }
            Applied::Update | Applied::Crossed => Ok(None),
            Applied::Answered => {
                self.connect_answered(peer);
                Ok(None)
            }
        }
    }

    /// Dials `peer` once its answer is in, over the relay paths at once or the
    /// first direct path ICE proves; the outcome is an event.
    fn connect_answered(&self, peer: PeerId) {
        let endpoint = self.clone();
        self.shared().runtime.spawn(async move {
            let timeout = endpoint.shared().config.connect_timeout;
            let deadline = tokio::time::Instant::now() + timeout;
            let vaddr = endpoint
                .path_handle()
                .add_peer(&PeerKey(*peer.public_key()));
            let paths = endpoint
                .shared()
                .signalling()
                .remote_paths(vaddr, deadline)
                .await;
            let result = if paths.is_empty() {
                Err(SessionError::ConnectFailed {
                    peer,
                    reason: format!(
                        "no path worked within {timeout:?}: no direct check succeeded and neither side had a relay allocation (add a relay server on both sides)"
                    ),
                })
            } else {
                endpoint.connect_paths(peer, &paths).await
            };
            if let Err(e) = result {
                debug!(peer = %peer.short(), "connect by blobs failed: {e}");
                endpoint.shared().emit(Event::ConnectFailed {
                    peer,
                    error: e.to_string(),
                });
            }
        });
    }

    /// Our server-reflexive and relayed addresses from every relay added to the
    /// path layer, waiting briefly for allocations in progress.
    async fn gather_local(&self) -> Local {
        let paths = self.path_handle();
        let mut local = Local::default();
        for status in paths.relays() {
            let status = if status.allocated {
                status
            } else {
                match paths.wait_relay(status.server, GATHER_TIMEOUT).await {
                    Ok(_) => match paths.relay(status.server) {
                        Some(s) => s,
                        None => continue,
                    },
                    Err(e) => {
                        warn!(server = %status.server, error = %e, "relay not allocated: the blob carries no relayed candidate from it");
                        continue;
                    }
                }
            };
            if let Some(mapped) = status.mapped
                && !local.mapped.contains(&mapped)
            {
                local.mapped.push(mapped);
            }
            if !status.relayed.is_empty() {
                local.relays.push((status.server, status.relayed));
            }
        }
        local
    }
}

impl super::PollEndpoint {
    /// [`Endpoint::create_offer`] for callers without async: blocks while a
    /// relay allocation is still being made (at most about 3 s). Call it from
    /// the game thread, never from async code.
    pub fn create_offer(&self, peer: PeerId) -> Result<Vec<u8>, SessionError> {
        let endpoint = self.endpoint().clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        endpoint.shared().runtime.clone().spawn(async move {
            let _ = tx.send(endpoint.create_offer(peer).await);
        });
        rx.blocking_recv().map_err(|_| SessionError::Closed)?
    }

    /// [`Endpoint::apply_signal`] for callers without async (blocks like
    /// [`super::PollEndpoint::create_offer`] for an offer). An answer starts
    /// connecting in the background: watch for [`Event::Connected`] or
    /// [`Event::ConnectFailed`].
    pub fn apply_signal(&self, blob: &[u8]) -> Result<Option<Vec<u8>>, SessionError> {
        let endpoint = self.endpoint().clone();
        let blob = blob.to_vec();
        let (tx, rx) = tokio::sync::oneshot::channel();
        endpoint.shared().runtime.clone().spawn(async move {
            let _ = tx.send(endpoint.apply_signal(&blob).await);
        });
        rx.blocking_recv().map_err(|_| SessionError::Closed)?
    }
}
