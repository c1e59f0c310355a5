//! Where the cache lives.

use std::path::{Path, PathBuf};

/// Environment variable overriding the cache location.
pub const CACHE_ENV: &str = "IPFS_ACCELERATE_CACHE";

/// The cache root: `$IPFS_ACCELERATE_CACHE` if set and non-empty, else
/// `~/.cache/ipfs_accelerate`.
pub fn cache_dir() -> PathBuf {
    let env = std::env::var(CACHE_ENV).ok();
    cache_dir_from(env.as_deref(), dirs::home_dir().as_deref())
}

/// Pure form of [`cache_dir`]: `env_value` is the variable's value, `home`
/// the home directory. Without a home directory the system temp dir is used,
/// since a cache must live somewhere writable.
pub fn cache_dir_from(env_value: Option<&str>, home: Option<&Path>) -> PathBuf {
    match env_value {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => match home {
            Some(h) => h.join(".cache").join("ipfs_accelerate"),
            None => std::env::temp_dir().join("ipfs_accelerate"),
        },
    }
}
