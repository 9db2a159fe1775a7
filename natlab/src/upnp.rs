//! UPnP-IGD / NAT-PMP / PCP on a site router with miniupnpd.

use crate::Error;
use crate::lab::Lab;

/// Starts miniupnpd on `router`.
pub(crate) fn start(_lab: &mut Lab, router: &str, _index: u8) -> Result<(), Error> {
    Err(Error::Topology(format!(
        "{router}: UPnP sites are not built yet"
    )))
}
