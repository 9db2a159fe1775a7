//! Reading the caller's arguments and writing into the caller's buffers, with every
//! pointer and length checked before use.

use std::ffi::{CStr, c_char};
use std::net::SocketAddr;

use tsunagi::session::PeerId;

use crate::error::FfiError;
use crate::error::tsunagi_result::TSUNAGI_ERR_BUFFER_TOO_SMALL;

/// Borrows a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-null, and the caller promises a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|_| FfiError::invalid(format!("`{what}` is not valid UTF-8: pass UTF-8 text")))
}

/// Borrows `len` bytes at `ptr` (`ptr` may be NULL when `len` is 0).
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!(
            "length {len} of `{what}` is impossible: pass the real size in bytes"
        )));
    }
    // SAFETY: non-null, len ≤ isize::MAX, and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Checks an output buffer and returns it as a slice (empty when `len` is 0).
///
/// # Safety
/// `ptr` is NULL or points to `len` writable bytes that outlive `'a`.
pub(crate) unsafe fn out_buf<'a>(
    ptr: *mut u8,
    len: usize,
    what: &str,
) -> Result<&'a mut [u8], FfiError> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!(
            "length {len} of `{what}` is impossible: pass the real size in bytes"
        )));
    }
    // SAFETY: non-null, len ≤ isize::MAX, and the caller promises `len` writable bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Writes `text` and a NUL into `buf` of `len` bytes and stores the size needed (text
/// plus NUL) in `*needed` when `needed` is not NULL. `buf` may be NULL with `len` 0 to
/// query the size; a short buffer is left untouched and gets `TSUNAGI_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes; `needed` is NULL or writable.
pub(crate) unsafe fn write_text(
    text: &str,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> Result<(), FfiError> {
    let size = text.len() + 1;
    if !needed.is_null() {
        // SAFETY: non-null and the caller promises it is writable.
        unsafe { needed.write(size) };
    }
    // SAFETY: forwarded caller promise about `buf` and `len`.
    let out = unsafe { out_buf(buf.cast(), len, "buf") }?;
    if out.len() < size {
        return Err(FfiError::new(
            TSUNAGI_ERR_BUFFER_TOO_SMALL,
            format!(
                "buffer of {len} bytes is too small: {size} bytes are needed (reported in `needed`)"
            ),
        ));
    }
    out[..text.len()].copy_from_slice(text.as_bytes());
    out[text.len()] = 0;
    Ok(())
}

/// Writes `addrs` comma-separated (e.g. `[::1]:50123,127.0.0.1:50123`) as `write_text`
/// does; no addresses make an empty string.
///
/// # Safety
/// As `write_text`.
pub(crate) unsafe fn write_addrs(
    addrs: &[SocketAddr],
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> Result<(), FfiError> {
    let text = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    // SAFETY: forwarded caller promises about buf, len and needed.
    unsafe { write_text(&text.join(","), buf, len, needed) }
}

/// Copies `text` into a fixed C char array, cut to fit, always NUL-terminated.
pub(crate) fn fill_fixed(text: &str, out: &mut [c_char]) {
    let n = text.len().min(out.len().saturating_sub(1));
    for (dst, src) in out.iter_mut().zip(&text.as_bytes()[..n]) {
        *dst = *src as c_char;
    }
    for dst in out.iter_mut().skip(n) {
        *dst = 0;
    }
}

/// Parses a printed peer id (`tsu…`).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn peer_arg(ptr: *const c_char) -> Result<PeerId, FfiError> {
    // SAFETY: forwarded caller promise.
    let text = unsafe { str_arg(ptr, "peer_id") }?;
    text.trim()
        .parse()
        .map_err(|e| FfiError::invalid(format!("peer id \"{text}\" is not valid: {e}")))
}

/// Parses a list of `IP:port` addresses separated by commas, semicolons or whitespace.
pub(crate) fn parse_addrs(text: &str) -> Result<Vec<SocketAddr>, FfiError> {
    let addrs = text
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<SocketAddr>().map_err(|_| {
                FfiError::invalid(format!(
                    "address \"{s}\" is not IP:port (examples: 192.0.2.7:4000, [2001:db8::7]:4000); host names are not resolved"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(FfiError::invalid(
            "the address list is empty: pass at least one IP:port of the peer, comma-separated",
        ));
    }
    Ok(addrs)
}
