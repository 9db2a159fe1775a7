//! Applying what the server sends: responses, Data indications, ChannelData.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::client::{Allocation, Auth, Client, DRAFT_ADDRESS_ERROR_CODE, Phase};
use super::error::Error;
use super::transaction::{Pending, Request};
use super::{Event, FamilyUnavailable};
use crate::stun::{
    AddressFamily, Attribute, ChannelData, Class, IntegrityKey, Message, Method, PacketKind,
    classify,
};

/// 438 answers in a row after which the client gives up.
const MAX_STALE_NONCES: u32 = 3;

impl Client {
    /// Feeds a datagram received at `now` from `from`. Returns `true` if it was a
    /// TURN message from the server that the client used, `false` if it is
    /// someone else's (another source, another protocol, an unknown transaction or
    /// channel) or was dropped as malformed or forged. Never panics.
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> bool {
        if from != self.config.server || self.phase == Phase::Closed {
            return false;
        }
        match classify(datagram) {
            PacketKind::Stun => match Message::decode(datagram) {
                Ok(message) => self.handle_message(now, &message),
                Err(e) => {
                    tracing::debug!(error = %e, "dropping malformed STUN from the TURN server");
                    false
                }
            },
            PacketKind::ChannelData => self.handle_channel_data(datagram),
            _ => false,
        }
    }

    fn handle_channel_data(&mut self, datagram: &[u8]) -> bool {
        let Ok(framed) = ChannelData::decode(datagram) else {
            return false;
        };
        // A channel we asked for counts before its ChannelBind answer is in:
        // the server sends ChannelData only on numbers it bound for us, and
        // the answer may be lost or overtaken (dropping the data meanwhile
        // cost a QUIC retransmission timeout). Numbers are never reused, so
        // the peer is the one we asked for.
        let Some(peer) = self.channels.get(&framed.channel).map(|c| c.peer) else {
            return false;
        };
        self.push_data(peer, framed.data);
        true
    }

    fn handle_message(&mut self, now: Instant, message: &Message<'_>) -> bool {
        match message.class() {
            Class::Indication if message.method() == Method::DATA => self.handle_data(message),
            Class::SuccessResponse | Class::ErrorResponse => self.handle_response(now, message),
            _ => false,
        }
    }

    fn handle_data(&mut self, message: &Message<'_>) -> bool {
        if self.allocation.is_none() {
            return false;
        }
        let mut peer = None;
        let mut data = None;
        for attribute in message.attributes() {
            match attribute {
                Attribute::XorPeerAddress(a) if peer.is_none() => peer = Some(*a),
                Attribute::Data(d) if data.is_none() => data = Some(*d),
                _ => {}
            }
        }
        match (peer, data) {
            (Some(peer), Some(data)) => {
                self.push_data(peer, data);
                true
            }
            _ => false,
        }
    }

    fn handle_response(&mut self, now: Instant, message: &Message<'_>) -> bool {
        let tid = message.transaction_id();
        let Some(pending) = self.pending.get(&tid) else {
            tracing::trace!("TURN response to no request of ours; ignored");
            return false;
        };
        if pending.request.method() != message.method() {
            return false;
        }
        if !self.authentic(pending, message) {
            return false;
        }
        let error = message.error_code().map(|e| (e.code, e.reason));
        if message.class() == Class::ErrorResponse && error.is_none() {
            return false;
        }
        let Some(pending) = self.pending.remove(&tid) else {
            return false;
        };
        match error {
            None => self.on_success(now, pending.request, message),
            Some((code, reason)) => self.on_error(now, pending, message, code, reason),
        }
        true
    }

    /// RFC 8489 §9.2.5: a response to an authenticated request counts only if its
    /// MESSAGE-INTEGRITY verifies. Error responses may lack it (a 401 or 438 cannot
    /// be signed with a key the server rejects), except a redirection.
    fn authentic(&self, pending: &Pending, message: &Message<'_>) -> bool {
        let key = self.auth.as_ref().map(|a| &a.key);
        if message.has_integrity() {
            if let (true, Some(key)) = (pending.authenticated, key)
                && let Err(e) = message.verify_integrity(key)
            {
                tracing::debug!(error = %e, "TURN response with bad integrity; ignored");
                return false;
            }
            return true;
        }
        if !pending.authenticated {
            return true;
        }
        let redirect = message.error_code().is_some_and(|e| e.code == 300);
        let signed_needed = message.class() == Class::SuccessResponse || redirect;
        if signed_needed {
            tracing::debug!("unsigned TURN response to a signed request; ignored");
        }
        !signed_needed
    }

