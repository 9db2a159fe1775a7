//! Happy Eyeballs on the path layer (RFC 8305): IPv6 first, the rest after a head start.
//!
//! The path layer sends QUIC over the best *live* path (direct IPv6 > direct IPv4 >
//! relay) and floods every candidate until one is confirmed. So racing here means giving
//! it the candidates in stages: the IPv6 paths first; then, once one of them is live or
//! the head start has passed, the IPv4 and relayed paths. With working IPv6 the session
//! starts on IPv6; with broken IPv6 it costs the head start (50 ms by default), not a
//! handshake timeout. Later path changes are the path layer's business.

use std::net::SocketAddr;
use std::time::Duration;

use tracing::debug;

use super::endpoint::Shared;
use super::error::SessionError;
use super::identity::PeerId;
use crate::path::{PathAddr, PathError, PathKind, PeerKey};

/// How often the path table is looked at during the head start.
const POLL: Duration = Duration::from_millis(2);

/// Adds `paths` to `peer` in Happy Eyeballs order; returns the peer's virtual address.
pub(crate) async fn add_paths(
    shared: &Shared,
    peer: PeerId,
    paths: &[PathAddr],
) -> Result<SocketAddr, SessionError> {
    if paths.is_empty() {
        return Err(SessionError::NoAddresses(peer));
    }
    let vaddr = shared.paths.add_peer(&PeerKey(*peer.public_key()));
    let (first, rest): (Vec<PathAddr>, Vec<PathAddr>) =
        paths.iter().partition(|p| p.kind() == PathKind::DirectV6);
    let mut added = 0usize;
    let mut last_error = None;
    for path in &first {
        match add_path(shared, vaddr, *path) {
            Ok(()) => added += 1,
            Err(e) => last_error = Some(e),
        }
    }
    if added > 0 && !rest.is_empty() {
        let head_start = tokio::time::Instant::now() + shared.config.happy_eyeballs_delay;
        while tokio::time::Instant::now() < head_start && !ipv6_live(shared, vaddr) {
            tokio::time::sleep(POLL).await;
        }
        debug!(peer = %peer.short(), ipv6_live = ipv6_live(shared, vaddr), "IPv6 head start over");
    }
    for path in &rest {
        match add_path(shared, vaddr, *path) {
            Ok(()) => added += 1,
            Err(e) => last_error = Some(e),
        }
    }
    match (added, last_error) {
        (0, Some(e)) => Err(e),
        (0, None) => Err(SessionError::NoAddresses(peer)),
        _ => Ok(vaddr),
    }
}

fn ipv6_live(shared: &Shared, vaddr: SocketAddr) -> bool {
    shared.paths.stats(vaddr).is_some_and(|s| {
        s.paths
            .iter()
            .any(|p| p.live && p.kind == PathKind::DirectV6)
    })
}

/// Adds one path; a path still held by a stale entry (an old inbound connection, a
/// failed attempt) is moved over.
pub(crate) fn add_path(
    shared: &Shared,
    vaddr: SocketAddr,
    path: PathAddr,
) -> Result<(), SessionError> {
    match shared.paths.add_path(vaddr, path) {
        Ok(()) => Ok(()),
        Err(PathError::PathTaken { owner, .. }) if !shared.has_link_at(owner) => {
            shared.paths.remove_path(owner, path);
            shared
                .paths
                .add_path(vaddr, path)
                .map_err(|e| path_error(path, e))
        }
        Err(e) => Err(path_error(path, e)),
    }
}

fn path_error(path: PathAddr, error: PathError) -> SessionError {
    match error {
        PathError::NoSocketForFamily { family, .. } => {
            SessionError::NoSocketForFamily { path, family }
        }
        other => SessionError::Path(other),
    }
}

/// Orders addresses IPv6 first (stable within a family): the order paths are tried in.
pub fn prefer_ipv6(addrs: &[SocketAddr]) -> Vec<PathAddr> {
    let (v6, v4): (Vec<_>, Vec<_>) = addrs
        .iter()
        .map(|a| PathAddr::Direct(*a))
        .partition(|p| p.kind() == PathKind::DirectV6);
    v6.into_iter().chain(v4).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn orders_ipv6_first() {
        let a: Vec<SocketAddr> = [
            "127.0.0.1:1",
            "[::1]:1",
            "[::ffff:10.0.0.1]:2",
            "[2001:db8::1]:3",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let got: Vec<String> = prefer_ipv6(&a).iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "direct [::1]:1",
                "direct [2001:db8::1]:3",
                "direct 127.0.0.1:1",
                "direct [::ffff:10.0.0.1]:2"
            ]
        );
    }
}
