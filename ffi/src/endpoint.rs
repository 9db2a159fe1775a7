//! `tsunagi_endpoint`: create and destroy, identity, connect, send, stats.

use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard};

use std::net::SocketAddr;

use tsunagi::session::{Event, Identity, PollEndpoint, Rendezvous};

use crate::buffers::{
    bytes_arg, fill_fixed, out_buf, parse_addrs, peer_arg, str_arg, write_addrs, write_text,
};
use crate::config::tsunagi_config;
use crate::error::tsunagi_result::{self, TSUNAGI_ERR_NOT_CONNECTED, TSUNAGI_OK};
use crate::error::{FfiError, guard};
use crate::types::{TSUNAGI_ADDRESS_SIZE as ADDR_SIZE, path_kind, tsunagi_stats};

/// One player's endpoint: an identity, one UDP socket per address family, any number of
/// peers. Networking runs on a background thread; the game calls
/// `tsunagi_endpoint_pump` and `tsunagi_endpoint_poll_event` on its own tick. Every
/// function may be called from any thread (a lock inside serialises them).
#[derive(Debug)]
pub struct tsunagi_endpoint {
    state: Mutex<EndpointState>,
}

#[derive(Debug)]
pub(crate) struct EndpointState {
    pub(crate) endpoint: PollEndpoint,
    pub(crate) identity: Identity,
    /// An event whose payload did not fit the caller's buffer, delivered again next time.
    pub(crate) held: Option<Event>,
    /// The relay server added to the path layer, if one was configured.
    pub(crate) relay_server: Option<SocketAddr>,
    /// The registration with the rendezvous server, if one was configured.
    pub(crate) rendezvous: Option<Rendezvous>,
    /// An offer that did not fit the caller's buffer, returned by the next call for
    /// the same peer.
    pub(crate) held_offer: Option<(tsunagi::session::PeerId, Vec<u8>)>,
}

impl tsunagi_endpoint {
    fn lock(&self) -> MutexGuard<'_, EndpointState> {
        // A panic while locked was already reported; the endpoint itself stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `f` on the endpoint behind `endpoint`, inside the panic guard.
pub(crate) fn with_endpoint(
    endpoint: *const tsunagi_endpoint,
    f: impl FnOnce(&mut EndpointState) -> Result<tsunagi_result, FfiError>,
) -> tsunagi_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a live pointer from tsunagi_endpoint_create;
        // `as_ref` turns NULL into None.
        let endpoint = unsafe { endpoint.as_ref() }.ok_or_else(|| FfiError::null("endpoint"))?;
        f(&mut endpoint.lock())
    })
}

/// Creates an endpoint and binds its sockets; `*out` receives the handle. `config` may
/// be NULL for the defaults, and is only read (free it yourself). Returns
/// `TSUNAGI_ERR_SOCKET` if the sockets cannot be bound (e.g. the port is in use).
/// With a relay server configured, the TURN allocation is requested in the background
/// (see `tsunagi_endpoint_relayed_addresses`). With a rendezvous server configured,
/// this blocks until registered (up to about 10 s) and returns `TSUNAGI_ERR_NETWORK`
/// if that fails. `TSUNAGI_ERR_INVALID_ARGUMENT` if a relay server has no credentials
/// or a rendezvous server no token; `TSUNAGI_ERR_NETWORK` if a server name does not
/// resolve.
/// Destroy the endpoint with `tsunagi_endpoint_destroy`.
///
/// # Safety
/// `config` is NULL or valid; `out` is a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_create(
    config: *const tsunagi_config,
    out: *mut *mut tsunagi_endpoint,
) -> tsunagi_result {
    guard(|| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: `out` is non-null and the caller promises it is writable.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller passes NULL or a live config; `as_ref` turns NULL into None.
        let settings = match unsafe { config.as_ref() } {
            Some(config) => config.lock().clone(),
            None => Default::default(),
        };
        crate::log::install(settings.log_level);
        if settings.relay_server.is_some() && settings.relay_credentials.is_none() {
            return Err(FfiError::invalid(
                "a relay server is set without credentials: call tsunagi_config_set_relay_credentials or tsunagi_config_set_relay_token",
            ));
        }
        if settings.rendezvous_server.is_some() && settings.relay_token.is_none() {
            return Err(FfiError::invalid(
                "a rendezvous server is set without a token: call tsunagi_config_set_relay_token",
            ));
        }
        let relay = match (&settings.relay_server, &settings.relay_credentials) {
            (Some(server), Some(credentials)) => Some((
                settings.resolve(server, "relay server")?,
                credentials.clone(),
            )),
            _ => None,
        };
        let rendezvous = match (&settings.rendezvous_server, &settings.relay_token) {
            (Some(server), Some(token)) => Some((
                settings.resolve(server, "rendezvous server")?,
                token.clone(),
            )),
            _ => None,
        };
        let session = settings.session_config()?;
        let identity = session.identity.clone();
        let endpoint = PollEndpoint::new(session)?;
        let relay_server = relay.map(|(server, credentials)| {
            // listen_via allocates on the rendezvous server itself; one allocation is enough.
            if rendezvous.as_ref().is_none_or(|(r, _)| *r != server) {
                endpoint
                    .endpoint()
                    .path_handle()
                    .add_relay(tsunagi::relay::Config::new(server, credentials));
            }
            server
        });
        let rendezvous = match rendezvous {
            Some((server, token)) => Some(endpoint.listen_via(server, &token).map_err(|e| {
                FfiError::new(
                    tsunagi_result::TSUNAGI_ERR_NETWORK,
                    format!("registering with the rendezvous server {server} failed: {e}"),
                )
            })?),
            None => None,
        };
        let handle = Box::new(tsunagi_endpoint {
            state: Mutex::new(EndpointState {
                endpoint,
                identity,
                held: None,
                relay_server: relay_server.or(rendezvous.as_ref().map(Rendezvous::server)),
                rendezvous,
                held_offer: None,
            }),
        });
        // SAFETY: checked non-null above.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(TSUNAGI_OK)
    })
}