    fn on_success(&mut self, now: Instant, request: Request, message: &Message<'_>) {
        let lifetime = message.attributes().iter().find_map(|a| match a {
            Attribute::Lifetime(s) => Some(Duration::from_secs(u64::from(*s))),
            _ => None,
        });
        match request {
            Request::Allocate { dual } => self.on_allocated(now, message, lifetime, dual),
            Request::Refresh { lifetime: 0 } => {
                self.close();
                self.events.push_back(Event::Released);
            }
            Request::Refresh { .. } => {
                let lifetime = lifetime.unwrap_or(self.config.lifetime);
                let refresh_after = self.config.refresh_after(lifetime);
                if let Some(a) = self.allocation.as_mut() {
                    a.expires_at = now + lifetime;
                    a.refresh_at = Some(now + refresh_after);
                    self.events.push_back(Event::Refreshed { lifetime });
                }
            }
            Request::CreatePermission { peer } => {
                let refresh_at = Some(now + self.config.permission_refresh);
                if let Some(p) = self.permissions.get_mut(&peer) {
                    p.refresh_at = refresh_at;
                    if !p.installed {
                        p.installed = true;
                        self.events.push_back(Event::PermissionCreated { peer });
                    }
                }
            }
            Request::ChannelBind { channel, peer } => {
                let refresh_at = Some(now + self.config.channel_refresh);
                if let Some(c) = self.channels.get_mut(&channel) {
                    c.refresh_at = refresh_at;
                    if !c.bound {
                        c.bound = true;
                        self.events.push_back(Event::ChannelBound { peer, channel });
                    }
                }
            }
        }
    }

    fn on_allocated(
        &mut self,
        now: Instant,
        message: &Message<'_>,
        lifetime: Option<Duration>,
        dual: bool,
    ) {
        let mut relayed = Vec::new();
        let mut unavailable: Vec<FamilyUnavailable> =
            self.refused_family.take().into_iter().collect();
        for attribute in message.attributes() {
            match attribute {
                Attribute::XorRelayedAddress(a) if !relayed.contains(a) => relayed.push(*a),
                Attribute::AddressErrorCode { family, error } => {
                    unavailable.push(FamilyUnavailable {
                        family: *family,
                        code: Some(error.code),
                        reason: error.reason.to_owned(),
                    });
                }
                Attribute::Unknown { typ, value } if *typ == DRAFT_ADDRESS_ERROR_CODE => {
                    unavailable.extend(draft_address_error(value));
                }
                _ => {}
            }
        }
        let has_v6 = relayed.iter().any(SocketAddr::is_ipv6);
        let reported = unavailable.iter().any(|u| u.family == AddressFamily::V6);
        if dual && !has_v6 && !reported {
            unavailable.push(FamilyUnavailable {
                family: AddressFamily::V6,
                code: None,
                reason: "the server ignored ADDITIONAL-ADDRESS-FAMILY".into(),
            });
        }
        if relayed.is_empty() {
            let missing = "XOR-RELAYED-ADDRESS";
            self.fail_request(
                now,
                Request::Allocate { dual: false },
                Error::MalformedResponse {
                    method: Method::ALLOCATE,
                    missing,
                },
            );
            return;
        }
        let lifetime = lifetime.unwrap_or_else(|| {
            tracing::debug!("Allocate success without LIFETIME; assuming the requested one");
            self.config.lifetime
        });
        let mapped = message.xor_mapped_address();
        tracing::info!(?relayed, ?mapped, ?lifetime, "TURN allocation in place");
        self.allocation = Some(Allocation {
            relayed: relayed.clone(),
            mapped,
            expires_at: now + lifetime,
            refresh_at: Some(now + self.config.refresh_after(lifetime)),
        });
        self.phase = Phase::Allocated;
        self.events.push_back(Event::Allocated {
            relayed,
            mapped,
            lifetime,
            unavailable,
        });
    }

