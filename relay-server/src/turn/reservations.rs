//! Port reservations (RFC 8656 §7.2, EVEN-PORT with the R bit): an Allocate
//! that asks for an even port and sets R also reserves the port after it for
//! [`RESERVATION_LIFETIME`]; the response carries a RESERVATION-TOKEN, and a
//! later Allocate with that token gets the reserved port. The reserved socket
//! stays bound meanwhile (so nothing else takes the port) and relays nothing.
//!
//! The table lives in [`crate::Shared`], so a token is good on every worker of
//! the driver (the claiming client usually sends from another port, which the
//! kernel may hash to another worker): it holds the bound socket itself, and
//! the core that serves the claim takes it over. A reservation counts against
//! its user's and client IP's allocation quotas until it is claimed (then the
//! count is the allocation's) or expires.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::ports::ReservedSocket;
use crate::fast_map::FastMap;

/// How long a reserved port waits for its token (RFC 8656: about 30 s).
pub(crate) const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// One reserved port: its socket and whose quota it counts against.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// The bound socket no core receives on; dropping it closes it.
    pub socket: ReservedSocket,
    /// The quota name of the user who reserved it.
    pub quota_name: String,
    /// The IP of the client that reserved it.
    pub ip: IpAddr,
    pub expires: Instant,
}

/// Reserved ports by token, with their expiry.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    by_token: FastMap<[u8; 8], Reservation>,
    expiry: BTreeSet<(Instant, [u8; 8])>,
}

impl Reservations {
    /// How many ports are reserved.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Reserves under `token`; gives the reservation back if the token is
    /// already in use.
    pub fn insert(&mut self, token: [u8; 8], reservation: Reservation) -> Result<(), Reservation> {
        if self.by_token.contains_key(&token) {
            return Err(reservation);
        }
        self.expiry.insert((reservation.expires, token));
        self.by_token.insert(token, reservation);
        Ok(())
    }

    /// Takes the reservation under `token` if it holds at `now` (an expired
    /// one is left for [`Reservations::expire`]).
    pub fn take(&mut self, token: &[u8; 8], now: Instant) -> Option<Reservation> {
        let expires = self.by_token.get(token)?.expires;
        if expires <= now {
            return None;
        }
        self.expiry.remove(&(expires, *token));
        self.by_token.remove(token)
    }

    /// The earliest expiry.
    #[cfg(test)]
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(t, _)| *t)
    }

    /// Removes every reservation expired at `now` and returns them (the caller
    /// releases their quota; dropping them closes their sockets).
    pub fn expire(&mut self, now: Instant) -> Vec<Reservation> {
        let mut ended = Vec::new();
        while let Some(&(deadline, token)) = self.expiry.first() {
            if deadline > now {
                break;
            }
            self.expiry.remove(&(deadline, token));
            if let Some(reservation) = self.by_token.remove(&token) {
                ended.push(reservation);
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::ports::{RelaySockets, VirtualSockets};

    #[test]
    fn reservations_are_taken_once_and_expire() {
        let now = Instant::now();
        let mut sockets = VirtualSockets::default();
        let mut reservation = |port: u16, expires: Instant| Reservation {
            socket: sockets
                .reserve(format!("192.0.2.1:{port}").parse().unwrap())
                .unwrap(),
            quota_name: "alice".into(),
            ip: "198.51.100.7".parse().unwrap(),
            expires,
        };
        let address = |r: Option<Reservation>| r.map(|r| r.socket.address().port());
        let mut r = Reservations::default();
        assert!(
            r.insert([1; 8], reservation(50_001, now + RESERVATION_LIFETIME))
                .is_ok()
        );
        let again = reservation(50_003, now + RESERVATION_LIFETIME);
        assert!(r.insert([1; 8], again).is_err(), "token in use");
        assert!(
            r.insert([2; 8], reservation(50_005, now + Duration::from_secs(1)))
                .is_ok()
        );
        assert_eq!(r.next_expiry(), Some(now + Duration::from_secs(1)));
        assert_eq!(address(r.take(&[9; 8], now)), None, "unknown token");
        assert_eq!(address(r.take(&[1; 8], now)), Some(50_001));
        assert_eq!(address(r.take(&[1; 8], now)), None, "taken once");
        let later = now + Duration::from_secs(1);
        assert_eq!(address(r.take(&[2; 8], later)), None, "expired");
        let expired: Vec<u16> = r
            .expire(later)
            .iter()
            .map(|r| r.socket.address().port())
            .collect();
        assert_eq!(expired, vec![50_005]);
        assert_eq!((r.len(), r.next_expiry()), (0, None));
        assert!(sockets.reserved_addresses().is_empty(), "all closed");
    }
}
