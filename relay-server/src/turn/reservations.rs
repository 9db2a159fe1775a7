//! Port reservations (RFC 8656 §7.2, EVEN-PORT with the R bit): an Allocate
//! that asks for an even port and sets R also reserves the port after it for
//! [`RESERVATION_LIFETIME`]; the response carries a RESERVATION-TOKEN, and a
//! later Allocate with that token gets the reserved port. The reserved socket
//! stays bound meanwhile (so nothing else takes the port) and relays nothing.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::fast_map::FastMap;

/// How long a reserved port waits for its token (RFC 8656: about 30 s).
pub(crate) const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// Reserved relayed addresses by token, with their expiry.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    by_token: FastMap<[u8; 8], (SocketAddr, Instant)>,
    expiry: BTreeSet<(Instant, [u8; 8])>,
}

impl Reservations {
    /// How many ports are reserved.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Reserves `address` under `token` until `expires`. `false` (nothing
    /// changed) if the token is already in use.
    pub fn insert(&mut self, token: [u8; 8], address: SocketAddr, expires: Instant) -> bool {
        if self.by_token.contains_key(&token) {
            return false;
        }
        self.by_token.insert(token, (address, expires));
        self.expiry.insert((expires, token));
        true
    }

    /// Takes the address reserved under `token` if the reservation holds at
    /// `now` (an expired one is left for [`Reservations::expire`]).
    pub fn take(&mut self, token: &[u8; 8], now: Instant) -> Option<SocketAddr> {
        let &(address, expires) = self.by_token.get(token)?;
        if expires <= now {
            return None;
        }
        self.by_token.remove(token);
        self.expiry.remove(&(expires, *token));
        Some(address)
    }

    /// The earliest expiry.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(t, _)| *t)
    }

    /// Removes every reservation expired at `now`; returns their addresses
    /// (the caller closes the sockets).
    pub fn expire(&mut self, now: Instant) -> Vec<SocketAddr> {
        let mut ended = Vec::new();
        while let Some(&(deadline, token)) = self.expiry.first() {
            if deadline > now {
                break;
            }
            self.expiry.remove(&(deadline, token));
            if let Some((address, _)) = self.by_token.remove(&token) {
                ended.push(address);
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_taken_once_and_expire() {
        let now = Instant::now();
        let a: SocketAddr = "192.0.2.1:50001".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:50003".parse().unwrap();
        let mut r = Reservations::default();
        assert!(r.insert([1; 8], a, now + RESERVATION_LIFETIME));
        assert!(
            !r.insert([1; 8], b, now + RESERVATION_LIFETIME),
            "token in use"
        );
        assert!(r.insert([2; 8], b, now + Duration::from_secs(1)));
        assert_eq!(r.next_expiry(), Some(now + Duration::from_secs(1)));
        assert_eq!(r.take(&[9; 8], now), None, "unknown token");
        assert_eq!(r.take(&[1; 8], now), Some(a));
        assert_eq!(r.take(&[1; 8], now), None, "taken once");
        let later = now + Duration::from_secs(1);
        assert_eq!(r.take(&[2; 8], later), None, "expired");
        assert_eq!(r.expire(later), vec![b]);
        assert_eq!((r.len(), r.next_expiry()), (0, None));
    }
}
