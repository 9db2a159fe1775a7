//! `tsunagi_config`: named settings for a new endpoint, in the style of
//! GameNetworkingSockets' configuration values.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tsunagi::relay::Credentials;
use tsunagi::session::{Identity, SessionConfig};

use crate::buffers::{bytes_arg, str_arg};
use crate::error::tsunagi_result::{self, TSUNAGI_OK};
use crate::error::{FfiError, guard};
use crate::log::LogLevel;

/// Settings for `tsunagi_endpoint_create`. Create with `tsunagi_config_new`, change with
/// the `tsunagi_config_set_*` functions, free with `tsunagi_config_free`. Safe to use
/// from several threads (a lock inside).
#[derive(Debug, Default)]
pub struct tsunagi_config {
    state: Mutex<ConfigState>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ConfigState {
    pub(crate) identity: Option<Identity>,
    pub(crate) ipv4_only: bool,
    pub(crate) ipv6_only: bool,
    pub(crate) loopback_only: bool,
    pub(crate) bind_port: u16,
    pub(crate) log_level: LogLevel,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) channels: Option<u16>,
    /// Relay server as given (`host:port`), resolved at endpoint creation.
    pub(crate) relay_server: Option<String>,
    /// From a username and password or from a token.
    pub(crate) relay_credentials: Option<Credentials>,
    /// The token behind `relay_credentials`, if set as one (the rendezvous needs it).
    pub(crate) relay_token: Option<String>,
    /// Rendezvous server as given (`host:port`), resolved at endpoint creation.
    pub(crate) rendezvous_server: Option<String>,
    /// The NAT's UDP session timer, if the game knows it.
    pub(crate) nat_timer: Option<Duration>,
}

impl ConfigState {
    /// The SDK configuration, generating an identity if none was set.
    pub(crate) fn session_config(&self) -> Result<SessionConfig, FfiError> {
        let identity = match &self.identity {
            Some(identity) => identity.clone(),
            None => Identity::generate()
                .map_err(|e| FfiError::new(tsunagi_result::TSUNAGI_ERR_INTERNAL, e.to_string()))?,
        };
        let mut config = SessionConfig::new(identity);
        let (v4, v6): (IpAddr, IpAddr) = if self.loopback_only {
            (Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into())
        } else {
            (Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into())
        };
        config.sockets.v4 = (!self.ipv6_only).then(|| SocketAddr::new(v4, self.bind_port));
        config.sockets.v6 = (!self.ipv4_only).then(|| SocketAddr::new(v6, self.bind_port));
        if let Some(timeout) = self.connect_timeout {
            config.connect_timeout = timeout;
        }
        if let Some(channels) = self.channels {
            config.channels = channels;
        }
        config.paths.nat_timer = self.nat_timer;
        Ok(config)
    }

    /// Resolves `host:port` to an address of a family this endpoint has a socket for.
    pub(crate) fn resolve(&self, server: &str, what: &str) -> Result<SocketAddr, FfiError> {
        let addrs = server.to_socket_addrs().map_err(|e| {
            FfiError::new(
                tsunagi_result::TSUNAGI_ERR_NETWORK,
                format!("{what} \"{server}\" could not be resolved: {e}"),
            )
        })?;
        let mut usable =
            addrs.filter(|a| (a.is_ipv4() && !self.ipv6_only) || (a.is_ipv6() && !self.ipv4_only));
        usable.next().ok_or_else(|| {
            FfiError::new(
                tsunagi_result::TSUNAGI_ERR_ADDRESS_FAMILY,
                format!(
                    "{what} \"{server}\" has no address of the family this endpoint uses (IPv4-only / IPv6-only mode)"
                ),
            )
        })
    }
}