/// Closes every session (peers see `TSUNAGI_DISCONNECT_CLOSED_BY_PEER`), stops the
/// networking thread and frees the endpoint; may block up to about a second while peers
/// are told. NULL is ignored. No other call on this endpoint may run at the same time
/// or afterwards.
///
/// # Safety
/// `endpoint` is NULL or came from `tsunagi_endpoint_create` and was not destroyed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_destroy(endpoint: *mut tsunagi_endpoint) {
    guard(|| {
        if !endpoint.is_null() {
            // SAFETY: the caller passes a pointer from Box::into_raw, destroyed only once.
            drop(unsafe { Box::from_raw(endpoint) });
        }
        Ok(TSUNAGI_OK)
    });
}

/// Writes this endpoint's peer id (`tsu…`, 58 characters plus NUL; a buffer of
/// `TSUNAGI_PEER_ID_SIZE` bytes always fits) into `buf`. Give it to other players.
///
/// # Safety
/// `endpoint` is valid; `buf` is NULL or has `len` writable bytes; `needed` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_peer_id(
    endpoint: *const tsunagi_endpoint,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        let id = state.endpoint.peer_id().to_string();
        // SAFETY: forwarded caller promises about buf, len and needed.
        unsafe { write_text(&id, buf, len, needed) }?;
        Ok(TSUNAGI_OK)
    })
}

/// Writes the 32-byte identity secret into `out` (`len` must be at least 32). Save it
/// like a password; `tsunagi_config_set_identity_bytes` restores the same peer id.
///
/// # Safety
/// `endpoint` is valid; `out` has `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_export_identity_bytes(
    endpoint: *const tsunagi_endpoint,
    out: *mut u8,
    len: usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        // SAFETY: the caller promises `len` writable bytes at `out`.
        let out = unsafe { out_buf(out, len, "out") }?;
        if out.len() < 32 {
            return Err(FfiError::new(
                tsunagi_result::TSUNAGI_ERR_BUFFER_TOO_SMALL,
                format!("buffer of {len} bytes is too small: the identity secret is 32 bytes"),
            ));
        }
        out[..32].copy_from_slice(&state.identity.secret_bytes());
        Ok(TSUNAGI_OK)
    })
}

/// Writes the identity secret as printable text (`tsusecret…` plus NUL) into `buf`;
/// `tsunagi_config_set_identity_text` restores it. Save it like a password.
///
/// # Safety
/// `endpoint` is valid; `buf` is NULL or has `len` writable bytes; `needed` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_export_identity_text(
    endpoint: *const tsunagi_endpoint,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        let secret = state.identity.to_secret_string();
        // SAFETY: forwarded caller promises about buf, len and needed.
        unsafe { write_text(&secret, buf, len, needed) }?;
        Ok(TSUNAGI_OK)
    })
}

