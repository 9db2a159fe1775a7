//! How reliable channels sit on QUIC streams.
//!
//! Each channel is one unidirectional stream per direction, opened by the sender on first
//! use. The stream starts with the channel number (u16, big-endian); then each message is
//! a u32 big-endian length followed by that many bytes. Streams are independent in QUIC,
//! so a lost packet on one channel never holds up another.

use bytes::{BufMut, Bytes, BytesMut};

/// The stream a client opens first to say "this connection is the one I chose".
pub(crate) const CONTROL_CHANNEL: u16 = u16::MAX;
/// Version byte sent on the control stream.
pub(crate) const HELLO_V1: u8 = 1;

/// The header that opens a channel's stream.
pub(crate) fn stream_header(channel: u16) -> [u8; 2] {
    channel.to_be_bytes()
}

/// Appends one length-prefixed message to `out`.
pub(crate) fn encode_message(out: &mut BytesMut, message: &[u8]) {
    out.reserve(4 + message.len());
    // Callers check message.len() against max_message_size, which is far below u32::MAX.
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
}

/// Why reading a message from a channel stream stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The peer announced a message over the limit.
    #[error(
        "peer sent a message of {size} bytes on channel {channel}, over the {limit}-byte limit"
    )]
    TooLarge {
        channel: u16,
        size: usize,
        limit: usize,
    },
    /// The stream or connection broke.
    #[error("stream ended: {0}")]
    Stream(String),
}

/// Reads the next message; `Ok(None)` when the peer finished the stream cleanly between
/// messages.
pub(crate) async fn read_message(
    recv: &mut quinn::RecvStream,
    channel: u16,
    limit: usize,
) -> Result<Option<Bytes>, ReadError> {
    let mut prefix = [0u8; 4];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(ReadError::Stream(e.to_string())),
    }
    let size = u32::from_be_bytes(prefix) as usize;
    if size > limit {
        return Err(ReadError::TooLarge {
            channel,
            size,
            limit,
        });
    }
    let mut message = vec![0u8; size];
    recv.read_exact(&mut message)
        .await
        .map_err(|e| ReadError::Stream(e.to_string()))?;
    Ok(Some(Bytes::from(message)))
}

/// Reads a stream's channel header; `None` if the stream ended first.
pub(crate) async fn read_header(recv: &mut quinn::RecvStream) -> Option<u16> {
    let mut header = [0u8; 2];
    recv.read_exact(&mut header).await.ok()?;
    Some(u16::from_be_bytes(header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_length_prefixed() {
        let mut out = BytesMut::new();
        encode_message(&mut out, b"hi");
        encode_message(&mut out, b"");
        assert_eq!(&out[..], &[0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0]);
        assert_eq!(stream_header(0x0102), [1, 2]);
    }
}
