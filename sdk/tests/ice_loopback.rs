//! Two ICE agents on real loopback sockets (127.0.0.1 and ::1): offers,
//! answers and trickle updates travel as signal blobs handed over directly (no
//! server), the checks run on the path layer's shared socket, and QUIC then
//! runs between the peers' virtual addresses over the path ICE found.
#![allow(clippy::unwrap_used)]

mod path_support;

use std::time::Duration;

use tsunagi::ice::{DriverEvent, IceConfig, IceDriver, IceEvent};
use tsunagi::path::{PathHandle, PathKind, PeerKey};
use tsunagi::signal::{Role, Signal};

struct Side {
    endpoint: quinn::Endpoint,
    paths: PathHandle,
    ice: IceDriver,
}

fn side(server: Option<quinn::ServerConfig>) -> Side {
    let (endpoint, paths) = path_support::loopback_endpoint(server);
    let ice = IceDriver::start(paths.clone());
    Side {
        endpoint,
        paths,
        ice,
    }
}

/// Hands a signal over as the game would: bytes through its own backend.
fn carry(signal: &Signal) -> Signal {
    Signal::from_blob(&signal.to_blob().unwrap()).unwrap()
}

#[tokio::test]
async fn ice_over_loopback_then_quic_over_the_path_it_found() {
    let (server_config, client_config) = path_support::quinn_configs();
    let a = side(None);
    let b = side(Some(server_config));
    let want = if a.paths.local_addrs().v6.is_some() && b.paths.local_addrs().v6.is_some() {
        PathKind::DirectV6
    } else {
        eprintln!("no IPv6 loopback (::1): expecting the IPv4 path");
        PathKind::DirectV4
    };
    let (key_a, key_b) = ([1; 32], [2; 32]);
    let b_at_a = a.paths.add_peer(&PeerKey(key_b));
    let a_at_b = b.paths.add_peer(&PeerKey(key_a));
    a.ice
        .add_peer(b_at_a, a.ice.new_agent(IceConfig::default(), true, 1));
    b.ice
        .add_peer(a_at_b, b.ice.new_agent(IceConfig::default(), false, 2));

    // Offer → answer, each through a blob.
    let offer = a.ice.signal(b_at_a, Role::Offer, key_a, 9).unwrap();
    assert!(!offer.candidates.is_empty());
    assert_eq!(
        b.ice.apply_remote(a_at_b, &carry(&offer)).unwrap(),
        offer.candidates.len()
    );
    let answer = b.ice.signal(a_at_b, Role::Answer, key_b, 9).unwrap();
    a.ice.apply_remote(b_at_a, &carry(&answer)).unwrap();

    // Forward trickle batches (none expected without STUN servers, but a game
    // loop looks like this) while waiting for the path layer to pick a path.
    let pump = |from: &IceDriver, to: IceDriver, peer_there, role, key| {
        let from = from.clone();
        tokio::spawn(async move {
            loop {
                let DriverEvent { peer, event } = from.next_event().await;
                if let IceEvent::LocalCandidates(c) = event {
                    let s = from
                        .with_agent(peer, |agent| agent.trickle(role, key, 9, c))
                        .unwrap();
                    let _ = to.apply_remote(peer_there, &carry(&s));
                }
            }
        })
    };
    let pa = pump(&a.ice, b.ice.clone(), a_at_b, Role::Offer, key_a);
    let pb = pump(&b.ice, a.ice.clone(), b_at_a, Role::Answer, key_b);
    tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(
            path_support::wait_for_kind(&a.paths, want),
            path_support::wait_for_kind(&b.paths, want)
        )
    })
    .await
    .expect("ICE gave both path layers a live path");

    // QUIC over the virtual addresses.
    const COUNT: u32 = 1000;
    let server = path_support::spawn_numbered_reader(b.endpoint.clone(), a_at_b, COUNT);
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        path_support::connect(&a.endpoint, client_config, b_at_a),
    )
    .await
    .unwrap();
    let mut send = conn.open_uni().await.unwrap();
    for i in 0..COUNT {
        send.write_all(&i.to_be_bytes()).await.unwrap();
    }
    send.finish().unwrap();
    let (received, _conn_b) = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received, COUNT);
    assert_eq!(a.paths.stats(b_at_a).unwrap().active, Some(want));
    pa.abort();
    pb.abort();
}
