//! Content identifiers exactly as `ipfs add` computes them: UnixFS v1 in
//! dag-pb, fixed-size 256 KiB chunks, balanced layout of at most 174 links
//! per node.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use cid::Cid;
use ipld_dagpb::{PbLink, PbNode};
use multihash::Multihash;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result, StorageError};

/// Chunk size of the default `ipfs add` chunker (`size-262144`).
pub const CHUNK_SIZE: usize = 262_144;
/// Maximum links per node of the balanced layout.
pub const MAX_LINKS: usize = 174;

const DAG_PB: u64 = 0x70;
const RAW: u64 = 0x55;
const SHA2_256: u64 = 0x12;

// UnixFS `Data.DataType` values.
const TYPE_DIRECTORY: i32 = 1;
const TYPE_FILE: i32 = 2;

/// Which flavour of `ipfs add` to reproduce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CidVersion {
    /// `ipfs add` defaults: CIDv0, dag-pb leaves.
    #[default]
    V0,
    /// `ipfs add --cid-version=1`: CIDv1 (base32) with raw leaves.
    V1RawLeaves,
}

/// A node of a UnixFS DAG, as a parent needs to link to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DagNode {
    /// The node's CID.
    pub cid: Cid,
    /// File bytes below this node (for a directory: sum of its files).
    pub size: u64,
    /// Cumulative DAG size: this block's length plus all blocks below it.
    /// This is what a parent link's `Tsize` holds.
    pub dag_size: u64,
}

/// The UnixFS `Data` protobuf (proto2), only the fields `ipfs add` sets
/// without mode/mtime. Declared by hand to avoid a build script.
#[derive(Clone, PartialEq, Message)]
struct UnixfsData {
    #[prost(int32, required, tag = "1")]
    kind: i32,
    #[prost(bytes = "vec", optional, tag = "2")]
    data: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "3")]
    filesize: Option<u64>,
    // proto2 repeated scalars are unpacked unless declared otherwise.
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    blocksizes: Vec<u64>,
}

fn sha256_cid(version: Option<u64>, bytes: &[u8]) -> Result<Cid> {
    let digest = Sha256::digest(bytes);
    let mh = Multihash::<64>::wrap(SHA2_256, &digest).map_err(|e| StorageError::InvalidCid {
        cid: "sha2-256 multihash".into(),
        reason: e.to_string(),
    })?;
    match version {
        None => Cid::new_v0(mh).map_err(|source| StorageError::Cid {
            cid: "CIDv0".into(),
            source,
        }),
        Some(codec) => Ok(Cid::new_v1(codec, mh)),
    }
}

/// Encode a dag-pb node and name it.
fn dag_pb_node(links: Vec<PbLink>, data: UnixfsData, v: CidVersion, size: u64) -> Result<DagNode> {
    let below: u64 = links.iter().filter_map(|l| l.size).sum();
    let block = PbNode {
        links,
        data: Some(Bytes::from(data.encode_to_vec())),
    }
    .into_bytes();
    let cid = match v {
        CidVersion::V0 => sha256_cid(None, &block)?,
        CidVersion::V1RawLeaves => sha256_cid(Some(DAG_PB), &block)?,
    };
    Ok(DagNode {
        cid,
        size,
        dag_size: block.len() as u64 + below,
    })
}

fn link(name: &str, child: &DagNode) -> PbLink {
    PbLink {
        cid: child.cid,
        // go-merkledag always writes the Name field, empty or not.
        name: Some(name.to_owned()),
        size: Some(child.dag_size),
    }
}

/// Streaming builder of a file's DAG: feed bytes with [`FileBuilder::update`],
/// get the root with [`FileBuilder::finish`]. Holds at most one chunk plus
/// one pending row of links per tree level.
#[derive(Debug)]
pub struct FileBuilder {
    version: CidVersion,
    chunk: Vec<u8>,
    // levels[0]: leaves not yet under a parent; levels[k]: depth-k nodes.
    levels: Vec<Vec<DagNode>>,
    total: u64,
}

