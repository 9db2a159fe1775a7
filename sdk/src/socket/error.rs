//! Why the shared sockets could not be set up.

use std::io;
use std::net::SocketAddr;

/// Setting up the shared UDP sockets failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// Binding one family's socket failed.
    #[error(
        "could not bind the UDP socket on {addr}: {source}; \
         pick another port (0 lets the system choose) or an address of this host"
    )]
    Bind {
        /// The address we tried.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// No family could be bound at all.
    #[error(
        "neither an IPv4 nor an IPv6 UDP socket could be bound ({v4}; {v6}); \
         check that the host has a network interface and free ports"
    )]
    NoFamily {
        /// Why IPv4 failed (or that it was not asked for).
        v4: String,
        /// Why IPv6 failed (or that it was not asked for).
        v6: String,
    },
    /// Handing the socket to the tokio reactor or quinn-udp failed.
    #[error(
        "could not register the UDP socket with the async runtime: {0}; \
         bind from inside a tokio runtime with I/O enabled (Runtime::enable_io)"
    )]
    Register(#[source] io::Error),
}
