//! C ABI of Tsunagi. Every exported symbol is prefixed `tsunagi_`.
//!
//! Only the version query exists so far; the endpoint API arrives with the
//! connection engine.

use std::ffi::c_char;

static VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Returns the library version as a static, NUL-terminated UTF-8 string
/// (`"MAJOR.MINOR.PATCH"`). The caller must not free it.
#[unsafe(no_mangle)]
pub extern "C" fn tsunagi_version() -> *const c_char {
    VERSION_C.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_is_nul_terminated_and_matches_the_sdk() {
        // SAFETY: tsunagi_version returns a pointer to a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(tsunagi_version()) };
        assert_eq!(v.to_str().unwrap(), tsunagi::VERSION);
    }
}
