//! Tests of the TURN client against a small simulated TURN server, in simulated
//! time, without sockets.

mod allocation;
mod forged;
mod proptests;
mod server;
mod traffic;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Client, Config, Credentials, Event, Retransmit};
use server::SimServer;

pub(super) const SERVER: &str = "192.0.2.1:3478";
pub(super) const CLIENT: &str = "198.51.100.7:50000";

/// A client and a server on a perfect link, with a simulated clock.
pub(super) struct Net {
    pub client: Client,
    pub server: SimServer,
    pub now: Instant,
    pub events: Vec<Event>,
    /// Every datagram the client sent, in order.
    pub wire: Vec<Vec<u8>>,
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) fn config(password: &str) -> Config {
    Config::new(addr(SERVER), Credentials::new("alice", password))
}

impl Net {
    pub fn new(config: Config) -> Net {
        Net::with_server(config, SimServer::new())
    }

    pub fn with_server(config: Config, server: SimServer) -> Net {
        let now = Instant::now();
        Net {
            client: Client::with_seed(config, now, [9; 32]),
            server,
            now,
            events: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// Delivers datagrams both ways until the link is quiet.
    pub fn pump(&mut self) {
        for _ in 0..100 {
            let Some(t) = self.client.poll_transmit() else {
                break;
            };
            assert_eq!(t.to, addr(SERVER));
            self.wire.push(t.bytes.clone());
            for answer in self.server.handle(addr(CLIENT), &t.bytes) {
                self.client.handle_input(self.now, addr(SERVER), &answer);
            }
        }
        while let Some(e) = self.client.poll_event() {
            self.events.push(e);
        }
    }

    /// Advances the clock to each deadline up to `now + by`, pumping at each.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        self.pump();
        while let Some(at) = self.client.poll_timeout() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            self.client.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
        self.client.handle_timeout(self.now);
        self.pump();
    }

    /// Allocates and returns the relayed addresses.
    pub fn allocate(&mut self) -> Vec<SocketAddr> {
        self.pump();
        match self.events.pop() {
            Some(Event::Allocated { relayed, .. }) => relayed,
            other => panic!("expected Allocated, got {other:?} after {:?}", self.events),
        }
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// Fast retransmissions, for tests that wait for a give-up.
pub(super) fn fast_retransmit() -> Retransmit {
    Retransmit {
        initial_rto: Duration::from_millis(10),
        max_transmissions: 3,
        last_wait_factor: 4,
    }
}
