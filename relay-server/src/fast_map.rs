//! Hash maps for the per-datagram lookups (allocation by 5-tuple, by relayed
//! address and by id; permissions; channels; a worker's sockets).
//!
//! The standard library's SipHash-1-3 costs more than the rest of a lookup for
//! these small keys. `foldhash` is several times faster and, seeded per
//! process from the OS's randomness, still keeps the table layout secret:
//! clients choose their source ports and peer addresses, so an unkeyed hash
//! (FxHash and the like) would let them aim at one bucket. foldhash's seeding
//! is "minimally DoS-resistant" — enough here, since every key that lands in
//! these tables costs an authenticated request, and each table is bounded
//! (allocations, permissions and channels by quotas). See
//! `docs/src/decisions/0005-relay-fast-path.md`.

use std::collections::HashMap;

/// A `HashMap` with a per-process random `foldhash` seed.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
