//! C ABI of Tsunagi. Every exported symbol is prefixed `tsunagi_`; the header is
//! `bindings/c/tsunagi.h`, generated from this crate by cbindgen.
//!
//! Rules every entry point keeps:
//! - a panic never crosses the boundary: it becomes `TSUNAGI_ERR_INTERNAL`;
//! - NULL pointers and impossible lengths are rejected with an error code;
//! - errors set a per-thread message (`tsunagi_last_error`) that says what to do;
//! - output goes into caller-owned buffers; a short buffer gets
//!   `TSUNAGI_ERR_BUFFER_TOO_SMALL` and the size needed, never an overrun;
//! - handles are thread-safe (a lock inside); no callbacks are required.
#![allow(non_camel_case_types)]

mod buffers;
mod config;
mod endpoint;
mod error;
mod event;
mod log;
mod natcheck;
mod relay;
mod types;

#[cfg(test)]
mod tests;

use std::ffi::c_char;

pub use config::tsunagi_config;
pub use endpoint::tsunagi_endpoint;
pub use error::tsunagi_result;
pub use log::tsunagi_log_level;
pub use types::{
    TSUNAGI_ADDRESS_SIZE, TSUNAGI_IDENTITY_SIZE, TSUNAGI_PEER_ID_SIZE, TSUNAGI_SIGNAL_MAX_SIZE,
    tsunagi_disconnect_reason, tsunagi_event, tsunagi_event_kind, tsunagi_path_kind, tsunagi_stats,
};

pub use config::*;
pub use endpoint::*;
pub use error::{tsunagi_last_error, tsunagi_result_name};
pub use event::*;
pub use log::tsunagi_config_set_log_level;
pub use natcheck::*;
pub use relay::*;

static VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Returns the library version as a static, NUL-terminated UTF-8 string
/// (`"MAJOR.MINOR.PATCH"`). The caller must not free it.
#[unsafe(no_mangle)]
pub extern "C" fn tsunagi_version() -> *const c_char {
    VERSION_C.as_ptr().cast()
}
