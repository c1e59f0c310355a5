//! Model snapshots on IPFS: one UnixFS folder per manifest. Publishing
//! checks that the node computes the same root CID as we do; pulling and
//! fetching check every file against its CID before it enters the cache.

use std::collections::HashMap;
use std::path::Path;

use super::IpfsClient;
use crate::blob_store::Expected;
use crate::error::{Result, StorageError};
use crate::manifest::{Manifest, ManifestFile};
use crate::unixfs::same_cid;
use crate::{BlobInfo, Store};

/// Name the snapshot folder is sent under; a folder's CID does not depend
/// on its own name, only on its entries.
const ROOT_NAME: &str = "snapshot";

/// Add the snapshot `manifest` describes to the node as one folder, pinned.
/// Every blob is verified on the way out. Returns the root CID, which is
/// the manifest's: a node that computes another one is an error.
pub fn publish(store: &Store, client: &IpfsClient, manifest: &Manifest) -> Result<String> {
    let mut files = Vec::with_capacity(manifest.files.len());
    for f in &manifest.files {
        files.push((f.path.clone(), store.get(&f.sha256)?));
    }
    let added = client.add_dir(ROOT_NAME, &files, true)?;
    let root = added
        .iter()
        .find(|e| e.name == ROOT_NAME)
        .ok_or_else(|| StorageError::Ipfs {
            api: client.api().to_owned(),
            op: format!("add {}@{}", manifest.id, manifest.revision),
            reason: "the answer names no root folder".to_owned(),
        })?;
    if !same_cid(&root.hash, &manifest.root_cid) {
        return Err(StorageError::Ipfs {
            api: client.api().to_owned(),
            op: format!("add {}@{}", manifest.id, manifest.revision),
            reason: format!(
                "the node computed root {} but the local store computes {}",
                root.hash, manifest.root_cid
            ),
        });
    }
    super::name_index::index_snapshot(client, &manifest.id, &manifest.revision, &root.hash)?;
    tracing::info!(
        model = %format!("{}@{}", manifest.id, manifest.revision),
        root_cid = %manifest.root_cid,
        api = %client.api(),
        index = %super::name_index::index_path(&manifest.id, &manifest.revision),
        "published snapshot"
    );
    Ok(manifest.root_cid.clone())
}

/// Write-through: add one cached file of `id@revision` to the node
/// (pinned) and record it in the name index, so the next machine finds it
/// there before going to the Hub. The node must compute the blob's CID.
pub fn write_through(
    store: &Store,
    client: &IpfsClient,
    id: &str,
    revision: &str,
    entry: &ManifestFile,
) -> Result<()> {
    let path = store.get(&entry.sha256)?;
    let added = client.add_file(&path)?;
    if !same_cid(&added.hash, &entry.cid) {
        return Err(StorageError::Ipfs {
            api: client.api().to_owned(),
            op: format!("add {}", entry.path),
            reason: format!(
                "the node computed {} but the local store computes {}",
                added.hash, entry.cid
            ),
        });
    }
    super::name_index::index_file(client, id, revision, &entry.path, &entry.cid)
}

/// Fetch one file by its manifest entry into the store: its bytes must
/// hash to the entry's CID and sha256, or nothing is stored.
pub fn fetch_file(store: &Store, client: &IpfsClient, entry: &ManifestFile) -> Result<BlobInfo> {
    let expected = Expected {
        cid: entry.cid.clone(),
        sha256: Some(entry.sha256.clone()),
    };
    fetch_cid(store, client, &entry.cid, &expected)
}

/// Fetch the file `cid` into the store, verified against `expected`.
pub fn fetch_cid(
    store: &Store,
    client: &IpfsClient,
    cid: &str,
    expected: &Expected,
) -> Result<BlobInfo> {
    let reader = client.cat(cid)?;
    let source = format!("IPFS node {} (cat {cid})", client.api());
    // A dropped connection surfaces as an I/O error of this read; the temp
    // file is removed and the cache is untouched.
    store
        .put_reader_verified(reader, Path::new(&source), expected)
        .map_err(|e| match e {
            StorageError::Io { source, .. } => StorageError::IpfsIo {
                api: client.api().to_owned(),
                op: format!("cat {cid}"),
                source,
            },
            other => other,
        })
}

/// Every file under folder `cid`, as (path inside it, file CID).
fn list_files(client: &IpfsClient, cid: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), cid.to_owned())];
    while let Some((prefix, dir)) = stack.pop() {
        for link in client.ls(&dir)? {
            let name = &link.entry.name;
            if name.is_empty() || name.contains('/') || name == ".." {
                return Err(StorageError::InvalidPath {
                    path: link.entry.name,
                    reason: format!("unusable entry name in IPFS folder {dir}"),
                });
            }
            let path = format!("{prefix}{name}");
            if link.is_dir() {
                stack.push((format!("{path}/"), link.entry.hash));
            } else {
                out.push((path, link.entry.hash));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Fetch the snapshot folder `root_cid` into the store as `id@revision`.
/// Files whose CID another manifest already holds are reused (verified);
/// the rest are fetched and verified against their CIDs; the manifest is
/// written only when the folder they form has exactly `root_cid`.
pub fn pull(
    store: &Store,
    client: &IpfsClient,
    root_cid: &str,
    id: &str,
    revision: &str,
) -> Result<Manifest> {
    let known: HashMap<String, ManifestFile> = store
        .manifests()?
        .into_iter()
        .flat_map(|m| m.files)
        .map(|f| (f.cid.clone(), f))
        .collect();
    let listing = list_files(client, root_cid)?;
    let mut infos = Vec::with_capacity(listing.len());
    for (path, cid) in listing {
        let reusable = known
            .get(&cid)
            .filter(|f| store.has(&f.sha256))
            .and_then(|f| store.get(&f.sha256).ok().map(|_| f.clone()));
        let info = match reusable {
            Some(f) => BlobInfo {
                sha256: f.sha256,
                size: f.size,
                cid: f.cid,
                dag_size: f.dag_size,
            },
            None => {
                let expected = Expected {
                    cid: cid.clone(),
                    sha256: None,
                };
                fetch_cid(store, client, &cid, &expected)?
            }
        };
        tracing::debug!(file = %path, cid = %info.cid, "pulled");
        infos.push((path, info));
    }
    store.record_snapshot(id, revision, &infos, root_cid)
}