impl tsunagi_config {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ConfigState> {
        // A panic while locked was already reported; the settings themselves stay valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `f` on the config behind `config`, inside the panic guard.
pub(crate) fn with_config(
    config: *mut tsunagi_config,
    f: impl FnOnce(&mut ConfigState) -> Result<tsunagi_result, FfiError>,
) -> tsunagi_result {
    guard(|| {
        // SAFETY: the caller passes NULL or a pointer from tsunagi_config_new that was
        // not freed; `as_ref` turns NULL into None.
        let config = unsafe { config.as_ref() }.ok_or_else(|| FfiError::null("config"))?;
        f(&mut config.lock())
    })
}

/// Creates a configuration with the defaults: a new random identity, both IPv4 and
/// IPv6 on all local addresses, an OS-chosen port, 8 reliable channels, a 10 s connect
/// timeout, logging off. Free it with `tsunagi_config_free` (an endpoint created from
/// it keeps its own copy). Returns NULL only if memory ran out or on an internal error
/// (see `tsunagi_last_error`).
#[unsafe(no_mangle)]
pub extern "C" fn tsunagi_config_new() -> *mut tsunagi_config {
    let mut out = std::ptr::null_mut();
    guard(|| {
        out = Box::into_raw(Box::<tsunagi_config>::default());
        Ok(TSUNAGI_OK)
    });
    out
}

/// Frees a configuration. NULL is ignored. Do not use `config` afterwards.
///
/// # Safety
/// `config` is NULL or came from `tsunagi_config_new` and was not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_free(config: *mut tsunagi_config) {
    guard(|| {
        if !config.is_null() {
            // SAFETY: the caller passes a pointer from Box::into_raw, freed only once.
            drop(unsafe { Box::from_raw(config) });
        }
        Ok(TSUNAGI_OK)
    });
}

/// Sets the player's identity from its 32-byte secret (as exported by
/// `tsunagi_endpoint_export_identity_bytes`). `len` must be 32. Without it, each
/// endpoint gets a new random identity (a new peer id).
///
/// # Safety
/// `config` is valid; `secret` points to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_identity_bytes(
    config: *mut tsunagi_config,
    secret: *const u8,
    len: usize,
) -> tsunagi_result {
    with_config(config, |state| {
        // SAFETY: the caller promises `len` readable bytes at `secret`.
        let bytes = unsafe { bytes_arg(secret, len, "secret") }?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| {
            FfiError::invalid(format!(
                "identity secret is {len} bytes, expected 32: pass the bytes exported by tsunagi_endpoint_export_identity_bytes"
            ))
        })?;
        let identity =
            Identity::from_secret_bytes(seed).map_err(|e| FfiError::invalid(e.to_string()))?;
        state.identity = Some(identity);
        Ok(TSUNAGI_OK)
    })
}

/// Sets the player's identity from its printable secret (`tsusecret…`, as exported by
/// `tsunagi_endpoint_export_identity_text`).
///
/// # Safety
/// `config` is valid; `secret` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_identity_text(
    config: *mut tsunagi_config,
    secret: *const std::ffi::c_char,
) -> tsunagi_result {
    with_config(config, |state| {
        // SAFETY: the caller promises a NUL-terminated string.
        let text = unsafe { str_arg(secret, "secret") }?;
        let identity = Identity::from_secret_string(text.trim())
            .map_err(|e| FfiError::invalid(format!("identity secret is not valid: {e}")))?;
        state.identity = Some(identity);
        Ok(TSUNAGI_OK)
    })
}

/// IPv4-only mode, for console builds without IPv6: no IPv6 socket is opened. Such a
/// build still meets IPv6-only players through a relay that bridges address families
/// (see the integration guide). Fails with `TSUNAGI_ERR_INVALID_ARGUMENT` if IPv6-only
/// mode is on.
///
/// # Safety
/// `config` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_ipv4_only(
    config: *mut tsunagi_config,
    enabled: bool,
) -> tsunagi_result {
    with_config(config, |state| {
        if enabled && state.ipv6_only {
            return Err(FfiError::invalid(
                "IPv4-only and IPv6-only cannot both be on: turn IPv6-only off first",
            ));
        }
        state.ipv4_only = enabled;
        Ok(TSUNAGI_OK)
    })
}

