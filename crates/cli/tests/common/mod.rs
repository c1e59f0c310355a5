//! The binary under test, handed to the shared harness
//! (`ipfs-accelerate-tests`): only this crate's tests know its path.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub use ipfs_accelerate_tests::*;

/// The `ipfs-accelerate` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_ipfs-accelerate");

/// The binary under test with a clean environment: only PATH, HOME pointing
/// at a temp home, our cache at `cache`, an empty Hub cache, Hub offline
/// (see [`runner::command`]).
pub fn cli(home: &Path) -> Command {
    runner::command(Path::new(BIN), home)
}
