//! Tsunagi (つなぎ): a peer-to-peer networking SDK for games.
//!
//! The connection engine is built module by module (see `docs/` and the
//! architecture in the repository). What exists today is listed below; nothing
//! else is exported yet.

/// The SDK's version, as `MAJOR.MINOR.PATCH`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod diag;
pub mod ice;
pub mod keepalive;
pub mod mape;
pub mod relay;
pub mod session;

pub mod stun;

pub mod path;
pub mod signal;
pub mod sim;
pub mod socket;
