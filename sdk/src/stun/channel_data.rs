//! TURN ChannelData framing (RFC 8656 §12.4, §12.5).

use super::error::ChannelDataError;
use super::message::padded;

/// Length of the ChannelData header: channel number and data length.
pub const CHANNEL_DATA_HEADER_LEN: usize = 4;

/// One ChannelData message: application data on a bound channel, 4 bytes of
/// overhead instead of a Send or Data indication's 36 or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelData<'a> {
    /// The channel number, 0x4000..=0x4FFF.
    pub channel: u16,
    /// The application data.
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// The valid channel numbers.
    pub const CHANNELS: std::ops::RangeInclusive<u16> = 0x4000..=0x4FFF;

    /// Parses one ChannelData message that fills a UDP datagram. Over UDP the
    /// padding to a multiple of 4 is optional, so 0 to 3 bytes may follow the data.
    pub fn decode(datagram: &'a [u8]) -> Result<ChannelData<'a>, ChannelDataError> {
        let too_short = ChannelDataError::TooShort {
            len: datagram.len(),
        };
        let (header, rest) = datagram
            .split_at_checked(CHANNEL_DATA_HEADER_LEN)
            .ok_or(too_short)?;
        let [c0, c1, l0, l1] = <[u8; 4]>::try_from(header).map_err(|_| too_short)?;
        let channel = u16::from_be_bytes([c0, c1]);
        if !Self::CHANNELS.contains(&channel) {
            return Err(ChannelDataError::InvalidChannel(channel));
        }
        let declared = usize::from(u16::from_be_bytes([l0, l1]));
        let data = rest.get(..declared).ok_or(ChannelDataError::Truncated {
            declared,
            available: rest.len(),
        })?;
        let extra = rest.len() - declared;
        if declared + extra > padded(declared) {
            return Err(ChannelDataError::TrailingBytes { extra });
        }
        Ok(ChannelData { channel, data })
    }

    /// Bytes of a stream (TCP/TLS) ChannelData message starting at `buf`, padding
    /// included, once its header is there: `None` until 4 bytes are available.
    pub fn framed_len(buf: &[u8]) -> Option<usize> {
        let len = u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]);
        Some(CHANNEL_DATA_HEADER_LEN + padded(usize::from(len)))
    }

    /// Appends this message to `out`. `pad` adds the zero padding to a multiple of
    /// 4 (required over TCP, optional over UDP).
    pub fn encode(&self, pad: bool, out: &mut Vec<u8>) -> Result<(), ChannelDataError> {
        if !Self::CHANNELS.contains(&self.channel) {
            return Err(ChannelDataError::InvalidChannel(self.channel));
        }
        let len = u16::try_from(self.data.len()).map_err(|_| ChannelDataError::DataTooLong {
            len: self.data.len(),
        })?;
        out.extend_from_slice(&self.channel.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.data);
        if pad {
            out.resize(out.len() + padded(self.data.len()) - self.data.len(), 0);
        }
        Ok(())
    }
}
