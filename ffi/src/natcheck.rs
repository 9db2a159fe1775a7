//! The NAT diagnosis as JSON, for support screens and bug reports.

use std::cell::RefCell;
use std::ffi::c_char;

use tsunagi::diag::{CancelFlag, DiagConfig, DiagError, run_blocking};

use crate::buffers::{str_arg, write_text};
use crate::error::tsunagi_result::{
    self, TSUNAGI_ERR_NETWORK, TSUNAGI_ERR_NOT_SUPPORTED, TSUNAGI_OK,
};
use crate::error::{FfiError, guard};

thread_local! {
    /// The last report produced on this thread, for a second try with a larger buffer.
    static LAST_REPORT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Diagnoses this network's NAT against an RFC 5780 STUN server (`host:port`, e.g. a
/// `tsunagi-relay` started with two addresses) and writes the report as JSON (schema v1,
/// see the natcheck docs) into `buf`, NUL-terminated; `*needed` gets the size needed.
///
/// BLOCKING: takes a few seconds with `quick` true, a minute or more without (the
/// session-timer search). Call it from a worker thread, never the game thread. It opens
/// its own sockets and runtime and needs no endpoint. If `buf` is too small the call
/// returns `TSUNAGI_ERR_BUFFER_TOO_SMALL` and the report is kept: fetch it with
/// `tsunagi_natcheck_last_report` instead of running the check again (16 KiB is always
/// plenty).
///
/// # Safety
/// `server` is a NUL-terminated string; `buf` is NULL or has `len` writable bytes;
/// `needed` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_natcheck(
    server: *const c_char,
    quick: bool,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> tsunagi_result {
    guard(|| {
        // SAFETY: the caller promises a NUL-terminated string.
        let server = unsafe { str_arg(server, "server") }?.trim();
        if server.is_empty() {
            return Err(FfiError::invalid(
                "the STUN server is empty: pass host:port of an RFC 5780 STUN server",
            ));
        }
        let config = DiagConfig {
            quick,
            ..DiagConfig::new(server)
        };
        let report = run_blocking(&config, |_| {}, &CancelFlag::default()).map_err(diag_error)?;
        let json = report.to_json_pretty();
        LAST_REPORT.with(|slot| *slot.borrow_mut() = Some(json.clone()));
        // SAFETY: forwarded caller promises about buf, len and needed.
        unsafe { write_text(&json, buf, len, needed) }?;
        Ok(TSUNAGI_OK)
    })
}

/// Copies the last report `tsunagi_natcheck` produced on this thread (JSON plus NUL)
/// into `buf`. `TSUNAGI_ERR_NOT_SUPPORTED` if no check completed on this thread yet.
///
/// # Safety
/// `buf` is NULL or has `len` writable bytes; `needed` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_natcheck_last_report(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> tsunagi_result {
    guard(|| {
        let json = LAST_REPORT
            .with(|slot| slot.borrow().clone())
            .ok_or_else(|| {
                FfiError::new(
                    TSUNAGI_ERR_NOT_SUPPORTED,
                    "no NAT check has completed on this thread: call tsunagi_natcheck first",
                )
            })?;
        // SAFETY: forwarded caller promises about buf, len and needed.
        unsafe { write_text(&json, buf, len, needed) }?;
        Ok(TSUNAGI_OK)
    })
}

fn diag_error(e: DiagError) -> FfiError {
    FfiError::new(TSUNAGI_ERR_NETWORK, format!("NAT check failed: {e}"))
}