impl FileBuilder {
    /// A builder for an empty file.
    pub fn new(version: CidVersion) -> Self {
        FileBuilder {
            version,
            chunk: Vec::with_capacity(CHUNK_SIZE),
            levels: Vec::new(),
            total: 0,
        }
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether no bytes were fed yet.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Append file content.
    pub fn update(&mut self, mut data: &[u8]) -> Result<()> {
        self.total += data.len() as u64;
        while !data.is_empty() {
            let n = (CHUNK_SIZE - self.chunk.len()).min(data.len());
            self.chunk.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.chunk.len() == CHUNK_SIZE {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<()> {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_SIZE));
        let len = chunk.len() as u64;
        let leaf = match self.version {
            CidVersion::V0 => {
                let data = UnixfsData {
                    kind: TYPE_FILE,
                    // An empty file's leaf has no Data field at all.
                    data: (!chunk.is_empty()).then_some(chunk),
                    filesize: Some(len),
                    blocksizes: Vec::new(),
                };
                dag_pb_node(Vec::new(), data, self.version, len)?
            }
            CidVersion::V1RawLeaves => DagNode {
                cid: sha256_cid(Some(RAW), &chunk)?,
                size: len,
                dag_size: len,
            },
        };
        self.push(0, leaf)
    }

    fn push(&mut self, mut level: usize, mut node: DagNode) -> Result<()> {
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(node);
            if self.levels[level].len() < MAX_LINKS {
                return Ok(());
            }
            // A full row becomes a node one level up, as the balanced
            // layout fills each subtree completely before starting the next.
            let row = std::mem::take(&mut self.levels[level]);
            node = self.inner(row)?;
            level += 1;
        }
    }

    fn inner(&self, children: Vec<DagNode>) -> Result<DagNode> {
        let blocksizes: Vec<u64> = children.iter().map(|c| c.size).collect();
        let size = blocksizes.iter().sum();
        let links = children.iter().map(|c| link("", c)).collect();
        let data = UnixfsData {
            kind: TYPE_FILE,
            data: None,
            filesize: Some(size),
            blocksizes,
        };
        dag_pb_node(links, data, self.version, size)
    }

    /// Finish the DAG and return its root.
    pub fn finish(mut self) -> Result<DagNode> {
        // An empty file still gets one (empty) leaf; a file ending on a
        // chunk boundary gets no extra empty chunk.
        if !self.chunk.is_empty() || self.total == 0 {
            self.flush_chunk()?;
        }
        let mut level = 0;
        while level < self.levels.len() {
            let row = std::mem::take(&mut self.levels[level]);
            let is_top = self.levels[level + 1..].iter().all(Vec::is_empty);
            if is_top {
                return match row.as_slice() {
                    // A lone node at the top is the root (a one-chunk file
                    // is just its leaf).
                    [only] => Ok(*only),
                    [] => break,
                    _ => self.inner(row),
                };
            }
            if !row.is_empty() {
                // Lower partial rows are wrapped even with a single child,
                // as go-unixfs' fillNodeRec does.
                let node = self.inner(row)?;
                self.levels[level + 1].push(node);
            }
            level += 1;
        }
        Err(StorageError::InvalidCid {
            cid: "file DAG".into(),
            reason: "builder ended without a root".into(),
        })
    }
}

/// Reads `reader` to its end in chunks of at most [`CHUNK_SIZE`] bytes and
/// hands each to `each`, stopping at the first error; a read interrupted by
/// a signal is retried. The outer error is the read's (the caller knows
/// which path it reads), the inner one `each`'s.
pub(crate) fn for_each_chunk<R: Read, E>(
    mut reader: R,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> io::Result<Result<(), E>> {
    let mut buf = vec![0u8; CHUNK_SIZE];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(Ok(())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Err(e) = each(&buf[..n]) {
            return Ok(Err(e));
        }
    }
}

fn read_into_builder<R: Read>(reader: R, v: CidVersion) -> io::Result<Result<DagNode>> {
    let mut builder = FileBuilder::new(v);
    let fed = for_each_chunk(reader, |chunk| builder.update(chunk))?;
    Ok(fed.and_then(|()| builder.finish()))
}

/// The CID `ipfs add` gives the content of `reader`. Streams: memory use is
/// bounded by one chunk, whatever the file size.
pub fn file_cid<R: Read>(reader: R, v: CidVersion) -> Result<DagNode> {
    read_into_builder(reader, v).at(Path::new("<reader>"))?
}

fn file_cid_at(path: &Path, v: CidVersion) -> Result<DagNode> {
    let file = File::open(path).at(path)?;
    read_into_builder(file, v).at(path)?
}

enum TreeEntry {
    File(DagNode),
    Dir(BTreeMap<String, TreeEntry>),
}

fn insert(root: &mut BTreeMap<String, TreeEntry>, path: &str, node: DagNode) -> Result<()> {
    let bad = |reason: &str| StorageError::InvalidPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let parts: Vec<&str> = path.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(bad("components must be non-empty and not '.' or '..'"));
    }
    let (name, dirs) = parts.split_last().ok_or_else(|| bad("empty path"))?;
    let mut current = root;
    for dir in dirs {
        let entry = current
            .entry((*dir).to_owned())
            .or_insert_with(|| TreeEntry::Dir(BTreeMap::new()));
        current = match entry {
            TreeEntry::Dir(children) => children,
            TreeEntry::File(_) => return Err(bad("a parent folder is also a file")),
        };
    }
    if current.contains_key(*name) {
        return Err(bad("listed twice, or both a file and a folder"));
    }
    current.insert((*name).to_owned(), TreeEntry::File(node));
    Ok(())
}

fn encode_dir(children: &BTreeMap<String, TreeEntry>, v: CidVersion) -> Result<DagNode> {
    let mut links = Vec::with_capacity(children.len());
    let mut size = 0;
    // BTreeMap<String> iterates in bytewise order, the order dag-pb wants.
    for (name, entry) in children {
        let node = match entry {
            TreeEntry::File(node) => *node,
            TreeEntry::Dir(grand) => encode_dir(grand, v)?,
        };
        size += node.size;
        links.push(link(name, &node));
    }
    let data = UnixfsData {
        kind: TYPE_DIRECTORY,
        data: None,
        filesize: None,
        blocksizes: Vec::new(),
    };
    dag_pb_node(links, data, v, size)
}

/// The CID `ipfs add -r` gives a folder holding `entries` (relative paths
/// with '/', and each file's node). Intermediate folders are implied.
pub fn directory_cid(entries: &[(String, DagNode)], v: CidVersion) -> Result<DagNode> {
    let mut root = BTreeMap::new();
    for (path, node) in entries {
        insert(&mut root, path, *node)?;
    }
    encode_dir(&root, v)
}

/// The CID of a file, or of a folder's regular files (see [`walk_files`]).
pub fn path_cid(path: &Path, v: CidVersion) -> Result<DagNode> {
    let meta = std::fs::metadata(path).at(path)?;
    if !meta.is_dir() {
        return file_cid_at(path, v);
    }
    let mut entries = Vec::new();
    for (rel, abs) in walk_files(path)? {
        let node = file_cid_at(&abs, v)?;
        entries.push((rel, node));
    }
    directory_cid(&entries, v)
}

/// Parse CID text (any version and base); the error says why it is not one.
pub fn parse_cid(text: &str) -> Result<Cid> {
    Cid::try_from(text).map_err(|source| StorageError::Cid {
        cid: text.to_owned(),
        source,
    })
}

/// Whether two CID texts name the same node: same codec and multihash,
/// whatever the version or base (`Qm...` and `bafy...` of one dag-pb node
/// agree). Unparsable text never matches.
pub fn same_cid(a: &str, b: &str) -> bool {
    match (Cid::try_from(a), Cid::try_from(b)) {
        (Ok(a), Ok(b)) => a.codec() == b.codec() && a.hash() == b.hash(),
        _ => false,
    }
}

/// Folders never taken into a model: VCS and tool caches.
pub const SKIPPED_DIRS: [&str; 2] = [".git", ".cache"];

/// All regular files under `dir`, recursively, as (relative path with '/',
/// absolute path), sorted by relative path. Symlinks are followed (model
/// snapshots are usually symlinks into a blob folder); `.git` and `.cache`
/// folders are skipped; empty folders contribute nothing.
pub fn walk_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut ancestors = Vec::new();
    walk(dir, "", &mut ancestors, &mut out)?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn walk(
    dir: &Path,
    prefix: &str,
    ancestors: &mut Vec<PathBuf>,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    // Symlinked folders may loop; refuse to re-enter a folder we are in.
    let canonical = dir.canonicalize().at(dir)?;
    if ancestors.contains(&canonical) {
        tracing::warn!(path = %dir.display(), "skipping symlink loop");
        return Ok(());
    }
    ancestors.push(canonical);
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let abs = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| StorageError::InvalidPath {
                path: abs.display().to_string(),
                reason: format!("file name {n:?} is not UTF-8"),
            })?;
        let rel = format!("{prefix}{name}");
        let meta = match std::fs::metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(path = %abs.display(), "skipping dangling symlink");
                continue;
            }
            Err(e) => return Err(e).at(&abs),
        };
        if meta.is_dir() {
            if SKIPPED_DIRS.contains(&name.as_str()) {
                continue;
            }
            walk(&abs, &format!("{rel}/"), ancestors, out)?;
        } else if meta.is_file() {
            out.push((rel, abs));
        }
    }
    ancestors.pop();
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn same_cid_ignores_version_and_base() {
        let v0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
        let v1 = Cid::try_from(v0).unwrap().into_v1().unwrap().to_string();
        assert!(same_cid(v0, &v1));
        assert!(same_cid(v0, v0));
        assert!(!same_cid(
            v0,
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        ));
        assert!(!same_cid(v0, "not a cid"));
    }

    #[test]
    fn empty_folder_is_the_well_known_cid() {
        let node = directory_cid(&[], CidVersion::V0).unwrap();
        assert_eq!(
            node.cid.to_string(),
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        );
    }

    #[test]
    fn rejects_conflicting_paths() {
        let leaf = file_cid(&b"x"[..], CidVersion::V0).unwrap();
        let entries = vec![("a".to_string(), leaf), ("a/b".to_string(), leaf)];
        assert!(directory_cid(&entries, CidVersion::V0).is_err());
        let entries = vec![("../a".to_string(), leaf)];
        assert!(directory_cid(&entries, CidVersion::V0).is_err());
    }

    #[test]
    fn chunk_boundaries_do_not_matter_to_the_builder() {
        let data: Vec<u8> = (0..(CHUNK_SIZE * 3 + 5)).map(|i| (i % 251) as u8).collect();
        let whole = file_cid(&data[..], CidVersion::V0).unwrap();
        let mut b = FileBuilder::new(CidVersion::V0);
        for piece in data.chunks(1000) {
            b.update(piece).unwrap();
        }
        assert_eq!(b.finish().unwrap(), whole);
        assert_eq!(whole.size, data.len() as u64);
    }
}
