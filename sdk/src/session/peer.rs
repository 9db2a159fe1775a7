//! One live QUIC connection to a peer ("link"), and the tasks that read from it.
//!
//! Readers hold back events until the link is *installed* (the client chose it: see
//! [`Shared::install`]), so a connection that lost a Happy Eyeballs race never shows up
//! to the game.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::endpoint::Shared;
use super::error::SessionError;
use super::event::{Event, PeerStats};
use super::framing::{self, CONTROL_CHANNEL, HELLO_V1, ReadError};
use super::identity::PeerId;
use crate::path::{PathAddr, PathHandle, PathKind};

/// Application close code: the game closed the session.
pub(crate) const CODE_CLOSED: quinn::VarInt = quinn::VarInt::from_u32(0);
/// Application close code: a newer connection to the same peer replaced this one.
pub(crate) const CODE_REPLACED: quinn::VarInt = quinn::VarInt::from_u32(1);
/// Application close code: the peer broke the channel protocol.
pub(crate) const CODE_PROTOCOL: quinn::VarInt = quinn::VarInt::from_u32(2);

/// A connection to one peer.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) connection: quinn::Connection,
    pub(crate) peer: PeerId,
    /// True when this side dialled.
    pub(crate) outgoing: bool,
    writers: Mutex<HashMap<u16, mpsc::Sender<Bytes>>>,
    ready: watch::Sender<bool>,
}

impl Link {
    pub(crate) fn new(connection: quinn::Connection, peer: PeerId, outgoing: bool) -> Arc<Self> {
        Arc::new(Self {
            connection,
            peer,
            outgoing,
            writers: Mutex::new(HashMap::new()),
            ready: watch::Sender::new(false),
        })
    }

    /// The peer's virtual address: where QUIC thinks it is.
    pub(crate) fn vaddr(&self) -> SocketAddr {
        self.connection.remote_address()
    }

    /// The path packets take now and its real address: the active path, or while none
    /// is confirmed, the one last heard from.
    pub(crate) fn current_path(&self, paths: &PathHandle) -> Option<(PathKind, SocketAddr)> {
        let stats = paths.stats(self.vaddr())?;
        let path = stats.active_path().or_else(|| {
            stats
                .paths
                .iter()
                .filter(|p| p.last_seen.is_some())
                .max_by_key(|p| p.last_seen)
        })?;
        let addr = match path.path {
            PathAddr::Direct(a) | PathAddr::RemoteRelay(a) => a,
            PathAddr::Relay { server, .. } => server,
        };
        Some((path.kind, addr))
    }

    pub(crate) fn stats(&self, paths: &PathHandle) -> PeerStats {
        PeerStats::new(&self.connection, self.current_path(paths))
    }

    pub(crate) fn mark_ready(&self) {
        self.ready.send_replace(true);
    }

    /// Waits until the link is installed; false if it closed first.
    async fn wait_ready(&self) -> bool {
        let mut ready = self.ready.subscribe();
        tokio::select! {
            result = ready.wait_for(|r| *r) => result.is_ok(),
            _ = self.connection.closed() => false,
        }
    }

    /// Whether a datagram of `size` bytes fits what the connection can send now.
    fn check_datagram_size(&self, size: usize) -> Result<(), SessionError> {
        let limit = self
            .connection
            .max_datagram_size()
            .ok_or(SessionError::DatagramsUnsupported)?;
        if size > limit {
            return Err(SessionError::DatagramTooLarge { size, limit });
        }
        Ok(())
    }

    pub(crate) fn send_datagram(&self, bytes: Bytes) -> Result<(), SessionError> {
        self.check_datagram_size(bytes.len())?;
        self.connection.send_datagram(bytes).map_err(|e| match e {
            quinn::SendDatagramError::TooLarge => SessionError::DatagramTooLarge {
                size: 0,
                limit: self.connection.max_datagram_size().unwrap_or(0),
            },
            quinn::SendDatagramError::ConnectionLost(_) => SessionError::NotConnected(self.peer),
            _ => SessionError::DatagramsUnsupported,
        })
    }

    /// Like [`Link::send_datagram`], but waits for room in the send buffer instead of
    /// dropping the oldest queued datagram.
    pub(crate) async fn send_datagram_wait(&self, bytes: Bytes) -> Result<(), SessionError> {
        self.check_datagram_size(bytes.len())?;
        self.connection
            .send_datagram_wait(bytes)
            .await
            .map_err(|_| SessionError::NotConnected(self.peer))
    }

