//! Relay (TURN) and rendezvous settings, and offer/answer blobs.
//!
//! The relay and rendezvous setters store their value in the config;
//! `tsunagi_endpoint_create` applies them (a TURN allocation on the relay, a
//! registration with the rendezvous server). Offer/answer blobs connect two players
//! whose game carries the blobs itself (`tsunagi::session::Endpoint::create_offer`).

use std::ffi::c_char;

use tsunagi::relay::Credentials;
use tsunagi::signal::MAX_BLOB_LEN;

use crate::buffers::{bytes_arg, str_arg};
use crate::config::{tsunagi_config, with_config};
use crate::endpoint::{tsunagi_endpoint, with_endpoint};
use crate::error::FfiError;
use crate::error::tsunagi_result::{self, TSUNAGI_ERR_BUFFER_TOO_SMALL, TSUNAGI_OK};

fn server_arg(text: &str, what: &str) -> Result<String, FfiError> {
    let text = text.trim();
    let port_ok = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(FfiError::invalid(format!(
            "{what} \"{text}\" is not host:port (examples: relay.example.net:3478, [2001:db8::1]:3478)"
        )));
    }
    Ok(text.to_owned())
}

/// The TURN relay server, `host:port` (e.g. `relay.example.net:3478`). The relay lets
/// any two players meet when hole punching fails, and bridges IPv4-only and IPv6-only
/// players. Also set `tsunagi_config_set_relay_credentials` or
/// `tsunagi_config_set_relay_token`. The name is resolved and the allocation requested
/// by `tsunagi_endpoint_create` (in the background: creation does not wait for it).
/// Returns `TSUNAGI_ERR_INVALID_ARGUMENT` if `server` is not `host:port`.
///
/// # Safety
/// `config` is valid; `server` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_relay_server(
    config: *mut tsunagi_config,
    server: *const c_char,
) -> tsunagi_result {
    with_config(config, |state| {
        // SAFETY: the caller promises a NUL-terminated string.
        let server = server_arg(unsafe { str_arg(server, "server") }?, "relay server")?;
        state.relay_server = Some(server);
        Ok(TSUNAGI_OK)
    })
}

/// Long-term TURN credentials for the relay (a static user, or a coturn-style REST
/// `EXPIRY:NAME` username with its HMAC password). Replaces a token set before.
/// Returns `TSUNAGI_ERR_INVALID_ARGUMENT` if either is empty.
///
/// # Safety
/// `config` is valid; `username` and `password` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_relay_credentials(
    config: *mut tsunagi_config,
    username: *const c_char,
    password: *const c_char,
) -> tsunagi_result {
    with_config(config, |state| {
        // SAFETY: the caller promises NUL-terminated strings.
        let (user, pass) = unsafe {
            (
                str_arg(username, "username")?,
                str_arg(password, "password")?,
            )
        };
        if user.is_empty() || pass.is_empty() {
            return Err(FfiError::invalid(
                "relay username and password must not be empty: use the values your relay operator issued",
            ));
        }
        state.relay_credentials = Some(Credentials::new(user, pass));
        state.relay_token = None;
        Ok(TSUNAGI_OK)
    })
}

/// Relay credentials as one token (`tsunagi1.…`, issued by `tsunagi token` or your
/// backend). It is used for the relay server and, when one is set, for the rendezvous
/// server. Replaces credentials set before. Returns `TSUNAGI_ERR_INVALID_ARGUMENT` for a
/// malformed token.
///
/// # Safety
/// `config` is valid; `token` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_relay_token(
    config: *mut tsunagi_config,
    token: *const c_char,
) -> tsunagi_result {
    with_config(config, |state| {
        // SAFETY: the caller promises a NUL-terminated string.
        let token = unsafe { str_arg(token, "token") }?.trim();
        let credentials = Credentials::from_token(token)
            .map_err(|e| FfiError::invalid(format!("relay token is not valid: {e}")))?;
        state.relay_credentials = Some(credentials);
        state.relay_token = Some(token.to_owned());
        Ok(TSUNAGI_OK)
    })
}

/// The rendezvous (signalling) server of `tsunagi-relay`, `host:port`, through which
/// players exchange offers and answers by peer id. Needs a token
/// (`tsunagi_config_set_relay_token`): `tsunagi_endpoint_create` then registers with the
/// server under that token and allocates a relay there, blocking up to about 10 s, and
/// fails (`TSUNAGI_ERR_NETWORK`) if the server refuses or does not answer. Connect to
/// other registered players with `tsunagi_endpoint_connect_peer`. Returns
/// `TSUNAGI_ERR_INVALID_ARGUMENT` if `server` is not `host:port`.
///
/// # Safety
/// `config` is valid; `server` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_rendezvous_server(
    config: *mut tsunagi_config,
    server: *const c_char,
) -> tsunagi_result {
    with_config(config, |state| {
        // SAFETY: the caller promises a NUL-terminated string.
        let server = server_arg(unsafe { str_arg(server, "server") }?, "rendezvous server")?;
        state.rendezvous_server = Some(server);
        Ok(TSUNAGI_OK)
    })
}

// The C constant and the SDK's limit must agree.
const _: () = assert!(crate::types::TSUNAGI_SIGNAL_MAX_SIZE == MAX_BLOB_LEN);

