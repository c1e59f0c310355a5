//! Hit/miss counters per lookup layer, in-process and persisted.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::Store;

/// Where a model file was looked for, in lookup order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// A folder given by the user.
    LocalFolder,
    /// This content-addressed cache.
    Cache,
    /// The Hugging Face hub's own local cache.
    HubCache,
    /// The IPFS network.
    Ipfs,
    /// The Hugging Face hub over HTTP.
    Hub,
    /// Made here: an ONNX graph exported from the model's weights on first
    /// use (a later load finds it in [`Layer::Cache`]).
    Export,
}

impl Layer {
    /// Every layer, in lookup order.
    pub const ALL: [Layer; 6] = [
        Layer::LocalFolder,
        Layer::Cache,
        Layer::HubCache,
        Layer::Ipfs,
        Layer::Hub,
        Layer::Export,
    ];

    /// The snake_case name used in `stats.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::LocalFolder => "local_folder",
            Layer::Cache => "cache",
            Layer::HubCache => "hub_cache",
            Layer::Ipfs => "ipfs",
            Layer::Hub => "hub",
            Layer::Export => "export",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hits and misses of one layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerStats {
    /// Lookups the layer answered.
    pub hits: u64,
    /// Lookups it could not answer.
    pub misses: u64,
}

/// Counters keyed by layer name (see [`Layer::as_str`]).
pub type Stats = BTreeMap<String, LayerStats>;

/// In-process counters: [hits, misses] per layer.
#[derive(Debug, Default)]
pub(crate) struct SessionCounters([[AtomicU64; 2]; 6]);

fn zeroed() -> Stats {
    Layer::ALL
        .iter()
        .map(|l| (l.as_str().to_owned(), LayerStats::default()))
        .collect()
}

impl Store {
    /// Count a hit or miss of `layer`, in this process and in the persisted
    /// totals. Counting is advisory: a failure to persist is logged, never
    /// returned, so it cannot break a model load.
    pub fn record(&self, layer: Layer, hit: bool) {
        let slot = usize::from(!hit);
        self.session.0[layer.index()][slot].fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.persist(layer, hit) {
            tracing::warn!(error = %e, "could not update cache stats");
        }
    }

    fn persist(&self, layer: Layer, hit: bool) -> Result<()> {
        let _lock = self.internal_lock("stats")?;
        let mut totals = self.stats()?;
        let entry = totals.entry(layer.as_str().to_owned()).or_default();
        if hit {
            entry.hits += 1;
        } else {
            entry.misses += 1;
        }
        let path = self.root().join("stats.json");
        let json = serde_json::to_vec_pretty(&totals).map_err(|source| StorageError::Json {
            path: path.clone(),
            source,
        })?;
        fsutil::write_atomic(&self.tmp_dir(), &path, &json, false)
    }

    /// Persisted totals over all processes (every layer present, zero if
    /// never recorded). A damaged `stats.json` only loses counts: it is
    /// reported in the log and counting starts over.
    pub fn stats(&self) -> Result<Stats> {
        let path = self.root().join("stats.json");
        let mut totals = zeroed();
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Stats>(&bytes) {
                Ok(stored) => totals.extend(stored),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unreadable cache stats: {e}");
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(&path),
        }
        Ok(totals)
    }

    /// Counts recorded by this process only (through any clone of this
    /// store).
    pub fn session_stats(&self) -> Stats {
        Layer::ALL
            .iter()
            .map(|l| {
                let [hits, misses] = &self.session.0[l.index()];
                let s = LayerStats {
                    hits: hits.load(Ordering::Relaxed),
                    misses: misses.load(Ordering::Relaxed),
                };
                (l.as_str().to_owned(), s)
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_persist_across_store_instances() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path()).unwrap();
        a.record(Layer::Cache, true);
        a.record(Layer::Cache, false);
        a.record(Layer::Hub, true);
        let b = Store::open(dir.path()).unwrap();
        b.record(Layer::Cache, true);

        let totals = b.stats().unwrap();
        assert_eq!(totals["cache"], LayerStats { hits: 2, misses: 1 });
        assert_eq!(totals["hub"], LayerStats { hits: 1, misses: 0 });
        assert_eq!(totals["ipfs"], LayerStats::default());
        assert_eq!(totals.len(), Layer::ALL.len());
        assert_eq!(
            a.session_stats()["cache"],
            LayerStats { hits: 1, misses: 1 }
        );
        assert_eq!(
            b.session_stats()["cache"],
            LayerStats { hits: 1, misses: 0 }
        );
        assert_eq!(
            serde_json::to_string(&Layer::LocalFolder).unwrap(),
            "\"local_folder\""
        );
    }

    #[test]
    fn concurrent_records_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = store.clone();
                std::thread::spawn(move || (0..10).for_each(|_| s.record(Layer::Ipfs, false)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(store.stats().unwrap()["ipfs"].misses, 40);
    }
}