    /// The send queue of `channel`, starting its writer task on first use.
    pub(crate) fn channel_sender(
        &self,
        shared: &Shared,
        channel: u16,
    ) -> Result<mpsc::Sender<Bytes>, SessionError> {
        let channels = shared.config.channels;
        if channel >= channels {
            return Err(SessionError::NoSuchChannel { channel, channels });
        }
        let mut writers = self.writers.lock().map_err(|_| SessionError::Closed)?;
        if let Some(sender) = writers.get(&channel) {
            return Ok(sender.clone());
        }
        let (sender, receiver) = mpsc::channel(shared.config.send_queue.max(1));
        writers.insert(channel, sender.clone());
        shared.runtime.spawn(write_channel(
            self.connection.clone(),
            self.peer,
            channel,
            receiver,
        ));
        Ok(sender)
    }

    pub(crate) fn close(&self, code: quinn::VarInt, reason: &str) {
        self.connection.close(code, reason.as_bytes());
    }
}

/// Writes queued messages of one channel to its stream, coalescing what is queued.
async fn write_channel(
    connection: quinn::Connection,
    peer: PeerId,
    channel: u16,
    mut queue: mpsc::Receiver<Bytes>,
) {
    let mut stream = match connection.open_uni().await {
        Ok(stream) => stream,
        Err(e) => {
            debug!(peer = %peer.short(), channel, "cannot open channel stream: {e}");
            return;
        }
    };
    let mut buffer = BytesMut::new();
    buffer.extend_from_slice(&framing::stream_header(channel));
    while let Some(message) = queue.recv().await {
        framing::encode_message(&mut buffer, &message);
        while buffer.len() < 64 * 1024 {
            match queue.try_recv() {
                Ok(message) => framing::encode_message(&mut buffer, &message),
                Err(_) => break,
            }
        }
        if let Err(e) = stream.write_chunk(buffer.split().freeze()).await {
            debug!(peer = %peer.short(), channel, "channel stream closed: {e}");
            return;
        }
    }
    let _ = stream.finish();
}

/// Sends the hello that tells the accepting side this connection is the chosen one.
pub(crate) async fn send_hello(
    connection: &quinn::Connection,
) -> Result<(), quinn::ConnectionError> {
    let mut stream = connection.open_uni().await?;
    let mut hello = framing::stream_header(CONTROL_CHANNEL).to_vec();
    hello.push(HELLO_V1);
    // Errors here surface as the connection closing; the closed watcher reports them.
    let _ = stream.write_all(&hello).await;
    let _ = stream.finish();
    Ok(())
}

/// Starts the reader tasks of a link and the watcher that reports its end.
pub(crate) fn spawn_tasks(shared: &Arc<Shared>, link: &Arc<Link>) {
    shared
        .runtime
        .spawn(read_datagrams(shared.clone(), link.clone()));
    shared
        .runtime
        .spawn(accept_streams(shared.clone(), link.clone()));
    shared
        .runtime
        .spawn(watch_close(shared.clone(), link.clone()));
}

async fn read_datagrams(shared: Arc<Shared>, link: Arc<Link>) {
    if !link.wait_ready().await {
        return;
    }
    while let Ok(bytes) = link.connection.read_datagram().await {
        shared.emit(Event::Datagram {
            peer: link.peer,
            bytes,
        });
    }
}

async fn accept_streams(shared: Arc<Shared>, link: Arc<Link>) {
    while let Ok(recv) = link.connection.accept_uni().await {
        shared
            .runtime
            .spawn(read_stream(shared.clone(), link.clone(), recv));
    }
}

async fn read_stream(shared: Arc<Shared>, link: Arc<Link>, mut recv: quinn::RecvStream) {
    let Some(channel) = framing::read_header(&mut recv).await else {
        return;
    };
    if channel == CONTROL_CHANNEL {
        let mut version = [0u8; 1];
        if recv.read_exact(&mut version).await.is_ok() && !link.outgoing {
            // Any version is accepted for now; later versions only add fields.
            shared.install(&link);
        }
        return;
    }
    if channel >= shared.config.channels {
        let reason = format!(
            "channel {channel} is out of range (this side has {})",
            shared.config.channels
        );
        warn!(peer = %link.peer.short(), "{reason}");
        link.close(CODE_PROTOCOL, &reason);
        return;
    }
    if !link.wait_ready().await {
        return;
    }
    loop {
        match framing::read_message(&mut recv, channel, shared.config.max_message_size).await {
            Ok(Some(bytes)) => shared.emit(Event::Message {
                peer: link.peer,
                channel,
                bytes,
            }),
            Ok(None) => return,
            Err(e @ ReadError::TooLarge { .. }) => {
                warn!(peer = %link.peer.short(), "{e}");
                link.close(CODE_PROTOCOL, &e.to_string());
                return;
            }
            Err(ReadError::Stream(e)) => {
                debug!(peer = %link.peer.short(), channel, "{e}");
                return;
            }
        }
    }
}

async fn watch_close(shared: Arc<Shared>, link: Arc<Link>) {
    let error = link.connection.closed().await;
    shared.remove(&link, &error);
}
