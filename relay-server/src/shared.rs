//! What the TURN cores of several driver workers share: counters, allocation
//! quota counts, port reservations and the nonce key.
//!
//! A driver that runs one [`crate::Server`] per worker (SO_REUSEPORT spreads
//! clients over them by 5-tuple) builds one [`Shared`] and passes it to every
//! [`crate::Server::with_turn`], so that quotas and the global allocation cap
//! hold across workers, a nonce from one worker is good on another, a
//! RESERVATION-TOKEN from one worker is good on another, and there is one set
//! of [`Counters`] to export (register [`Shared::counters`] once). The locks
//! are taken on Allocate, Refresh and expiry, never per relayed datagram.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::counters::Counters;
use crate::turn::reservations::Reservations;

/// Limits on how many allocations exist.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quotas {
    /// Per user (0 = no limit).
    pub per_user: u32,
    /// Per client IP (0 = no limit).
    pub per_ip: u32,
    /// In total.
    pub total: usize,
}

/// Why a new allocation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotaError {
    /// The user has its maximum (486).
    User,
    /// The client IP has its maximum (486).
    ClientIp,
    /// The server has its maximum (508).
    Global,
}

#[derive(Debug, Default)]
struct QuotaCounts {
    per_user: HashMap<String, u32>,
    per_ip: HashMap<IpAddr, u32>,
    total: usize,
}

/// State shared by the servers of several workers. Cheap to clone (all `Arc`s).
#[derive(Debug, Clone)]
pub struct Shared {
    counters: Arc<Counters>,
    quotas: Arc<Mutex<QuotaCounts>>,
    /// Reserved ports (EVEN-PORT with R) by token, with their sockets. Never
    /// locked together with `quotas`.
    reservations: Arc<Mutex<Reservations>>,
    nonce_key: [u8; 32],
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

impl Shared {
    /// Fresh counters, no allocations, a random nonce key.
    pub fn new() -> Shared {
        let mut nonce_key = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut nonce_key) {
            // Without OS randomness nonces could be predicted; the clock is a poor
            // but better-than-constant key. Credentials still protect relaying.
            tracing::error!(error = %e, "no OS randomness; nonce key derived from the clock");
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            nonce_key[..16].copy_from_slice(&t.to_le_bytes());
        }
        Shared {
            counters: Arc::new(Counters::default()),
            quotas: Arc::new(Mutex::new(QuotaCounts::default())),
            reservations: Arc::new(Mutex::new(Reservations::default())),
            nonce_key,
        }
    }

    /// The counters every server built with this `Shared` bumps.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    pub(crate) fn nonce_key(&self) -> [u8; 32] {
        self.nonce_key
    }

    /// The port reservations of every core.
    pub(crate) fn reservations(&self) -> MutexGuard<'_, Reservations> {
        // Poisoned: a panic mid-update; the table itself stays consistent enough.
        self.reservations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more allocation (or port reservation) for `user` at `ip`, if
    /// the quotas allow.
    pub(crate) fn reserve(&self, quotas: Quotas, user: &str, ip: IpAddr) -> Result<(), QuotaError> {
        // A poisoned lock means a panic mid-update of plain counters: keep going.
        let mut q = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
        let over = |n: Option<&u32>, max: u32| max != 0 && n.copied().unwrap_or(0) >= max;
        if q.total >= quotas.total {
            return Err(QuotaError::Global);
        }
        if over(q.per_user.get(user), quotas.per_user) {
            return Err(QuotaError::User);
        }
        if over(q.per_ip.get(&ip), quotas.per_ip) {
            return Err(QuotaError::ClientIp);
        }
        q.total += 1;
        *q.per_user.entry(user.to_string()).or_default() += 1;
        *q.per_ip.entry(ip).or_default() += 1;
        Ok(())
    }

    /// Gives back what [`Shared::reserve`] counted.
    pub(crate) fn release(&self, user: &str, ip: IpAddr) {
        let mut q = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
        q.total = q.total.saturating_sub(1);
        if let Some(n) = q.per_user.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                q.per_user.remove(user);
            }
        }
        if let Some(n) = q.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                q.per_ip.remove(&ip);
            }
        }
    }
}