/// IPv6-only mode: no IPv4 socket is opened. Fails with
/// `TSUNAGI_ERR_INVALID_ARGUMENT` if IPv4-only mode is on.
///
/// # Safety
/// `config` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_ipv6_only(
    config: *mut tsunagi_config,
    enabled: bool,
) -> tsunagi_result {
    with_config(config, |state| {
        if enabled && state.ipv4_only {
            return Err(FfiError::invalid(
                "IPv6-only and IPv4-only cannot both be on: turn IPv4-only off first",
            ));
        }
        state.ipv6_only = enabled;
        Ok(TSUNAGI_OK)
    })
}

/// Binds only the loopback addresses (127.0.0.1 and ::1): for tests and local demos.
///
/// # Safety
/// `config` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_loopback_only(
    config: *mut tsunagi_config,
    enabled: bool,
) -> tsunagi_result {
    with_config(config, |state| {
        state.loopback_only = enabled;
        Ok(TSUNAGI_OK)
    })
}

/// The UDP port to bind (both families use the same number). 0, the default, lets the
/// OS choose, which is what games should do: fixed ports collide behind shared NATs.
///
/// # Safety
/// `config` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_bind_port(
    config: *mut tsunagi_config,
    port: u16,
) -> tsunagi_result {
    with_config(config, |state| {
        state.bind_port = port;
        Ok(TSUNAGI_OK)
    })
}

/// How long a connect attempt may take before `TSUNAGI_EVENT_CONNECT_FAILED`, in
/// milliseconds (default 10000). Must be between 1 and 600000.
///
/// # Safety
/// `config` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_connect_timeout_ms(
    config: *mut tsunagi_config,
    milliseconds: u32,
) -> tsunagi_result {
    with_config(config, |state| {
        if !(1..=600_000).contains(&milliseconds) {
            return Err(FfiError::invalid(format!(
                "connect timeout of {milliseconds} ms is out of range: pass 1 to 600000"
            )));
        }
        state.connect_timeout = Some(Duration::from_millis(u64::from(milliseconds)));
        Ok(TSUNAGI_OK)
    })
}

/// The NAT's UDP session timer in milliseconds, if the game knows it (the binding
/// lifetime `tsunagi natcheck` measured on this network, or one the game remembered for
/// it); 0, the default, means unknown. Keepalives toward the relay and the rendezvous
/// server then come at 40 % of it instead of every 15 s (the SDK also shortens them by
/// itself when it sees a mapping expire). Must be 0 or between 1000 and 3600000.
///
/// # Safety
/// `config` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_nat_timer_ms(
    config: *mut tsunagi_config,
    milliseconds: u32,
) -> tsunagi_result {
    with_config(config, |state| {
        if milliseconds != 0 && !(1_000..=3_600_000).contains(&milliseconds) {
            return Err(FfiError::invalid(format!(
                "NAT timer of {milliseconds} ms is out of range: pass 0 (unknown) or 1000 to 3600000"
            )));
        }
        state.nat_timer =
            (milliseconds != 0).then(|| Duration::from_millis(u64::from(milliseconds)));
        Ok(TSUNAGI_OK)
    })
}

/// Number of reliable channels, numbered from 0 (default 8, at most 256). Both players
/// must use the same number.
///
/// # Safety
/// `config` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_channels(
    config: *mut tsunagi_config,
    channels: u16,
) -> tsunagi_result {
    with_config(config, |state| {
        if !(1..=256).contains(&channels) {
            return Err(FfiError::invalid(format!(
                "{channels} channels is out of range: pass 1 to 256"
            )));
        }
        state.channels = Some(channels);
        Ok(TSUNAGI_OK)
    })
}
