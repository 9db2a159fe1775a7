//! The per-network cache of NAT session timers: memory for tests, a small JSON
//! file in the user's cache directory for games.

use std::fs;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Entries a cache keeps at most (oldest dropped first).
const MAX_ENTRIES: usize = 64;
/// The largest cache file read.
const MAX_FILE: u64 = 64 * 1024;

/// Which network a timer belongs to: the local gateway or prefix (e.g. the
/// default gateway's address, or the interface's /64) and the mapped IP the
/// STUN server saw. The same home router behind a new public IP counts as a
/// new network (the carrier's NAT may differ).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NetworkKey {
    /// The local gateway or prefix, as text.
    pub local: String,
    /// The mapped (public) IP, if known.
    pub mapped_ip: Option<IpAddr>,
}

impl NetworkKey {
    /// A key from the gateway or prefix and the mapped IP.
    pub fn new(local: impl Into<String>, mapped_ip: Option<IpAddr>) -> NetworkKey {
        NetworkKey {
            local: local.into(),
            mapped_ip,
        }
    }
}

/// A cached session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedTimer {
    /// The timer, in milliseconds.
    pub timer_ms: u64,
}

impl CachedTimer {
    /// From a duration.
    pub fn from_duration(d: Duration) -> CachedTimer {
        CachedTimer {
            timer_ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// As a duration (`None` for zero).
    pub fn timer(&self) -> Option<Duration> {
        (self.timer_ms > 0).then(|| Duration::from_millis(self.timer_ms))
    }
}

/// Where timers are remembered between sessions.
pub trait LifetimeCache: std::fmt::Debug {
    /// The timer remembered for this network.
    fn get(&self, key: &NetworkKey) -> Option<CachedTimer>;
    /// Remembers a timer (best effort: a cache that cannot write logs and
    /// forgets).
    fn put(&mut self, key: NetworkKey, value: CachedTimer);
}

/// A cache in memory (tests, or platforms without a cache directory).
#[derive(Debug, Clone, Default)]
pub struct MemoryCache {
    entries: Vec<(NetworkKey, CachedTimer)>,
}

impl LifetimeCache for MemoryCache {
    fn get(&self, key: &NetworkKey) -> Option<CachedTimer> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    fn put(&mut self, key: NetworkKey, value: CachedTimer) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push((key, value));
        while self.entries.len() > MAX_ENTRIES {
            self.entries.remove(0);
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileBody {
    version: u32,
    entries: Vec<(NetworkKey, CachedTimer)>,
}

/// A cache in a small JSON file (`tsunagi/nat-timers.json` in the user's cache
/// directory). Unreadable or corrupt files count as empty.
#[derive(Debug, Clone)]
pub struct FileCache {
    path: PathBuf,
    memory: MemoryCache,
}

impl FileCache {
    /// The cache at `path` (loaded now).
    pub fn open(path: impl Into<PathBuf>) -> FileCache {
        let path = path.into();
        let memory = MemoryCache {
            entries: load(&path).unwrap_or_default(),
        };
        FileCache { path, memory }
    }

    /// The cache in the user's cache directory (`$XDG_CACHE_HOME`,
    /// `~/.cache`, `~/Library/Caches` or `%LOCALAPPDATA%`), or `None` when
    /// there is none.
    pub fn in_user_cache_dir() -> Option<FileCache> {
        Some(FileCache::open(
            user_cache_dir()?.join("tsunagi").join("nat-timers.json"),
        ))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl LifetimeCache for FileCache {
    fn get(&self, key: &NetworkKey) -> Option<CachedTimer> {
        self.memory.get(key)
    }

    fn put(&mut self, key: NetworkKey, value: CachedTimer) {
        self.memory.put(key, value);
        let body = FileBody {
            version: 1,
            entries: self.memory.entries.clone(),
        };
        let written = serde_json::to_vec(&body)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                if let Some(dir) = self.path.parent() {
                    fs::create_dir_all(dir)?;
                }
                fs::write(&self.path, bytes)
            });
        if let Err(e) = written {
            tracing::debug!(path = %self.path.display(), error = %e, "NAT timer cache not written");
        }
    }
}

fn load(path: &Path) -> Option<Vec<(NetworkKey, CachedTimer)>> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_FILE)
        .read_to_end(&mut bytes)
        .ok()?;
    let body: FileBody = serde_json::from_slice(&bytes).ok()?;
    let mut entries = body.entries;
    let excess = entries.len().saturating_sub(MAX_ENTRIES);
    entries.drain(..excess);
    Some(entries)
}

fn user_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if cfg!(windows) {
        return env("LOCALAPPDATA");
    }
    if cfg!(target_os = "macos") {
        return env("HOME").map(|h| h.join("Library").join("Caches"));
    }
    env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn file_cache_round_trips_and_survives_garbage() {
        let dir = std::env::temp_dir().join(format!("tsunagi-keepalive-{}", std::process::id()));
        let path = dir.join("t.json");
        let key = NetworkKey::new("fe80::1", None);
        let mut c = FileCache::open(&path);
        assert_eq!(c.get(&key), None);
        c.put(
            key.clone(),
            CachedTimer::from_duration(Duration::from_secs(30)),
        );
        assert_eq!(
            FileCache::open(&path).get(&key).unwrap().timer(),
            Some(Duration::from_secs(30))
        );
        fs::write(&path, b"{not json").unwrap();
        assert_eq!(FileCache::open(&path).get(&key), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_cache_is_bounded() {
        let mut c = MemoryCache::default();
        for i in 0..100 {
            c.put(
                NetworkKey::new(format!("gw{i}"), None),
                CachedTimer { timer_ms: 1000 },
            );
        }
        assert_eq!(c.entries.len(), MAX_ENTRIES);
        assert!(c.get(&NetworkKey::new("gw0", None)).is_none());
        assert!(c.get(&NetworkKey::new("gw99", None)).is_some());
    }
}