/// Writes the local socket addresses, IPv6 first, comma-separated (e.g.
/// `[::1]:50123,127.0.0.1:50123`), into `buf`. An unspecified address (`0.0.0.0`, `[::]`)
/// means every local address on that port.
///
/// # Safety
/// `endpoint` is valid; `buf` is NULL or has `len` writable bytes; `needed` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_local_addresses(
    endpoint: *const tsunagi_endpoint,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        let addrs = state.endpoint.local_addrs();
        // SAFETY: forwarded caller promises about buf, len and needed.
        unsafe { write_addrs(&addrs, buf, len, needed) }?;
        Ok(TSUNAGI_OK)
    })
}

/// Starts connecting to `peer_id` (`tsu…`) at `addresses`: one or more `IP:port`
/// separated by commas (IPv6 is tried first, IPv4 50 ms later). Returns at once; the
/// outcome arrives as `TSUNAGI_EVENT_CONNECTED` or `TSUNAGI_EVENT_CONNECT_FAILED`. The
/// other player needs no call: incoming sessions appear as `TSUNAGI_EVENT_CONNECTED`.
///
/// # Safety
/// `endpoint` is valid; `peer_id` and `addresses` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_connect(
    endpoint: *const tsunagi_endpoint,
    peer_id: *const c_char,
    addresses: *const c_char,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        // SAFETY: the caller promises NUL-terminated strings.
        let (peer, addresses) = unsafe { (peer_arg(peer_id)?, str_arg(addresses, "addresses")?) };
        let addrs = parse_addrs(addresses)?;
        state.endpoint.connect(peer, addrs);
        Ok(TSUNAGI_OK)
    })
}

/// Starts connecting to `peer_id` (`tsu…`) through the rendezvous server set with
/// `tsunagi_config_set_rendezvous_server`: the other player must be registered with the
/// same server. No addresses are needed; the session starts over the relay and moves to
/// a direct path when one works. Returns at once; the outcome arrives as
/// `TSUNAGI_EVENT_CONNECTED` or `TSUNAGI_EVENT_CONNECT_FAILED`.
/// `TSUNAGI_ERR_INVALID_ARGUMENT` if no rendezvous server was configured.
///
/// # Safety
/// `endpoint` is valid; `peer_id` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_connect_peer(
    endpoint: *const tsunagi_endpoint,
    peer_id: *const c_char,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        // SAFETY: the caller promises a NUL-terminated string.
        let peer = unsafe { peer_arg(peer_id) }?;
        let rendezvous = state.rendezvous.as_ref().ok_or_else(|| {
            FfiError::invalid(
                "no rendezvous server is configured: set one with tsunagi_config_set_rendezvous_server (and a token), or use tsunagi_endpoint_connect with addresses",
            )
        })?;
        state.endpoint.connect_via(rendezvous, peer);
        Ok(TSUNAGI_OK)
    })
}

/// Writes this endpoint's relayed addresses on the configured relay server,
/// comma-separated, into `buf`; an empty string while the allocation is still being
/// made or when it failed. `TSUNAGI_ERR_INVALID_ARGUMENT` if no relay server (or
/// rendezvous server) was configured.
///
/// # Safety
/// `endpoint` is valid; `buf` is NULL or has `len` writable bytes; `needed` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_relayed_addresses(
    endpoint: *const tsunagi_endpoint,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        let server = state.relay_server.ok_or_else(|| {
            FfiError::invalid(
                "no relay server is configured: set one with tsunagi_config_set_relay_server",
            )
        })?;
        let relayed = match state.endpoint.endpoint().path_handle().relay(server) {
            Some(status) if status.allocated => status.relayed,
            _ => Vec::new(),
        };
        // SAFETY: forwarded caller promises about buf, len and needed.
        unsafe { write_addrs(&relayed, buf, len, needed) }?;
        Ok(TSUNAGI_OK)
    })
}

/// Queues a reliable message on `channel` (0 to channels-1), delivered in order within
/// the channel. The bytes are copied; `data` may be freed after the call. Never blocks:
/// `TSUNAGI_ERR_QUEUE_FULL` when the channel's queue is full.
///
/// # Safety
/// `endpoint` is valid; `peer_id` is a NUL-terminated string; `data` has `len` readable
/// bytes (may be NULL when `len` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_send_message(
    endpoint: *const tsunagi_endpoint,
    peer_id: *const c_char,
    channel: u16,
    data: *const u8,
    len: usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        // SAFETY: the caller promises a NUL-terminated string and `len` bytes at `data`.
        let (peer, bytes) = unsafe { (peer_arg(peer_id)?, bytes_arg(data, len, "data")?) };
        state.endpoint.send_message(peer, channel, bytes)?;
        Ok(TSUNAGI_OK)
    })
}

