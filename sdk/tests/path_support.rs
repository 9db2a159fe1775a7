//! Shared by the path layer's quinn tests: TLS configs, a quinn endpoint on a
//! loopback path socket, a numbered stream, and waiting for a path change.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tsunagi::path::{PathConfig, PathEvent, PathHandle, PathKind, PathSocket};
use tsunagi::socket::SocketConfig;

/// A quinn endpoint (serving with `server` when given) on `socket`.
pub fn quinn_endpoint(
    socket: Arc<PathSocket>,
    server: Option<quinn::ServerConfig>,
) -> quinn::Endpoint {
    quinn::Endpoint::new_with_abstract_socket(
        tsunagi::socket::endpoint_config(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .unwrap()
}

/// A quinn endpoint (serving with `server` when given) on a path socket bound to
/// loopback (127.0.0.1 and ::1), and the path layer's handle.
pub fn loopback_endpoint(server: Option<quinn::ServerConfig>) -> (quinn::Endpoint, PathHandle) {
    let (socket, paths) =
        PathSocket::bind(&SocketConfig::loopback(), PathConfig::default()).unwrap();
    (quinn_endpoint(socket, server), paths)
}

/// Waits until `paths` reports a change of some peer's active path to `kind`.
pub async fn wait_for_kind(paths: &PathHandle, kind: PathKind) {
    loop {
        if let PathEvent::PathChanged { to: Some(k), .. } = paths.next_event().await
            && k == kind
        {
            return;
        }
    }
}

/// A server config with a self-signed certificate for "peer", and a client
/// config trusting it; both with the path layer's transport defaults.
pub fn quinn_configs() -> (quinn::ServerConfig, quinn::ClientConfig) {
    let certified = rcgen::generate_simple_self_signed(vec!["peer".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let mut server = quinn::ServerConfig::with_single_cert(vec![cert.clone()], key.into()).unwrap();
    server.transport_config(tsunagi::socket::transport_config());
    let mut roots = quinn::rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client = quinn::ClientConfig::with_root_certificates(Arc::new(roots)).unwrap();
    client.transport_config(tsunagi::socket::transport_config());
    (server, client)
}

/// Connects `endpoint` to `to` (a peer's virtual address) with `client`.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    client: quinn::ClientConfig,
    to: SocketAddr,
) -> quinn::Connection {
    endpoint
        .connect_with(client, to, "peer")
        .unwrap()
        .await
        .unwrap()
}

/// The receiving side, on a task: accepts one connection on `endpoint`, checks
/// that QUIC sees it from `from` (the peer's virtual address, whatever path it
/// takes), and reads `count` numbered messages from its first unidirectional
/// stream. Gives the count read and the connection.
pub fn spawn_numbered_reader(
    endpoint: quinn::Endpoint,
    from: SocketAddr,
    count: u32,
) -> tokio::task::JoinHandle<(u32, quinn::Connection)> {
    tokio::spawn(async move {
        let conn = endpoint.accept().await.unwrap().await.unwrap();
        assert_eq!(conn.remote_address(), from);
        let mut recv = conn.accept_uni().await.unwrap();
        let n = read_numbered(&mut recv, count).await;
        (n, conn)
    })
}

/// Reads `count` numbered 4-byte messages and checks that each arrives once,
/// in order.
pub async fn read_numbered(recv: &mut quinn::RecvStream, count: u32) -> u32 {
    let mut buf = [0u8; 4];
    for expected in 0..count {
        recv.read_exact(&mut buf).await.unwrap();
        assert_eq!(
            u32::from_be_bytes(buf),
            expected,
            "message lost, duplicated or reordered"
        );
    }
    count
}
