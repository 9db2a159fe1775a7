//! TLS 1.3 for QUIC with RFC 7250 raw public keys: each side presents its Ed25519 key,
//! the client checks that the server's key is the [`PeerId`] it dialled, and the server
//! requires a client key and learns the client's [`PeerId`] from it.
//!
//! No certificate authority is involved: the key *is* the identity, so the only check is
//! "is this the key I expected" plus the handshake signature proving possession.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls13_signature_with_raw_key,
};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::error::SessionError;
use super::identity::{Identity, PeerId};

/// The ALPN protocol id of Tsunagi sessions.
pub const ALPN: &[u8] = b"tsunagi/1";

/// The server name sent in the ClientHello. Peers are named by key, not by DNS name.
pub(crate) const SERVER_NAME: &str = "peer.tsunagi.invalid";

/// Where the client verifier records a key that was not the one expected, so that the
/// connect error can name both keys.
pub(crate) type MismatchSlot = Arc<Mutex<Option<PeerId>>>;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified_key(
    identity: &Identity,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, SessionError> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.pkcs8_der()));
    let signer = provider.key_provider.load_private_key(key)?;
    let spki = CertificateDer::from(identity.peer_id().to_spki());
    Ok(Arc::new(CertifiedKey::new(vec![spki], signer)))
}

/// The rustls server side: presents our key, requires and checks the client's.
pub(crate) fn server_crypto(
    identity: &Identity,
) -> Result<quinn::crypto::rustls::QuicServerConfig, SessionError> {
    let provider = provider();
    let verifier = Arc::new(ClientKeyVerifier {
        algorithms: provider.signature_verification_algorithms,
    });
    let resolver = Arc::new(rustls::server::AlwaysResolvesServerRawPublicKeys::new(
        certified_key(identity, &provider)?,
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN.to_vec()];
    quinn::crypto::rustls::QuicServerConfig::try_from(config)
        .map_err(|e| SessionError::Tls(e.to_string()))
}

/// The rustls client side for one connection attempt to `expected`.
pub(crate) fn client_crypto(
    identity: &Identity,
    expected: PeerId,
    mismatch: MismatchSlot,
) -> Result<quinn::crypto::rustls::QuicClientConfig, SessionError> {
    let provider = provider();
    let verifier = Arc::new(ServerKeyVerifier {
        expected,
        mismatch,
        algorithms: provider.signature_verification_algorithms,
    });
    let resolver = Arc::new(rustls::client::AlwaysResolvesClientRawPublicKeys::new(
        certified_key(identity, &provider)?,
    ));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN.to_vec()];
    quinn::crypto::rustls::QuicClientConfig::try_from(config)
        .map_err(|e| SessionError::Tls(e.to_string()))
}

/// The [`PeerId`] the other side of an established connection proved it holds.
pub(crate) fn peer_id_of(connection: &quinn::Connection) -> Option<PeerId> {
    let identity = connection.peer_identity()?;
    let keys = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    PeerId::from_spki(keys.first()?.as_ref())
}

fn not_ed25519() -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
}

fn verify_signature(
    message: &[u8],
    key: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let spki = SubjectPublicKeyInfoDer::from(key.as_ref());
    verify_tls13_signature_with_raw_key(message, &spki, dss, algorithms)
}

/// The signature side shared by both verifiers: TLS 1.3 only, Ed25519 only, raw
/// public keys only (RFC 7250). Expands to the four trait methods; the verifier
/// needs an `algorithms: WebPkiSupportedAlgorithms` field.
macro_rules! raw_key_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::Tls12NotOffered,
            ))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ED25519]
        }

        fn requires_raw_public_keys(&self) -> bool {
            true
        }
    };
}

#[derive(Debug)]
struct ServerKeyVerifier {
    expected: PeerId,
    mismatch: MismatchSlot,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ServerKeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = PeerId::from_spki(end_entity.as_ref()).ok_or_else(not_ed25519)?;
        if presented != self.expected {
            if let Ok(mut slot) = self.mismatch.lock() {
                *slot = Some(presented);
            }
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    raw_key_signatures!();
}

#[derive(Debug)]
struct ClientKeyVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ClientKeyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Any Ed25519 key is a valid player; which players to talk to is the game's call.
        PeerId::from_spki(end_entity.as_ref()).ok_or_else(not_ed25519)?;
        Ok(ClientCertVerified::assertion())
    }

    raw_key_signatures!();
}

/// quinn configurations with Tsunagi's TLS (raw Ed25519 keys, ALPN `tsunagi/1`) and
/// transport settings, for tools that measure the session layer against plain quinn:
/// a server config presenting `config.identity`, and a client config that expects
/// `expected`.
pub fn plain_quinn_configs(
    config: &super::SessionConfig,
    expected: PeerId,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), SessionError> {
    let transport = config.transport();
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto(&config.identity)?));
    server.transport_config(transport.clone());
    let crypto = client_crypto(&config.identity, expected, Arc::new(Mutex::new(None)))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(transport);
    Ok((server, client))
}
