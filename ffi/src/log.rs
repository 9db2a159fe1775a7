//! Logging: the SDK's `tracing` output, written to stderr at the configured level.

use crate::config::with_config;
use crate::error::FfiError;
use crate::error::tsunagi_result::{self, TSUNAGI_OK};

/// How much the SDK logs to stderr.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum tsunagi_log_level {
    /// No logging (the default).
    #[default]
    TSUNAGI_LOG_OFF = 0,
    /// Errors only.
    TSUNAGI_LOG_ERROR = 1,
    /// Errors and warnings.
    TSUNAGI_LOG_WARN = 2,
    /// Connections, path changes and the like.
    TSUNAGI_LOG_INFO = 3,
    /// Details for debugging a connection.
    TSUNAGI_LOG_DEBUG = 4,
    /// Everything, packet by packet.
    TSUNAGI_LOG_TRACE = 5,
}

pub(crate) type LogLevel = tsunagi_log_level;

impl tsunagi_log_level {
    fn from_i32(level: i32) -> Option<Self> {
        use tsunagi_log_level::*;
        Some(match level {
            0 => TSUNAGI_LOG_OFF,
            1 => TSUNAGI_LOG_ERROR,
            2 => TSUNAGI_LOG_WARN,
            3 => TSUNAGI_LOG_INFO,
            4 => TSUNAGI_LOG_DEBUG,
            5 => TSUNAGI_LOG_TRACE,
            _ => return None,
        })
    }

    fn filter(self) -> Option<tracing::Level> {
        use tsunagi_log_level::*;
        match self {
            TSUNAGI_LOG_OFF => None,
            TSUNAGI_LOG_ERROR => Some(tracing::Level::ERROR),
            TSUNAGI_LOG_WARN => Some(tracing::Level::WARN),
            TSUNAGI_LOG_INFO => Some(tracing::Level::INFO),
            TSUNAGI_LOG_DEBUG => Some(tracing::Level::DEBUG),
            TSUNAGI_LOG_TRACE => Some(tracing::Level::TRACE),
        }
    }
}

/// Installs the process-wide stderr logger the first time a level other than OFF is
/// used. A logger set earlier (by the game or an earlier endpoint) is kept.
pub(crate) fn install(level: LogLevel) {
    if let Some(level) = level.filter() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Log level of the SDK's messages on stderr (a `tsunagi_log_level` value; default
/// `TSUNAGI_LOG_OFF`). Logging is process-wide: the first endpoint created with a level
/// other than OFF installs the logger and its level stays for the life of the process.
///
/// # Safety
/// `config` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tsunagi_config_set_log_level(
    config: *mut crate::config::tsunagi_config,
    level: i32,
) -> tsunagi_result {
    with_config(config, |state| {
        state.log_level = tsunagi_log_level::from_i32(level).ok_or_else(|| {
            FfiError::invalid(format!(
                "log level {level} is unknown: pass TSUNAGI_LOG_OFF (0) to TSUNAGI_LOG_TRACE (5)"
            ))
        })?;
        Ok(TSUNAGI_OK)
    })
}
