//! A name -> CID index in the node's MFS, so another machine can find a
//! model by its Hub id: `/ipfs-accelerate/models/<id>@<revision>` is the
//! snapshot folder itself (linked by CID, nothing copied), and files
//! written through one by one appear under it as they arrive.

use super::IpfsClient;
use crate::error::Result;
use crate::manifest::escape;

/// The MFS folder holding the index.
pub const INDEX_ROOT: &str = "/ipfs-accelerate/models";

/// The MFS path of `id@revision` (same escaping as manifest file names, so
/// `org/name` is one path component).
pub fn index_path(id: &str, revision: &str) -> String {
    format!("{INDEX_ROOT}/{}@{}", escape(id), escape(revision))
}

/// Point `id@revision` at the snapshot folder `root_cid`.
pub fn index_snapshot(client: &IpfsClient, id: &str, revision: &str, root_cid: &str) -> Result<()> {
    client.files_cp(root_cid, &index_path(id, revision))
}

/// Record one file of `id@revision` (write-through from the Hub).
pub fn index_file(
    client: &IpfsClient,
    id: &str,
    revision: &str,
    path: &str,
    cid: &str,
) -> Result<()> {
    client.files_cp(cid, &format!("{}/{path}", index_path(id, revision)))
}

/// The CID the index holds for `path` of `id@revision` (`path` empty: the
/// snapshot folder), if any.
pub fn lookup(client: &IpfsClient, id: &str, revision: &str, path: &str) -> Result<Option<String>> {
    let mut mfs = index_path(id, revision);
    if !path.is_empty() {
        mfs = format!("{mfs}/{path}");
    }
    client.files_stat(&mfs)
}
