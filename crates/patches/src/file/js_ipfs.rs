//! The file patch of the js-ipfs test node (DESIGN.md, runtime components).

use super::FilePatch;
use std::path::Path;

/// Kubo answers `add` with `Size` as a string; js-ipfs 0.66 (its
/// `ipfs-http-server` 0.15.1) sends a number. Clients written for Kubo
/// expect the string. `install` is the folder holding `node_modules`.
pub fn js_ipfs_add_size(install: &Path) -> FilePatch {
    FilePatch {
        name: "js-ipfs add Size as string".to_owned(),
        package_dir: install.join("node_modules/ipfs-http-server"),
        version: "0.15.1".to_owned(),
        file: "src/api/resources/files-regular.js".to_owned(),
        original: "                  Size: file.size,\n".to_owned(),
        patched: "                  Size: String(file.size),\n".to_owned(),
    }
}
