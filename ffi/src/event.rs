//! The game's tick: `tsunagi_endpoint_pump` and `tsunagi_endpoint_poll_event`.

use std::borrow::Cow;

use tsunagi::session::Event;

use crate::buffers::{fill_fixed, out_buf};
use crate::endpoint::{tsunagi_endpoint, with_endpoint};
use crate::error::FfiError;
use crate::error::tsunagi_result::{
    self, TSUNAGI_ERR_BUFFER_TOO_SMALL, TSUNAGI_NO_EVENT, TSUNAGI_OK,
};
use crate::types::{disconnect_reason, path_kind, tsunagi_event, tsunagi_event_kind};

/// Collects what arrived since the last call and stores in `*pending` (if not NULL) how
/// many events are waiting. Call once per game tick, then drain with
/// `tsunagi_endpoint_poll_event`. Never blocks.
///
/// # Safety
/// `endpoint` is valid; `pending` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_pump(
    endpoint: *const tsunagi_endpoint,
    pending: *mut usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        let waiting = state.endpoint.pump() + usize::from(state.held.is_some());
        if !pending.is_null() {
            // SAFETY: non-null and the caller promises it is writable.
            unsafe { pending.write(waiting) };
        }
        Ok(TSUNAGI_OK)
    })
}

/// Takes the oldest event: fills `*out` and copies its payload (message bytes, or text
/// for CONNECTED / CONNECT_FAILED / DISCONNECTED, without NUL) into `buf` of `buf_len`
/// bytes, which the caller owns. Returns `TSUNAGI_OK` with an event,
/// `TSUNAGI_NO_EVENT` (and `out->kind == TSUNAGI_EVENT_NONE`) when none is waiting.
///
/// If the payload is larger than `buf_len`, nothing is copied or lost: `*out` is filled
/// with `truncated = 1` and `payload_len` = the size needed, the event stays first in
/// line, and the call returns `TSUNAGI_ERR_BUFFER_TOO_SMALL`. A buffer as large as the
/// configured maximum message size (1 MiB by default) never falls short. `buf` may be
/// NULL when `buf_len` is 0.
///
/// # Safety
/// `endpoint` is valid; `out` is writable; `buf` is NULL or has `buf_len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_poll_event(
    endpoint: *const tsunagi_endpoint,
    out: *mut tsunagi_event,
    buf: *mut u8,
    buf_len: usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: the caller promises `buf_len` writable bytes at `buf`.
        let buf = unsafe { out_buf(buf, buf_len, "buf") }?;
        let mut header = tsunagi_event::empty();
        let Some(event) = state.held.take().or_else(|| state.endpoint.poll_event()) else {
            // SAFETY: non-null and the caller promises it is writable.
            unsafe { out.write(header) };
            return Ok(TSUNAGI_NO_EVENT);
        };
        let payload = describe(&event, &mut header);
        let size = payload.len();
        header.payload_len = size;
        if size > buf.len() {
            header.truncated = 1;
            // SAFETY: non-null and the caller promises it is writable.
            unsafe { out.write(header) };
            state.held = Some(event);
            return Err(FfiError::new(
                TSUNAGI_ERR_BUFFER_TOO_SMALL,
                format!(
                    "event payload of {size} bytes does not fit the buffer of {buf_len} bytes: the event was kept, call again with a buffer of at least payload_len bytes"
                ),
            ));
        }
        buf[..size].copy_from_slice(&payload);
        // SAFETY: non-null and the caller promises it is writable.
        unsafe { out.write(header) };
        Ok(TSUNAGI_OK)
    })
}

/// Fills the header fields of `event` and returns its payload.
fn describe<'a>(event: &'a Event, out: &mut tsunagi_event) -> Cow<'a, [u8]> {
    use tsunagi_event_kind::*;
    let (kind, peer, payload): (_, _, Cow<'a, [u8]>) = match event {
        Event::Connected {
            peer,
            path,
            remote,
            outgoing,
        } => {
            out.path = path_kind(Some(*path));
            out.outgoing = u8::from(*outgoing);
            let remote = remote.map(|r| r.to_string()).unwrap_or_default();
            (
                TSUNAGI_EVENT_CONNECTED,
                peer,
                Cow::Owned(remote.into_bytes()),
            )
        }
        Event::ConnectFailed { peer, error } => (
            TSUNAGI_EVENT_CONNECT_FAILED,
            peer,
            Cow::Borrowed(error.as_bytes()),
        ),
        Event::Disconnected { peer, reason } => {
            out.reason = disconnect_reason(reason);
            let text = reason.to_string();
            (
                TSUNAGI_EVENT_DISCONNECTED,
                peer,
                Cow::Owned(text.into_bytes()),
            )
        }
        Event::PathChanged { peer, path } => {
            out.path = path_kind(Some(*path));
            (TSUNAGI_EVENT_PATH_CHANGED, peer, Cow::Borrowed(&[][..]))
        }
        Event::Message {
            peer,
            channel,
            bytes,
        } => {
            out.channel = *channel;
            (TSUNAGI_EVENT_MESSAGE, peer, Cow::Borrowed(&bytes[..]))
        }
        Event::Datagram { peer, bytes } => {
            (TSUNAGI_EVENT_DATAGRAM, peer, Cow::Borrowed(&bytes[..]))
        }
    };
    out.kind = kind;
    fill_fixed(&peer.to_string(), &mut out.peer_id);
    payload
}
