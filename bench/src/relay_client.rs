//! A minimal TURN client for the relay benchmark, on the SDK's STUN codec:
//! Allocate with long-term credentials, CreatePermission, ChannelBind, and the
//! two ways to send (Send indication, ChannelData). Blocking, one socket per
//! allocation, every wait bounded.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{Context, bail};
use tsunagi::stun::{
    Attribute, ChannelData, Class, IntegrityKey, Message, MessageBuilder, Method, TransactionId,
};

/// How a client frames application data towards the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// ChannelData (4-byte header) after ChannelBind.
    Channel,
    /// Send indications (36+ bytes of STUN) after CreatePermission.
    Send,
}

/// The channel number the benchmark binds.
pub const CHANNEL: u16 = 0x4000;

/// Long-term credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// USERNAME.
    pub username: String,
    /// The password.
    pub password: String,
}

/// An allocation on a TURN server, with its client socket.
#[derive(Debug)]
pub struct Allocation {
    /// The client's socket (connected to the server).
    pub socket: UdpSocket,
    /// The relayed transport address.
    pub relayed: SocketAddr,
    key: IntegrityKey,
    username: String,
    realm: String,
    nonce: String,
    next_tid: u64,
}

fn tid(n: u64) -> TransactionId {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[8..].copy_from_slice(&std::process::id().to_be_bytes());
    TransactionId::new(bytes)
}

/// Sends `request` and waits for the response with its transaction ID (3 tries).
fn transact(socket: &UdpSocket, request: &[u8], id: TransactionId) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    for _ in 0..3 {
        socket.send(request)?;
        let deadline = std::time::Instant::now() + Duration::from_millis(700);
        while std::time::Instant::now() < deadline {
            let Ok(len) = socket.recv(&mut buf) else {
                break;
            };
            if let Ok(m) = Message::decode(&buf[..len])
                && m.transaction_id() == id
            {
                return Ok(buf[..len].to_vec());
            }
        }
    }
    bail!("no response from the TURN server after 3 tries")
}

fn error_code(m: &Message<'_>) -> Option<u16> {
    m.error_code().map(|e| e.code)
}

impl Allocation {
    /// Allocates a UDP relay on `server` with `credentials`.
    pub fn new(server: SocketAddr, credentials: &Credentials) -> anyhow::Result<Allocation> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(server)?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        // First an unauthenticated Allocate, for REALM and NONCE (401).
        let first = tid(1);
        let mut b = MessageBuilder::new(Class::Request, Method::ALLOCATE, first);
        b.add(&Attribute::RequestedTransport(17))?;
        let response = transact(&socket, &b.finish(), first)?;
        let m = Message::decode(&response)?;
        if error_code(&m) != Some(401) {
            bail!(
                "expected 401 to an unauthenticated Allocate, got {:?} {:?}",
                m.class(),
                m.error_code()
            );
        }
        let mut realm = None;
        let mut nonce = None;
        for a in m.attributes() {
            match a {
                Attribute::Realm(r) => realm = Some(r.to_string()),
                Attribute::Nonce(n) => nonce = Some(n.to_string()),
                _ => {}
            }
        }
        let realm = realm.context("401 without REALM")?;
        let nonce = nonce.context("401 without NONCE")?;
        let key = IntegrityKey::long_term_md5(&credentials.username, &realm, &credentials.password);
        let mut allocation = Allocation {
            socket,
            relayed: server,
            key,
            username: credentials.username.clone(),
            realm,
            nonce,
            next_tid: 2,
        };
        let response =
            allocation.request(Method::ALLOCATE, &[Attribute::RequestedTransport(17)])?;
        let m = Message::decode(&response)?;
        allocation.relayed = m
            .attributes()
            .iter()
            .find_map(|a| match a {
                Attribute::XorRelayedAddress(a) => Some(*a),
                _ => None,
            })
            .context("Allocate success without XOR-RELAYED-ADDRESS")?;
        Ok(allocation)
    }

    /// An authenticated request; retries once on 438 Stale Nonce.
    fn request(&mut self, method: Method, attrs: &[Attribute<'_>]) -> anyhow::Result<Vec<u8>> {
        for _ in 0..2 {
            let id = tid(self.next_tid);
            self.next_tid += 1;
            let mut b = MessageBuilder::new(Class::Request, method, id);
            for a in attrs {
                b.add(a)?;
            }
            b.add(&Attribute::Username(&self.username))?;
            b.add(&Attribute::Realm(&self.realm))?;
            b.add(&Attribute::Nonce(&self.nonce))?;
            b.add_integrity(&self.key);
            let response = transact(&self.socket, &b.finish_with_fingerprint(), id)?;
            let m = Message::decode(&response)?;
            match (m.class(), error_code(&m)) {
                (Class::SuccessResponse, _) => return Ok(response),
                (_, Some(438)) => {
                    if let Some(n) = m.attributes().iter().find_map(|a| match a {
                        Attribute::Nonce(n) => Some(n.to_string()),
                        _ => None,
                    }) {
                        self.nonce = n;
                    }
                }
                _ => bail!("{method} refused: {:?}", m.error_code()),
            }
        }
        bail!("{method} refused: stale nonce twice")
    }

    /// Installs what `framing` needs to reach `peer`.
    pub fn prepare(&mut self, peer: SocketAddr, framing: Framing) -> anyhow::Result<()> {
        match framing {
            Framing::Send => {
                self.request(
                    Method::CREATE_PERMISSION,
                    &[Attribute::XorPeerAddress(peer)],
                )?;
            }
            Framing::Channel => {
                self.request(
                    Method::CHANNEL_BIND,
                    &[
                        Attribute::ChannelNumber(CHANNEL),
                        Attribute::XorPeerAddress(peer),
                    ],
                )?;
            }
        }
        Ok(())
    }
}

/// Frames `data` for `peer` into `out` (cleared first).
pub fn frame(framing: Framing, peer: SocketAddr, data: &[u8], seq: u64, out: &mut Vec<u8>) {
    out.clear();
    match framing {
        Framing::Channel => {
            let _ = ChannelData {
                channel: CHANNEL,
                data,
            }
            .encode(false, out);
        }
        Framing::Send => {
            let mut b = MessageBuilder::new(Class::Indication, Method::SEND, tid(seq));
            let _ = b.add(&Attribute::XorPeerAddress(peer));
            let _ = b.add(&Attribute::Data(data));
            out.extend_from_slice(&b.finish());
        }
    }
}

/// The application data in a datagram the relay sent to a client (ChannelData
/// or a Data indication).
pub fn unframe(datagram: &[u8]) -> Option<&[u8]> {
    if let Ok(cd) = ChannelData::decode(datagram) {
        return Some(cd.data);
    }
    let m = Message::decode(datagram).ok()?;
    m.attributes().iter().find_map(|a| match a {
        Attribute::Data(d) => Some(*d),
        _ => None,
    })
}