/// Sends an unreliable message (may be lost, duplicated never, reordered rarely). At most
/// `tsunagi_endpoint_datagram_limit` bytes, else `TSUNAGI_ERR_TOO_LARGE`. The bytes are
/// copied. Never blocks.
///
/// # Safety
/// `endpoint` is valid; `peer_id` is a NUL-terminated string; `data` has `len` readable
/// bytes (may be NULL when `len` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_send_datagram(
    endpoint: *const tsunagi_endpoint,
    peer_id: *const c_char,
    data: *const u8,
    len: usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        // SAFETY: the caller promises a NUL-terminated string and `len` bytes at `data`.
        let (peer, bytes) = unsafe { (peer_arg(peer_id)?, bytes_arg(data, len, "data")?) };
        state.endpoint.send_datagram(peer, bytes)?;
        Ok(TSUNAGI_OK)
    })
}

/// Stores in `*out` the largest unreliable message `peer_id` can be sent now (typically
/// about 1150 bytes; it can change when the path changes). `TSUNAGI_ERR_NOT_CONNECTED`
/// without a session.
///
/// # Safety
/// `endpoint` is valid; `peer_id` is a NUL-terminated string; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_datagram_limit(
    endpoint: *const tsunagi_endpoint,
    peer_id: *const c_char,
    out: *mut usize,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: the caller promises a NUL-terminated string.
        let peer = unsafe { peer_arg(peer_id) }?;
        let limit = state
            .endpoint
            .datagram_limit(peer)
            .ok_or_else(|| not_connected(peer))?;
        // SAFETY: non-null and the caller promises it is writable.
        unsafe { out.write(limit) };
        Ok(TSUNAGI_OK)
    })
}

fn not_connected(peer: tsunagi::session::PeerId) -> FfiError {
    FfiError::new(
        TSUNAGI_ERR_NOT_CONNECTED,
        format!("not connected to {peer}: connect first, or wait for TSUNAGI_EVENT_CONNECTED"),
    )
}

/// Fills `*out` with the statistics of the session with `peer_id` (path, RTT, loss,
/// bytes, datagram limit). `TSUNAGI_ERR_NOT_CONNECTED` without a session.
///
/// # Safety
/// `endpoint` is valid; `peer_id` is a NUL-terminated string; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_stats(
    endpoint: *const tsunagi_endpoint,
    peer_id: *const c_char,
    out: *mut tsunagi_stats,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: the caller promises a NUL-terminated string.
        let peer = unsafe { peer_arg(peer_id) }?;
        let stats = state
            .endpoint
            .stats(peer)
            .ok_or_else(|| not_connected(peer))?;
        let mut remote = [0 as c_char; ADDR_SIZE];
        fill_fixed(
            &stats.remote.map(|a| a.to_string()).unwrap_or_default(),
            &mut remote,
        );
        let value = tsunagi_stats {
            rtt_us: u64::try_from(stats.rtt.as_micros()).unwrap_or(u64::MAX),
            packets_sent: stats.packets_sent,
            packets_lost: stats.packets_lost,
            loss: stats.loss,
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            datagram_limit: stats.datagram_limit as u64,
            path: path_kind(stats.path),
            remote,
        };
        // SAFETY: non-null and the caller promises it is writable.
        unsafe { out.write(value) };
        Ok(TSUNAGI_OK)
    })
}

/// Ends the session with `peer_id`; the peer sees `TSUNAGI_DISCONNECT_CLOSED_BY_PEER`
/// with `reason` (may be NULL), and this side gets `TSUNAGI_EVENT_DISCONNECTED`.
/// Succeeds when there is no session.
///
/// # Safety
/// `endpoint` is valid; `peer_id` and `reason` (if not NULL) are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_endpoint_disconnect(
    endpoint: *const tsunagi_endpoint,
    peer_id: *const c_char,
    reason: *const c_char,
) -> tsunagi_result {
    with_endpoint(endpoint, |state| {
        // SAFETY: the caller promises NUL-terminated strings.
        let peer = unsafe { peer_arg(peer_id) }?;
        let reason = if reason.is_null() {
            ""
        } else {
            // SAFETY: non-null, and the caller promises a NUL-terminated string.
            unsafe { str_arg(reason, "reason") }?
        };
        state.endpoint.disconnect(peer, reason);
        Ok(TSUNAGI_OK)
    })
}
