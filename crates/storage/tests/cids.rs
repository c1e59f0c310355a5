//! CIDs must equal what a real IPFS node returns for the fixture files.
#![allow(clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use ipfs_accelerate_storage::{file_cid, path_cid, CidVersion, Store};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/cids.json");

fn fixtures() -> Value {
    serde_json::from_str(&fs::read_to_string(FIXTURES).unwrap()).unwrap()
}

/// `pat(n, seed) = bytes(((i*seed + (i >> 8)) & 0xff) for i in range(n))`
fn pat(n: usize, seed: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(seed).wrapping_add(i >> 8) & 0xff) as u8)
        .collect()
}

/// Parses `pat(n, seed)`.
fn parse_pat(spec: &str) -> Option<(usize, usize)> {
    let inner = spec.strip_prefix("pat(")?.strip_suffix(')')?;
    let (n, seed) = inner.split_once(',')?;
    Some((n.trim().parse().ok()?, seed.trim().parse().ok()?))
}

/// Writes the file described by a fixture `content` field, streaming.
fn write_content(path: &Path, content: &str) {
    let mut out = BufWriter::new(File::create(path).unwrap());
    if let Some((n, seed)) = parse_pat(content) {
        out.write_all(&pat(n, seed)).unwrap();
    } else if let Some(lit) = content
        .strip_prefix("b'")
        .and_then(|s| s.strip_suffix('\''))
    {
        out.write_all(lit.replace("\\n", "\n").as_bytes()).unwrap();
    } else if content.starts_with("concatenation for i in 0..46") {
        let base = pat(1_048_576, 13);
        for i in 0..46u8 {
            let block: Vec<u8> = base.iter().map(|b| b.wrapping_add(i)).collect();
            out.write_all(&block).unwrap();
        }
    } else {
        panic!("unknown content pattern {content:?}");
    }
    out.flush().unwrap();
}

#[test]
fn every_fixture_file_has_the_ipfs_cids() {
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    for f in fx["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let path = dir.path().join(name);
        write_content(&path, f["content"].as_str().unwrap());
        let size = f["size"].as_u64().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), size, "{name} size");

        let v0 = path_cid(&path, CidVersion::V0).unwrap();
        assert_eq!(
            v0.cid.to_string(),
            f["cid_v0"].as_str().unwrap(),
            "{name} v0"
        );
        assert_eq!(v0.size, size);
        let v1 = path_cid(&path, CidVersion::V1RawLeaves).unwrap();
        assert_eq!(
            v1.cid.to_string(),
            f["cid_v1"].as_str().unwrap(),
            "{name} v1"
        );

        // The store computes the same CIDv0 and sha256 in its single pass.
        let info = store.put_file(&path).unwrap();
        assert_eq!(info.cid, f["cid_v0"].as_str().unwrap(), "{name} store cid");
        assert_eq!(info.sha256, f["sha256"].as_str().unwrap(), "{name} sha256");
        assert_eq!(info.size, size);
        assert_eq!(info.dag_size, v0.dag_size);
        fs::remove_file(&path).unwrap();
    }
}

#[test]
fn small_files_from_readers() {
    let node = file_cid(&b"hello world\n"[..], CidVersion::V0).unwrap();
    assert_eq!(
        node.cid.to_string(),
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    );
    let node = file_cid(std::io::empty(), CidVersion::V0).unwrap();
    assert_eq!(
        node.cid.to_string(),
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    );
}

#[test]
fn nested_directory_has_the_ipfs_cids() {
    let fx = fixtures();
    let d = &fx["directory"];
    let tmp = tempfile::tempdir().unwrap();
    for (rel, spec) in d["tree"].as_object().unwrap() {
        let spec = spec.as_str().unwrap();
        let path = tmp.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        if parse_pat(spec).is_some() {
            write_content(&path, spec);
        } else {
            // `<text>\n (N bytes, ...)`: the text plus a real newline.
            let (text, rest) = spec.split_once("\\n (").unwrap();
            let len: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            fs::write(&path, format!("{text}\n")).unwrap();
            assert_eq!(fs::metadata(&path).unwrap().len(), len, "{rel}");
        }
    }
    let expected = d["cids_v0"].as_object().unwrap();
    assert_eq!(expected.len(), 5);
    for (rel, cid) in expected {
        let node = path_cid(&tmp.path().join(rel), CidVersion::V0).unwrap();
        assert_eq!(node.cid.to_string(), cid.as_str().unwrap(), "{rel}");
    }

    // A manifest of the same folder carries the same root CID.
    let store = Store::open(tmp.path().join("store")).unwrap();
    let m = store
        .import_dir(&tmp.path().join("model-dir"), "org/model", "main")
        .unwrap();
    assert_eq!(m.root_cid, expected["model-dir"].as_str().unwrap());
    assert_eq!(m.files.len(), 3);
    assert_eq!(
        m.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["1_Pooling/config.json", "config.json", "weights.bin"]
    );
}
