//! quinn over the path layer over the simulated network, on tokio's paused
//! clock: one reliable stream survives a switch from IPv4 to IPv6.
#![allow(clippy::unwrap_used)]

mod path_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tsunagi::path::{PathAddr, PathConfig, PathKind, PathSocket, PeerKey};
use tsunagi::sim::{LinkConfig, SimIo, SimNet};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn quinn_stream_survives_a_path_switch_in_the_simulator() {
    let net = Arc::new(Mutex::new(SimNet::new(7)));
    net.lock().unwrap().set_link(LinkConfig {
        delay: Duration::from_millis(15),
        jitter: Duration::from_millis(3),
        loss: 0.01,
    });
    let (a4, a6) = (sa("192.0.2.1:4000"), sa("[2001:db8::1]:4000"));
    let (b4, b6) = (sa("192.0.2.2:4000"), sa("[2001:db8::2]:4000"));
    let (sock_a, paths_a) = PathSocket::new(SimIo::new(&net, &[a4, a6]), PathConfig::default(), 1);
    let (sock_b, paths_b) = PathSocket::new(SimIo::new(&net, &[b4, b6]), PathConfig::default(), 2);
    let b_at_a = paths_a.add_peer(&PeerKey([2; 32]));
    let a_at_b = paths_b.add_peer(&PeerKey([1; 32]));
    paths_a.add_path(b_at_a, PathAddr::Direct(b4)).unwrap();
    paths_b.add_path(a_at_b, PathAddr::Direct(a4)).unwrap();

    let (server_config, client_config) = path_support::quinn_configs();
    let ep_a = path_support::quinn_endpoint(sock_a, None);
    let ep_b = path_support::quinn_endpoint(sock_b, Some(server_config));

    const COUNT: u32 = 20_000;
    // QUIC sees A at its virtual address, whatever path it takes.
    let server = path_support::spawn_numbered_reader(ep_b, a_at_b, COUNT);

    let test = async {
        let conn = path_support::connect(&ep_a, client_config, b_at_a).await;
        let mut send = conn.open_uni().await.unwrap();
        for i in 0..COUNT {
            send.write_all(&i.to_be_bytes()).await.unwrap();
            if i % 500 == 0 {
                // Spread the stream over simulated time.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if i == COUNT / 2 {
                assert_eq!(
                    paths_a.stats(b_at_a).unwrap().active,
                    Some(PathKind::DirectV4)
                );
                paths_a.add_path(b_at_a, PathAddr::Direct(b6)).unwrap();
                paths_b.add_path(a_at_b, PathAddr::Direct(a6)).unwrap();
                path_support::wait_for_kind(&paths_a, PathKind::DirectV6).await;
                // IPv4 between them dies: the rest must go over IPv6.
                net.lock().unwrap().block(a4.ip(), b4.ip(), true);
            }
        }
        send.finish().unwrap();
        let (n, _conn_b) = server.await.unwrap();
        assert_eq!(n, COUNT);
        let stats = paths_a.stats(b_at_a).unwrap();
        assert_eq!(stats.active, Some(PathKind::DirectV6));
        let v6 = stats.active_path().unwrap();
        assert!(v6.packets_sent > 0 && v6.packets_received > 0);
        conn
    };
    let conn = tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("the stream completes within 120 s of simulated time");
    assert_eq!(conn.remote_address(), b_at_a);
}
