//! Result codes, the per-thread last-error message, and the guard that keeps panics
//! and errors on the Rust side of the boundary.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use tsunagi::session::SessionError;

/// What a `tsunagi_*` call returned. `TSUNAGI_OK` and `TSUNAGI_NO_EVENT` are successes;
/// every negative value is an error, and `tsunagi_last_error()` then says what happened
/// and what to do.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tsunagi_result {
    /// Success.
    TSUNAGI_OK = 0,
    /// Success: `tsunagi_endpoint_poll_event` had no event waiting.
    TSUNAGI_NO_EVENT = 1,
    /// A required pointer argument was NULL.
    TSUNAGI_ERR_NULL_POINTER = -1,
    /// An argument is malformed: bad UTF-8, peer id, address, length or value.
    TSUNAGI_ERR_INVALID_ARGUMENT = -2,
    /// The caller's buffer is too small; the size needed was reported and nothing was lost.
    TSUNAGI_ERR_BUFFER_TOO_SMALL = -3,
    /// This build of the SDK cannot do that yet (see the function's documentation).
    TSUNAGI_ERR_NOT_SUPPORTED = -4,
    /// There is no live session with that peer: connect first or wait for `TSUNAGI_EVENT_CONNECTED`.
    TSUNAGI_ERR_NOT_CONNECTED = -5,
    /// The message is larger than allowed (datagram limit or maximum message size).
    TSUNAGI_ERR_TOO_LARGE = -6,
    /// The channel's send queue is full: send less often, or retry on a later tick.
    TSUNAGI_ERR_QUEUE_FULL = -7,
    /// The channel number is not below the configured channel count.
    TSUNAGI_ERR_NO_SUCH_CHANNEL = -8,
    /// The UDP sockets could not be opened (port in use, no such address family, ...).
    TSUNAGI_ERR_SOCKET = -9,
    /// A network operation failed (name resolution, the NAT check, the path layer).
    TSUNAGI_ERR_NETWORK = -10,
    /// The endpoint has shut down: destroy it and create a new one.
    TSUNAGI_ERR_CLOSED = -11,
    /// The peer does not accept unreliable messages: use a reliable channel.
    TSUNAGI_ERR_DATAGRAMS_UNAVAILABLE = -12,
    /// The endpoint has no socket of the address family needed (IPv4-only / IPv6-only mode).
    TSUNAGI_ERR_ADDRESS_FAMILY = -13,
    /// A bug in Tsunagi (a caught panic or a broken invariant): please report the message.
    TSUNAGI_ERR_INTERNAL = -99,
}

use tsunagi_result::*;

const ALL_RESULTS: [tsunagi_result; 16] = [
    TSUNAGI_OK,
    TSUNAGI_NO_EVENT,
    TSUNAGI_ERR_NULL_POINTER,
    TSUNAGI_ERR_INVALID_ARGUMENT,
    TSUNAGI_ERR_BUFFER_TOO_SMALL,
    TSUNAGI_ERR_NOT_SUPPORTED,
    TSUNAGI_ERR_NOT_CONNECTED,
    TSUNAGI_ERR_TOO_LARGE,
    TSUNAGI_ERR_QUEUE_FULL,
    TSUNAGI_ERR_NO_SUCH_CHANNEL,
    TSUNAGI_ERR_SOCKET,
    TSUNAGI_ERR_NETWORK,
    TSUNAGI_ERR_CLOSED,
    TSUNAGI_ERR_DATAGRAMS_UNAVAILABLE,
    TSUNAGI_ERR_ADDRESS_FAMILY,
    TSUNAGI_ERR_INTERNAL,
];

/// An error on its way to C: a code and a message that says what to do.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) code: tsunagi_result,
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(code: tsunagi_result, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Self {
        Self::new(
            TSUNAGI_ERR_NULL_POINTER,
            format!("`{what}` is NULL: pass a valid pointer"),
        )
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(TSUNAGI_ERR_INVALID_ARGUMENT, message)
    }
}

