//! Two real `PathSocket`s on loopback with quinn: a reliable stream of 10 000
//! numbered messages while the path switches mid-stream, and IPv6 preferred
//! when both families work.
#![allow(clippy::unwrap_used)]

mod path_support;

use std::net::SocketAddr;
use std::time::Duration;

use tsunagi::path::{PathAddr, PathHandle, PathKind, PeerKey};

struct Side {
    endpoint: quinn::Endpoint,
    paths: PathHandle,
    v4: SocketAddr,
    v6: Option<SocketAddr>,
}

fn side(server: Option<quinn::ServerConfig>) -> Side {
    let (endpoint, paths) = path_support::loopback_endpoint(server);
    let local = paths.local_addrs();
    Side {
        endpoint,
        paths,
        v4: local.v4.unwrap(),
        v6: local.v6,
    }
}

/// A and B (B serving QUIC), each the other's peer with a direct IPv4 path.
struct Pair {
    a: Side,
    b: Side,
    a6: SocketAddr,
    b6: SocketAddr,
    b_at_a: SocketAddr,
    a_at_b: SocketAddr,
    client_config: quinn::ClientConfig,
}

/// The pair on loopback, or `None` (saying so) when the host has no IPv6 loopback.
fn pair() -> Option<Pair> {
    let (server_config, client_config) = path_support::quinn_configs();
    let a = side(None);
    let b = side(Some(server_config));
    let (Some(a6), Some(b6)) = (a.v6, b.v6) else {
        eprintln!("skipped: this host has no IPv6 loopback (::1)");
        return None;
    };
    let b_at_a = a.paths.add_peer(&PeerKey([2; 32]));
    let a_at_b = b.paths.add_peer(&PeerKey([1; 32]));
    a.paths.add_path(b_at_a, PathAddr::Direct(b.v4)).unwrap();
    b.paths.add_path(a_at_b, PathAddr::Direct(a.v4)).unwrap();
    Some(Pair {
        a,
        b,
        a6,
        b6,
        b_at_a,
        a_at_b,
        client_config,
    })
}

#[tokio::test]
async fn ten_thousand_messages_survive_a_switch_from_ipv4_to_ipv6() {
    let Some(p) = pair() else {
        return;
    };
    let (a, b, client_config) = (p.a, p.b, p.client_config);
    let (a6, b6, b_at_a, a_at_b) = (p.a6, p.b6, p.b_at_a, p.a_at_b);

    const COUNT: u32 = 10_000;
    let server = path_support::spawn_numbered_reader(b.endpoint.clone(), a_at_b, COUNT);
    let test = async {
        let conn = path_support::connect(&a.endpoint, client_config, b_at_a).await;
        let mut send = conn.open_uni().await.unwrap();
        for i in 0..COUNT {
            send.write_all(&i.to_be_bytes()).await.unwrap();
            if i == COUNT / 2 {
                a.paths.add_path(b_at_a, PathAddr::Direct(b6)).unwrap();
                b.paths.add_path(a_at_b, PathAddr::Direct(a6)).unwrap();
                path_support::wait_for_kind(&a.paths, PathKind::DirectV6).await;
            }
        }
        send.finish().unwrap();
        let (n, _conn_b) = server.await.unwrap();
        assert_eq!(n, COUNT);
        let stats = a.paths.stats(b_at_a).unwrap();
        assert_eq!(stats.active, Some(PathKind::DirectV6));
        let v4 = stats
            .paths
            .iter()
            .find(|p| p.kind == PathKind::DirectV4)
            .unwrap();
        let v6 = stats.active_path().unwrap();
        assert!(
            v4.packets_sent > 0 && v6.packets_sent > 0,
            "both paths carried the stream"
        );
        conn
    };
    let conn = tokio::time::timeout(Duration::from_secs(30), test)
        .await
        .expect("10 000 messages within 30 s on loopback");
    conn.close(0u32.into(), b"done");
}

#[tokio::test]
async fn ipv6_is_preferred_when_both_families_work() {
    let Some(p) = pair() else {
        return;
    };
    let (a, b, client_config) = (p.a, p.b, p.client_config);
    let (a6, b6, b_at_a, a_at_b) = (p.a6, p.b6, p.b_at_a, p.a_at_b);
    a.paths.add_path(b_at_a, PathAddr::Direct(b6)).unwrap();
    b.paths.add_path(a_at_b, PathAddr::Direct(a6)).unwrap();
    let ep_b = b.endpoint.clone();
    let server = tokio::spawn(async move { ep_b.accept().await.unwrap().await.unwrap() });
    let test = async {
        let conn = path_support::connect(&a.endpoint, client_config, b_at_a).await;
        let _conn_b = server.await.unwrap();
        // Both families are probed; IPv6 wins as soon as it is confirmed.
        if a.paths.stats(b_at_a).unwrap().active != Some(PathKind::DirectV6) {
            path_support::wait_for_kind(&a.paths, PathKind::DirectV6).await;
        }
        conn
    };
    let conn = tokio::time::timeout(Duration::from_secs(10), test)
        .await
        .expect("IPv6 chosen within 10 s");
    let stats = a.paths.stats(b_at_a).unwrap();
    assert_eq!(stats.active, Some(PathKind::DirectV6));
    assert!(
        stats.paths.iter().all(|p| p.live),
        "both families work: {stats:?}"
    );
    conn.close(0u32.into(), b"done");
}
