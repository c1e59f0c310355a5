//! The loader: `from_pretrained` for every Auto* kind, resolved through our
//! storage.
//!
//! Resolution order for a Hub id while interception is applied: our
//! content-addressed cache -> the Python Hub cache (`HF_HUB_CACHE`/`HF_HOME`)
//! -> the Hub itself (through `hf-hub`), storing what it finds into our cache.
//! A local folder is always read in place. When interception is restored (or
//! the gate says no), loading goes to the Hub cache and the Hub exactly as
//! plain `hf-hub` would, and our cache is neither read nor written.

mod error;
mod file_kind;
mod hub;
mod hub_cache;
pub mod interception;
mod loader;
mod model_ref;
mod sentence_transformers;

pub use error::{IpfsUnavailable, LoadError};
pub use file_kind::FileKind;
pub use hub::HubSettings;
pub use interception::{apply, disable, restore, should_intercept, status, InterceptionStatus};
pub use ipfs_accelerate_storage::{Layer, Store};
pub use loader::{Loader, LoaderBuilder, ResolvedFile};
pub use model_ref::ModelRef;
pub use sentence_transformers::SentenceTransformersFiles;