impl From<SessionError> for FfiError {
    fn from(e: SessionError) -> Self {
        use SessionError as E;
        let code = match &e {
            E::WrongPeer { .. } | E::ConnectTimedOut { .. } | E::ConnectFailed { .. } => {
                TSUNAGI_ERR_NETWORK
            }
            E::NoAddresses(_)
            | E::BadSignal(_)
            | E::OwnSignal
            | E::AnswerWithoutOffer(_)
            | E::UnknownAttempt { .. }
            | E::SignalRefused { .. } => TSUNAGI_ERR_INVALID_ARGUMENT,
            E::NoSocketForFamily { .. } => TSUNAGI_ERR_ADDRESS_FAMILY,
            E::Path(_) => TSUNAGI_ERR_NETWORK,
            E::NotConnected(_) => TSUNAGI_ERR_NOT_CONNECTED,
            E::DatagramTooLarge { .. } | E::MessageTooLarge { .. } => TSUNAGI_ERR_TOO_LARGE,
            E::DatagramsUnsupported => TSUNAGI_ERR_DATAGRAMS_UNAVAILABLE,
            E::NoSuchChannel { .. } => TSUNAGI_ERR_NO_SUCH_CHANNEL,
            E::SendQueueFull { .. } => TSUNAGI_ERR_QUEUE_FULL,
            E::Socket(_) | E::Quic(_) => TSUNAGI_ERR_SOCKET,
            E::Closed => TSUNAGI_ERR_CLOSED,
            E::Tls(_) | E::Runtime(_) => TSUNAGI_ERR_INTERNAL,
            // Variants added to the SDK later land here until mapped precisely.
            #[allow(unreachable_patterns)]
            _ => TSUNAGI_ERR_INTERNAL,
        };
        Self::new(code, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(message: &str) {
    // Interior NULs would cut the C string short; they never appear in our messages,
    // but a peer's disconnect reason could carry one.
    let clean: String = message.chars().filter(|c| *c != '\0').collect();
    let c = CString::new(clean).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = c);
}

/// Runs an entry point's body: a panic becomes `TSUNAGI_ERR_INTERNAL`, an error sets
/// the thread's last-error message. Never unwinds.
pub(crate) fn guard(body: impl FnOnce() -> Result<tsunagi_result, FfiError>) -> tsunagi_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_last_error(&format!(
                "internal error (a bug in Tsunagi, please report it with this text): {what}"
            ));
            TSUNAGI_ERR_INTERNAL
        }
    }
}

/// The message of the last error on the calling thread, as NUL-terminated UTF-8 (an
/// empty string if there was none). Successful calls leave it unchanged. The pointer
/// stays valid until the next failing `tsunagi_*` call on the same thread; copy the
/// text if you keep it. Never NULL; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn tsunagi_last_error() -> *const c_char {
    catch_unwind(|| LAST_ERROR.with(|slot| slot.borrow().as_ptr())).unwrap_or(c"".as_ptr())
}

/// The name of a result code (e.g. `"TSUNAGI_ERR_QUEUE_FULL"`), as a static string;
/// `"TSUNAGI_UNKNOWN_RESULT"` for a value that is not a `tsunagi_result`.
/// Never NULL; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn tsunagi_result_name(result: i32) -> *const c_char {
    // Taken as a plain integer: a C caller may pass any value, and an out-of-range
    // Rust enum would be undefined behaviour.
    let Some(result) = ALL_RESULTS.iter().copied().find(|r| *r as i32 == result) else {
        return c"TSUNAGI_UNKNOWN_RESULT".as_ptr();
    };
    let name = match result {
        TSUNAGI_OK => c"TSUNAGI_OK",
        TSUNAGI_NO_EVENT => c"TSUNAGI_NO_EVENT",
        TSUNAGI_ERR_NULL_POINTER => c"TSUNAGI_ERR_NULL_POINTER",
        TSUNAGI_ERR_INVALID_ARGUMENT => c"TSUNAGI_ERR_INVALID_ARGUMENT",
        TSUNAGI_ERR_BUFFER_TOO_SMALL => c"TSUNAGI_ERR_BUFFER_TOO_SMALL",
        TSUNAGI_ERR_NOT_SUPPORTED => c"TSUNAGI_ERR_NOT_SUPPORTED",
        TSUNAGI_ERR_NOT_CONNECTED => c"TSUNAGI_ERR_NOT_CONNECTED",
        TSUNAGI_ERR_TOO_LARGE => c"TSUNAGI_ERR_TOO_LARGE",
        TSUNAGI_ERR_QUEUE_FULL => c"TSUNAGI_ERR_QUEUE_FULL",
        TSUNAGI_ERR_NO_SUCH_CHANNEL => c"TSUNAGI_ERR_NO_SUCH_CHANNEL",
        TSUNAGI_ERR_SOCKET => c"TSUNAGI_ERR_SOCKET",
        TSUNAGI_ERR_NETWORK => c"TSUNAGI_ERR_NETWORK",
        TSUNAGI_ERR_CLOSED => c"TSUNAGI_ERR_CLOSED",
        TSUNAGI_ERR_DATAGRAMS_UNAVAILABLE => c"TSUNAGI_ERR_DATAGRAMS_UNAVAILABLE",
        TSUNAGI_ERR_ADDRESS_FAMILY => c"TSUNAGI_ERR_ADDRESS_FAMILY",
        TSUNAGI_ERR_INTERNAL => c"TSUNAGI_ERR_INTERNAL",
    };
    name.as_ptr()
}
