//! Endpoint configuration, with defaults that suit a game on a home connection.

use std::sync::Arc;
use std::time::Duration;

use super::identity::Identity;
use crate::path::PathConfig;
use crate::socket::SocketConfig;

/// How an [`super::Endpoint`] is set up. Start from [`SessionConfig::new`] and change fields.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// This player's identity.
    pub identity: Identity,
    /// The shared UDP sockets: which addresses to bind (`None` for a family turns it
    /// off, e.g. an IPv4-only console build) and buffer sizes.
    pub sockets: SocketConfig,
    /// Path probing timers and limits.
    pub paths: PathConfig,
    /// Number of reliable channels, numbered from 0. Both sides should agree.
    pub channels: u16,
    /// Largest reliable message, in bytes. Larger incoming messages end the connection.
    pub max_message_size: usize,
    /// Messages that may wait in one channel's send queue.
    pub send_queue: usize,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Head start of IPv6 over IPv4 when both are given (RFC 8305 "connection attempt delay").
    pub happy_eyeballs_delay: Duration,
    /// Send a keepalive after this much silence, so NAT mappings stay open.
    pub keep_alive: Duration,
    /// End the connection after this much silence from the peer.
    pub idle_timeout: Duration,
}

impl SessionConfig {
    /// Defaults: both families on any address with an OS-chosen port, 8 channels, 1 MiB
    /// messages, 10 s connect timeout, 50 ms IPv6 head start, 5 s keepalive, 15 s idle timeout.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            sockets: SocketConfig::default(),
            paths: PathConfig::default(),
            channels: 8,
            max_message_size: 1 << 20,
            send_queue: 1024,
            connect_timeout: Duration::from_secs(10),
            happy_eyeballs_delay: Duration::from_millis(50),
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
        }
    }

    /// Binds only loopback addresses (tests, demos).
    pub fn loopback(identity: Identity) -> Self {
        Self {
            sockets: SocketConfig::loopback(),
            ..Self::new(identity)
        }
    }

    pub(crate) fn transport(&self) -> Arc<quinn::TransportConfig> {
        let mut transport = quinn::TransportConfig::default();
        // Path MTU capped so that a switch to a relay path still fits.
        crate::socket::transport_config_defaults(&mut transport);
        // One unidirectional stream per channel and direction, plus the control stream.
        transport.max_concurrent_uni_streams(quinn::VarInt::from(u32::from(self.channels) + 1));
        transport.max_concurrent_bidi_streams(quinn::VarInt::from(0u8));
        transport.datagram_receive_buffer_size(Some(1 << 20));
        transport.datagram_send_buffer_size(1 << 20);
        transport.keep_alive_interval(Some(self.keep_alive));
        // Durations beyond QUIC's limit (2^62 µs) fall back to quinn's default.
        if let Ok(timeout) = quinn::IdleTimeout::try_from(self.idle_timeout) {
            transport.max_idle_timeout(Some(timeout));
        }
        Arc::new(transport)
    }
}