    fn on_error(
        &mut self,
        now: Instant,
        pending: Pending,
        message: &Message<'_>,
        code: u16,
        reason: &str,
    ) {
        let request = pending.request;
        let realm = text_attr(message, |a| match a {
            Attribute::Realm(r) => Some(*r),
            _ => None,
        });
        let nonce = text_attr(message, |a| match a {
            Attribute::Nonce(n) => Some(*n),
            _ => None,
        });
        match code {
            401 if !pending.authenticated => {
                let (Some(realm), Some(nonce)) = (realm, nonce) else {
                    return self.fail_request(now, request, Error::MissingRealmOrNonce);
                };
                let credentials = &self.config.credentials;
                if credentials
                    .realm_hint
                    .as_deref()
                    .is_some_and(|hint| hint != realm)
                {
                    tracing::warn!(%realm, hint = ?credentials.realm_hint, "TURN realm differs from the credentials' realm");
                }
                let key = IntegrityKey::long_term_md5(
                    &credentials.username,
                    &realm,
                    &credentials.password,
                );
                self.auth = Some(Auth { realm, nonce, key });
                self.send_request(now, request, 0);
            }
            401 => {
                let realm = self
                    .auth
                    .as_ref()
                    .map(|a| a.realm.clone())
                    .unwrap_or_default();
                self.fail_request(now, request, Error::Unauthorized { realm });
            }
            438 => {
                let (Some(nonce), Some(auth)) = (nonce, self.auth.as_mut()) else {
                    return self.fail_request(now, request, Error::MissingRealmOrNonce);
                };
                let attempts = pending.stale_nonces + 1;
                if attempts > MAX_STALE_NONCES {
                    return self.fail_request(now, request, Error::StaleNonceLoop { attempts });
                }
                auth.nonce = nonce;
                if let Some(realm) = realm.filter(|r| *r != auth.realm) {
                    let c = &self.config.credentials;
                    auth.key = IntegrityKey::long_term_md5(&c.username, &realm, &c.password);
                    auth.realm = realm;
                }
                tracing::debug!(method = %request.method(), "TURN stale nonce; retrying");
                self.send_request(now, request, attempts);
            }
            300 if matches!(request, Request::Allocate { .. }) => {
                let alternate = message.attributes().iter().find_map(|a| match a {
                    Attribute::AlternateServer(s) => Some(*s),
                    _ => None,
                });
                let reason = match alternate {
                    Some(alternate) => Error::TryAlternate { alternate },
                    None => Error::MalformedResponse {
                        method: Method::ALLOCATE,
                        missing: "ALTERNATE-SERVER",
                    },
                };
                self.fail_request(now, request, reason);
            }
            440 if request == (Request::Allocate { dual: true }) => {
                tracing::info!(%reason, "TURN server cannot add an IPv6 relayed address; allocating IPv4 only");
                self.refused_family = Some(FamilyUnavailable {
                    family: AddressFamily::V6,
                    code: Some(code),
                    reason: reason.to_owned(),
                });
                self.send_request(now, Request::Allocate { dual: false }, 0);
            }
            _ => {
                let family = match self.config.family {
                    super::RelayFamily::V6 => AddressFamily::V6,
                    _ => AddressFamily::V4,
                };
                self.fail_request(now, request, Error::from_code(code, reason, family));
            }
        }
    }
}

fn text_attr<'a>(
    message: &Message<'a>,
    pick: impl Fn(&Attribute<'a>) -> Option<&'a str>,
) -> Option<String> {
    message
        .attributes()
        .iter()
        .find_map(pick)
        .map(str::to_owned)
}

/// coturn's ADDRESS-ERROR-CODE (0x8033): family, reserved, class, number, reason.
fn draft_address_error(value: &[u8]) -> Option<FamilyUnavailable> {
    let family = AddressFamily::from_byte(*value.first()?).ok()?;
    let class = u16::from(*value.get(2)? & 0x07);
    let number = u16::from(*value.get(3)?);
    let reason = std::str::from_utf8(value.get(4..)?).unwrap_or("");
    Some(FamilyUnavailable {
        family,
        code: Some(class * 100 + number),
        reason: reason.trim_end_matches('\0').to_owned(),
    })
}
