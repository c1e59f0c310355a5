//! Panics of third-party parsers become errors: the mechanism lives in the
//! media crate, the lowest that runs such parsers (symphonia's demuxers).

pub use ipfs_accelerate_media::contained::{contain, containing_panic};
