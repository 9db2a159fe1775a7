//! The shared UDP sockets: one per address family, carrying STUN, TURN, ICE
//! checks and QUIC for every peer.
//!
//! This is what "reuse the existing NAPT binding" means: the mapping a STUN
//! server saw is the one peers use, and N peers cost one local port per family.
//!
//! - [`UdpSockets`] binds the sockets (socket2: V6ONLY, buffer sizes,
//!   non-blocking, registered with tokio) and keeps quinn-udp's GSO/GRO,
//!   recvmmsg, ECN and don't-fragment through [`quinn_udp::UdpSocketState`].
//! - [`DatagramIo`] is the I/O seen by the path layer; the simulator implements
//!   it too.
//! - [`route`] sorts received datagrams per RFC 7983 / RFC 9443: source first
//!   (a configured TURN server sends STUN and ChannelData), then first byte.
//! - [`endpoint_config_defaults`] and [`transport_config_defaults`] set the quinn
//!   options the shared socket needs. **Call both** on every quinn endpoint that
//!   runs over [`crate::path::PathSocket`]: QUIC must not grease the fixed bit
//!   (RFC 9287), or its packets would look like RTP/ChannelData to the demux.

mod demux;
mod error;
mod io;
mod udp;

pub use demux::{Route, is_quic_initial, is_quic_short_header, route};
pub use error::SocketError;
pub use io::{DatagramIo, EcnCodepoint, LocalAddrs, RecvMeta, Transmit, WritableFuture};
pub use udp::{SocketConfig, UdpSockets};

use std::sync::Arc;

/// Length of the QUIC connection IDs our endpoints issue. The path layer reads
/// the destination connection ID of short-header packets to recognise a peer
/// whose address changed (a NAT rebinding), so it must know their length.
pub const QUIC_CID_LEN: usize = 8;

/// The largest UDP payload QUIC may discover on a path. Paths switch under QUIC
/// without it noticing; a relay path adds 4 bytes (ChannelData) or 36 (Send
/// indication) to each datagram, so the path MTU is kept below what an Ethernet
/// IPv6 relay path can carry.
pub const MAX_QUIC_UDP_PAYLOAD: u16 = 1400;

/// Sets the endpoint options the shared socket needs: no greasing of the QUIC
/// fixed bit (so every QUIC packet starts with 64..=127 or 192..=255, as
/// RFC 9443 demultiplexing expects). Keep quinn's default connection ID
/// generator, whose IDs are [`QUIC_CID_LEN`] bytes long.
///
/// ```
/// let mut config = quinn::EndpointConfig::default();
/// tsunagi::socket::endpoint_config_defaults(&mut config);
/// ```
pub fn endpoint_config_defaults(config: &mut quinn::EndpointConfig) {
    // quinn's default connection ID generator issues 8-byte IDs
    // (QUIC_CID_LEN); a custom generator must keep that length.
    config.grease_quic_bit(false);
}

/// Sets the transport options the path layer needs: path MTU discovery capped
/// at [`MAX_QUIC_UDP_PAYLOAD`], so a switch to a relay path does not make every
/// full-size packet too big.
///
/// ```
/// let mut transport = quinn::TransportConfig::default();
/// tsunagi::socket::transport_config_defaults(&mut transport);
/// ```
pub fn transport_config_defaults(config: &mut quinn::TransportConfig) {
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_QUIC_UDP_PAYLOAD);
    config.mtu_discovery_config(Some(mtu));
}

/// A quinn endpoint configuration with [`endpoint_config_defaults`] applied.
pub fn endpoint_config() -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::default();
    endpoint_config_defaults(&mut config);
    config
}

/// A quinn transport configuration with [`transport_config_defaults`] applied.
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    transport_config_defaults(&mut config);
    Arc::new(config)
}