/// Writes a bytes `blob` into `buf` and its length into `*needed`; a short buffer
/// is left untouched and gets `TSUNAGI_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `buf` is NULL or has `len` writable bytes; `needed` is NULL or writable.
unsafe fn write_blob(
    blob: &[u8],
    buf: *mut u8,
    len: usize,
    needed: *mut usize,
    what: &str,
) -> Result<tsunagi_result, FfiError> {
    if !needed.is_null() {
        // SAFETY: non-null and the caller promises it is writable.
        unsafe { needed.write(blob.len()) };
    }
    if blob.len() > len {
        return Err(FfiError::new(
            TSUNAGI_ERR_BUFFER_TOO_SMALL,
            format!(
                "{what} of {} bytes does not fit the buffer of {len} bytes: pass TSUNAGI_SIGNAL_MAX_SIZE ({MAX_BLOB_LEN}) bytes",
                blob.len()
            ),
        ));
    }
    // SAFETY: the caller promises `len` writable bytes at `buf`.
    let out = unsafe { crate::buffers::out_buf(buf, len, "buf") }?;
    out[..blob.len()].copy_from_slice(blob);
    Ok(TSUNAGI_OK)
}

/// Makes an offer to `peer_id` (`tsu…`) for the game to carry through its own
/// matchmaking (a lobby attribute, a message through its server): binary, at most
/// `TSUNAGI_SIGNAL_MAX_SIZE` bytes, written into `buf` with its length in `*needed`.
/// The offer holds this endpoint's candidates (local addresses, and the address and
/// relayed addresses from the configured relay server), so the other player can
/// reach it. Give the answer that comes back to `tsunagi_endpoint_apply_signal`.
/// Blocks while the relay allocation is still being made (at most about 3 s).
/// A newer offer to the same peer replaces the older one. A buffer too small gets
/// `TSUNAGI_ERR_BUFFER_TOO_SMALL` with `*needed` set; the offer made is kept, and the
/// next call for the same peer returns it.
///
/// # Safety
/// `endpoint` is valid; `peer_id` is a NUL-terminated string; `buf` is NULL or has
/// `len` writable bytes; `needed` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_create_offer(
    endpoint: *const tsunagi_endpoint,
    peer_id: *const c_char,
    buf: *mut u8,
    len: usize,
    needed: *mut usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        // SAFETY: the caller promises a NUL-terminated string.
        let peer = unsafe { crate::buffers::peer_arg(peer_id) }?;
        // SAFETY: the caller promises `len` writable bytes at `buf`.
        unsafe { crate::buffers::out_buf(buf, len, "buf") }?;
        let offer = match state.held_offer.take() {
            Some((p, offer)) if p == peer => offer,
            _ => state.endpoint.create_offer(peer)?,
        };
        // SAFETY: forwarded caller promises about buf, len and needed.
        let written = unsafe { write_blob(&offer, buf, len, needed, "the offer") };
        if written.is_err() {
            state.held_offer = Some((peer, offer));
        }
        written
    })
}

/// Applies a blob the other player sent through the game's channel. For an offer,
/// writes the answer into `answer` (at most `TSUNAGI_SIGNAL_MAX_SIZE` bytes) and its
/// length into `*needed`: send it back to the player who made the offer. For an
/// answer, sets `*needed` to 0 and starts connecting in the background; the outcome
/// arrives as `TSUNAGI_EVENT_CONNECTED` (over the relay first when both sides have
/// one, then a direct path when one works) or `TSUNAGI_EVENT_CONNECT_FAILED`.
/// Applying the same offer again gives the answer again (e.g. after
/// `TSUNAGI_ERR_BUFFER_TOO_SMALL`). Applying an offer blocks like
/// `tsunagi_endpoint_create_offer` while the relay allocation is still being made.
/// Relay paths need a relay configured on both sides.
/// Errors (`TSUNAGI_ERR_INVALID_ARGUMENT`, with `tsunagi_last_error` saying which):
/// not a Tsunagi blob or another format version, this endpoint's own blob, an answer
/// without an offer to that player, an answer to an older offer.
///
/// # Safety
/// `endpoint` is valid; `blob` has `blob_len` readable bytes; `answer` is NULL or has
/// `answer_len` writable bytes; `needed` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_apply_signal(
    endpoint: *const tsunagi_endpoint,
    blob: *const u8,
    blob_len: usize,
    answer: *mut u8,
    answer_len: usize,
    needed: *mut usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        // SAFETY: the caller promises `blob_len` readable bytes at `blob`.
        let bytes = unsafe { bytes_arg(blob, blob_len, "blob") }?;
        // SAFETY: the caller promises `answer_len` writable bytes at `answer`.
        unsafe { crate::buffers::out_buf(answer, answer_len, "answer") }?;
        match state.endpoint.apply_signal(bytes)? {
            // SAFETY: forwarded caller promises about answer, answer_len and needed.
            Some(reply) => unsafe { write_blob(&reply, answer, answer_len, needed, "the answer") },
            None => {
                if !needed.is_null() {
                    // SAFETY: non-null and the caller promises it is writable.
                    unsafe { needed.write(0) };
                }
                Ok(TSUNAGI_OK)
            }
        }
    })
}
