//! Reaching an IPv4 server from an IPv6-only network with NAT64 (RFC 6146).
//!
//! Game configs and tokens often name the rendezvous server by an IPv4 literal. On
//! an IPv6-only network (mobile carriers, some ISPs) that address has no route,
//! but the network's NAT64 translates `prefix + IPv4` to it. So before signalling
//! starts, an IPv4 server without an IPv4 route is replaced by its synthesized
//! IPv6 address, with the prefix learnt from the DNS64 server (RFC 7050, via
//! [`crate::diag::nat64`]; the system resolver, as a host on such a network
//! gets it from router advertisements or DHCPv6). This is what iOS's
//! `getaddrinfo` does for IPv4 literals; elsewhere nobody does it for us.
//!
//! Hostnames need nothing from here: the system resolver on a NAT64 network is
//! the DNS64 server and already answers with synthesized AAAA records.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use crate::diag::nat64::{self, Nat64Options};

/// The address to use for `server`: itself, or its NAT64-synthesized IPv6
/// address when `server` is IPv4, this host has no route to it, and the
/// network's DNS64 server reveals a NAT64 prefix.
pub(crate) async fn reachable(server: SocketAddr) -> SocketAddr {
    let SocketAddr::V4(v4) = server else {
        return server;
    };
    if !no_ipv4_route(v4) {
        return server;
    }
    let options = Nat64Options::default();
    let found = tokio::task::spawn_blocking(move || nat64::discover(&options)).await;
    match found {
        Ok(Ok(report)) => match report.prefix() {
            Some(prefix) => {
                let synthesized = SocketAddr::new(prefix.synthesize(*v4.ip()).into(), v4.port());
                tracing::info!(%server, %synthesized, %prefix, "no IPv4 route: reaching the server through NAT64");
                synthesized
            }
            None => {
                tracing::warn!(
                    %server,
                    status = ?report.status,
                    "no IPv4 route to the server and no NAT64 prefix found (RFC 7050): give the server's IPv6 address or a hostname"
                );
                server
            }
        },
        Ok(Err(e)) => {
            tracing::warn!(%server, error = %e, "NAT64 prefix discovery failed");
            server
        }
        Err(e) => {
            tracing::warn!(%server, error = %e, "NAT64 prefix discovery did not run");
            server
        }
    }
}

/// Whether the kernel has no IPv4 route to `server` (a UDP `connect` sends
/// nothing; it only looks the route up).
fn no_ipv4_route(server: SocketAddrV4) -> bool {
    let Ok(sock) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
        // No IPv4 at all in this process's network stack.
        return true;
    };
    match sock.connect(server) {
        Ok(()) => false,
        Err(e) => {
            let unreachable = e.kind() == ErrorKind::NetworkUnreachable;
            tracing::debug!(%server, error = %e, unreachable, "IPv4 route lookup");
            unreachable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ipv6_servers_and_routable_ipv4_servers_are_kept() {
        let v6: SocketAddr = "[2001:db8::10]:3478".parse().unwrap();
        assert_eq!(reachable(v6).await, v6);
        let lo: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        assert_eq!(reachable(lo).await, lo);
    }
}
