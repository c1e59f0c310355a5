//! The Hub as origin, for real: a local server speaking the Hub's file
//! protocol (`ipfs_accelerate_tests::hub_server`) serves the bert fixture
//! byte-for-byte under fixed commits; the binary downloads it through
//! `hf-hub` into our cache and into the Python Hub cache layout, and the
//! real Python client (`huggingface_hub`) reads what we wrote and writes
//! what we read.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use ipfs_accelerate_tests::hub_server::{
    hf_hub_python_or_skip, run_python, Host, HubRepo, HubServer,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A public repo: `main` and two older names for another commit.
const ID: &str = "fixture-org/tiny-bert";
/// A gated repo: only [`TOKEN`] gets in.
const GATED: &str = "fixture-org/gated-bert";
const TOKEN: &str = "hf_fixtureTokenForTheLocalHubServer0001";
/// The commit `main` points at.
const MAIN: &str = "5e1f4c3a9b2d7e8f0a1b2c3d4e5f60718293a4b5";
/// The commit tag `v1.0` and the pull-request ref `refs/pr/1` point at.
const V1: &str = "0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4a3928170";

/// The files `embed` loads from the bert fixture (what the loader asks
/// for and the fixture has).
const EMBED_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
];

fn server() -> HubServer {
    let bert = fixture_model("bert");
    let public = HubRepo::new(ID)
        .commit_dir(MAIN, &bert)
        .unwrap()
        .commit_dir(V1, &bert)
        .unwrap()
        .reference("main", MAIN)
        .reference("v1.0", V1)
        .reference("refs/pr/1", V1);
    let gated = HubRepo::new(GATED)
        .commit_dir(MAIN, &bert)
        .unwrap()
        .reference("main", MAIN)
        .gated(TOKEN);
    HubServer::start(vec![public, gated]).unwrap()
}

/// The binary with the Hub online at `hub`'s endpoint, loading through our
/// storage (our cache at `home/cache`, the Hub cache at `home/hub`).
fn online(home: &Path, hub: &HubServer) -> Command {
    let mut cmd = cli(home);
    cmd.env_remove("HF_HUB_OFFLINE")
        .env("HF_ENDPOINT", hub.endpoint())
        .env("IPFS_ACCELERATE_FORCE_INTERCEPT", "1");
    cmd
}

/// Embeds the bert fixture's texts with `model` and checks the answer
/// against its reference; returns the answer.
fn embed_matches_reference(cmd: Command, model: &str) -> Value {
    let (texts, expected) = bert_reference();
    let answer = embed(cmd, model, &texts, &[]);
    let got = embeddings(&answer);
    assert_cosines(model, &got, &expected, 0.99999);
    assert_rows_close(model, &got, &expected, 1e-4);
    answer
}

/// `file` → `source` of an answer's `files`.
fn sources(answer: &Value) -> Vec<(String, String)> {
    answer["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_owned(),
                f["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn file_names(answer: &Value) -> BTreeSet<String> {
    sources(answer).into_iter().map(|(f, _)| f).collect()
}

/// Runs `script` with the real Python client against `hub`, its Hub cache
/// at `home/hub`; returns the JSON it prints.
fn run_python_online(python: &Path, script: &str, home: &Path, hub: &HubServer) -> Value {
    let hub_cache = home.join("hub");
    run_python(
        python,
        script,
        &[
            ("HOME", home.as_os_str()),
            ("HF_HUB_CACHE", hub_cache.as_os_str()),
            ("HF_ENDPOINT", OsStr::new(hub.endpoint())),
        ],
    )
    .unwrap()
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn repo_dir(hub_cache: &Path, id: &str) -> PathBuf {
    hub_cache.join(format!("models--{}", id.replace('/', "--")))
}

/// The Python Hub cache layout for `id`: `refs/<reference>` holds `commit`;
/// each file is a relative symlink `snapshots/<commit>/<file>` →
/// `blobs/<etag>`, the etag the server sent (sha256 for LFS files, the git
/// blob id otherwise), holding the fixture's bytes.
fn assert_hub_layout(
    hub_cache: &Path,
    hub: &HubServer,
    id: &str,
    reference: &str,
    commit: &str,
    files: &BTreeSet<String>,
) {
    let repo = repo_dir(hub_cache, id);
    let recorded = std::fs::read_to_string(repo.join("refs").join(reference)).unwrap();
    assert_eq!(recorded.trim(), commit, "refs/{reference}");
    let served = hub.repo(id).unwrap();
    for file in files {
        let link = repo.join("snapshots").join(commit).join(file);
        let target = std::fs::read_link(&link)
            .unwrap_or_else(|e| panic!("{} is not a symlink: {e}", link.display()));
        assert!(target.is_relative(), "{file}: {}", target.display());
        let blob = link.parent().unwrap().join(&target);
        let expected = served.file(commit, file).unwrap();
        let blob = blob.canonicalize().unwrap();
        assert_eq!(
            blob,
            repo.join("blobs")
                .join(expected.etag())
                .canonicalize()
                .unwrap(),
            "{file}"
        );
        assert_eq!(
            std::fs::read(&blob).unwrap(),
            std::fs::read(fixture_model("bert").join(file)).unwrap(),
            "{file}: blob differs from the fixture"
        );
    }
}

/// `cache verify` finds nothing wrong.
fn assert_cache_sound(home: &Path) -> Value {
    let verify = cache(cli(home), &["verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["corrupt"].as_array().unwrap().len(), 0, "{verify}");
    assert_eq!(verify["missing"].as_array().unwrap().len(), 0, "{verify}");
    verify
}

/// The `cache ls` entry of `id@revision`.
fn cached_model(home: &Path, id: &str, revision: &str) -> Option<Value> {
    let ls = cache(cli(home), &["ls"]);
    ls["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id && m["revision"] == revision)
        .cloned()
}

#[test]
fn fresh_download_fills_our_cache_and_the_hub_cache() {
    let hub = server();
    let home = tempfile::tempdir().unwrap();
    let answer = embed_matches_reference(online(home.path(), &hub), ID);
    for (file, source) in sources(&answer) {
        assert_eq!(source, "hub", "{file}");
    }
    let files = file_names(&answer);
    let expected: BTreeSet<String> = EMBED_FILES.iter().map(|s| s.to_string()).collect();
    assert_eq!(files, expected);

    assert_hub_layout(&home.path().join("hub"), &hub, ID, "main", MAIN, &files);
    let listed = cached_model(home.path(), ID, "main").expect("in our cache");
    assert_eq!(listed["files"], files.len(), "{listed}");
    assert_cache_sound(home.path());

    // The weights came from the CDN through the Hub's redirect, never from
    // the Hub host itself.
    let log = hub.requests();
    let weights = |host: Host| {
        log.iter()
            .filter(|r| r.host == host && r.method == "GET" && r.status / 100 == 2)
            .filter(|r| host == Host::Cdn || r.target.ends_with("/model.safetensors"))
            .count()
    };
    assert!(weights(Host::Cdn) > 0, "{log:#?}");
    assert_eq!(weights(Host::Hub), 0, "{log:#?}");

    // Loaded again with the Hub still online: everything from our cache,
    // not one request.
    hub.clear_requests();
    let again = embed_matches_reference(online(home.path(), &hub), ID);
    for (file, source) in sources(&again) {
        assert_eq!(source, "cache", "{file}");
    }
    let asked = hub.requests();
    assert!(asked.is_empty(), "{asked:#?}");
}

#[test]
fn revisions_by_tag_commit_and_pr_ref() {
    let hub = server();
    for (revision, reference) in [("v1.0", "v1.0"), (V1, V1), ("refs/pr/1", "refs/pr/1")] {
        let home = tempfile::tempdir().unwrap();
        hub.clear_requests();
        let model = format!("{ID}@{revision}");
        let answer = embed_matches_reference(online(home.path(), &hub), &model);
        let files = file_names(&answer);
        // hf-hub records the revision asked for under refs/, a commit hash
        // included (Python's huggingface_hub skips that one; a ref named
        // by its own commit is harmless to both).
        assert_hub_layout(&home.path().join("hub"), &hub, ID, reference, V1, &files);
        assert!(
            !repo_dir(&home.path().join("hub"), ID)
                .join("snapshots")
                .join(MAIN)
                .exists(),
            "{model}: main's snapshot was downloaded"
        );
        assert!(cached_model(home.path(), ID, revision).is_some(), "{model}");
        // The revision travelled percent-encoded in the path, as the Hub
        // expects.
        let encoded = revision.replace('/', "%2F");
        let resolves: Vec<_> = hub
            .requests()
            .into_iter()
            .filter(|r| r.host == Host::Hub)
            .collect();
        assert!(!resolves.is_empty());
        for r in &resolves {
            assert!(
                r.target.contains(&format!("/resolve/{encoded}/")),
                "{model}: {}",
                r.target
            );
        }
        assert_cache_sound(home.path());
    }

    // A revision the repo does not have: a clean one-line error.
    let home = tempfile::tempdir().unwrap();
    let line = failure_of(
        online(home.path(), &hub),
        "embed",
        Path::new(&format!("{ID}@no-such-branch")),
        &["hello"],
    );
    eprintln!("unknown revision: {line}");
    assert!(line.contains("no-such-branch"), "{line}");
    assert!(line.contains("404"), "{line}");
    assert!(line.contains("revision 'no-such-branch'"), "{line}");
}

#[test]
fn gated_repo_needs_the_token() {
    let hub = server();

    let home = tempfile::tempdir().unwrap();
    let line = failure_of(
        online(home.path(), &hub),
        "embed",
        Path::new(GATED),
        &["hello"],
    );
    // Shown so a run's log says what users see.
    eprintln!("gated, no token: {line}");
    assert!(line.contains(GATED), "{line}");
    assert!(line.contains("401"), "{line}");
    assert!(line.contains("gated repository: set HF_TOKEN"), "{line}");

    let mut wrong = online(home.path(), &hub);
    wrong.env("HF_TOKEN", "hf_notTheRightToken");
    let line = failure_of(wrong, "embed", Path::new(GATED), &["hello"]);
    eprintln!("gated, wrong token: {line}");
    assert!(line.contains("401"), "{line}");
    assert!(line.contains("refused HF_TOKEN"), "{line}");
    // Nothing half-written is left to be mistaken for the model.
    assert!(cached_model(home.path(), GATED, "main").is_none());

    hub.clear_requests();
    let mut right = online(home.path(), &hub);
    right.env("HF_TOKEN", TOKEN);
    let answer = embed_matches_reference(right, GATED);
    assert_hub_layout(
        &home.path().join("hub"),
        &hub,
        GATED,
        "main",
        MAIN,
        &file_names(&answer),
    );
    let log = hub.requests();
    // Every request to the Hub carried the token.
    for r in log.iter().filter(|r| r.host == Host::Hub) {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{r:?}"
        );
    }
    // The download itself, which follows the redirect to the CDN host,
    // leaves the token behind. (hf-hub's one-byte metadata probe of the
    // CDN URL, `Range: bytes=0-0`, does send it: it sets the header on that
    // request itself. The Hub's CDN URLs are signed, so the token is not
    // what opens them.)
    let downloads: Vec<_> = log
        .iter()
        .filter(|r| r.host == Host::Cdn && r.range.as_deref() != Some("bytes=0-0"))
        .collect();
    assert!(!downloads.is_empty(), "{log:#?}");
    for r in downloads {
        assert_eq!(r.authorization, None, "{r:?}");
    }
    assert_cache_sound(home.path());
}

#[test]
fn gated_repo_with_the_token_file_under_hf_home() {
    // `hf auth login` stores the token in `$HF_HOME/token`; with HF_HOME
    // (and no HF_HUB_CACHE) the Hub cache is `$HF_HOME/hub`.
    let hub = server();
    let home = tempfile::tempdir().unwrap();
    let hf_home = home.path().join("hf");
    std::fs::create_dir_all(&hf_home).unwrap();
    std::fs::write(hf_home.join("token"), format!("{TOKEN}\n")).unwrap();
    let mut cmd = online(home.path(), &hub);
    cmd.env_remove("HF_HUB_CACHE").env("HF_HOME", &hf_home);
    let answer = embed_matches_reference(cmd, GATED);
    assert_hub_layout(
        &hf_home.join("hub"),
        &hub,
        GATED,
        "main",
        MAIN,
        &file_names(&answer),
    );
    assert!(!home.path().join("hub").exists());
}

#[test]
fn interrupted_download_resumes_and_leaves_no_poison() {
    let hub = server();
    let home = tempfile::tempdir().unwrap();
    let weights = fixture_model("bert").join("model.safetensors");
    let size = std::fs::metadata(&weights).unwrap().len();
    let half = size / 2;
    hub.fail_once_after(ID, "model.safetensors", half).unwrap();

    // First attempt: the connection drops half-way through the weights.
    let line = failure_of(
        online(home.path(), &hub),
        "embed",
        Path::new(ID),
        &["hello"],
    );
    eprintln!("interrupted: {line}");
    assert!(line.contains("model.safetensors"), "{line}");
    assert!(
        hub.requests().iter().any(|r| r.cut),
        "{:#?}",
        hub.requests()
    );
    // Nothing incomplete is published: no snapshot entry in the Hub cache,
    // no weights in our cache, and what our cache holds is sound.
    let repo = repo_dir(&home.path().join("hub"), ID);
    assert!(!repo
        .join("snapshots")
        .join(MAIN)
        .join("model.safetensors")
        .exists());
    if let Some(listed) = cached_model(home.path(), ID, "main") {
        assert!(
            listed["files"].as_u64().unwrap() < EMBED_FILES.len() as u64,
            "{listed}"
        );
    }
    assert_cache_sound(home.path());

    // Second attempt: resumes where the first stopped and succeeds.
    hub.clear_requests();
    let answer = embed_matches_reference(online(home.path(), &hub), ID);
    let resumed = hub
        .requests()
        .into_iter()
        .filter(|r| r.host == Host::Cdn && r.method == "GET" && r.status == 206)
        .any(|r| r.range.as_deref() == Some(&format!("bytes={half}-")));
    assert!(resumed, "no resumed range request: {:#?}", hub.requests());
    assert_hub_layout(
        &home.path().join("hub"),
        &hub,
        ID,
        "main",
        MAIN,
        &file_names(&answer),
    );
    assert_cache_sound(home.path());
    let stored = answer["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "model.safetensors")
        .unwrap();
    assert_eq!(
        sha256_of(Path::new(stored["path"].as_str().unwrap())),
        sha256_of(&weights)
    );
}

/// `huggingface_hub` reads the Hub cache we wrote: `scan_cache_dir` sees the
/// repo whole and without warnings, and `hf_hub_download` offline returns
/// our snapshot files.
const PY_READ_OUR_CACHE: &str = r#"
import hashlib, json, os, sys
from huggingface_hub import scan_cache_dir, hf_hub_download
repo_id, files = sys.argv[1], sys.argv[2:]
info = scan_cache_dir()
repos = [{
    "repo_id": r.repo_id, "repo_type": r.repo_type,
    "revisions": [{
        "commit": rv.commit_hash, "refs": sorted(rv.refs),
        "files": sorted(f.file_path.relative_to(rv.snapshot_path).as_posix() for f in rv.files),
    } for rv in r.revisions],
} for r in info.repos]
loaded = {}
for name in files:
    path = hf_hub_download(repo_id, name)
    loaded[name] = {"path": path, "sha256": hashlib.sha256(open(path, "rb").read()).hexdigest()}
print(json.dumps({"repos": repos, "warnings": [str(w) for w in info.warnings], "loaded": loaded}))
"#;

/// `huggingface_hub` downloads from the local server into a fresh cache; a
/// failed download is run again once, as a user would (huggingface_hub 1.x
/// and later retry a dropped transfer themselves, 0.x raise).
const PY_DOWNLOAD: &str = r#"
import json, sys
from huggingface_hub import hf_hub_download
repo_id, files = sys.argv[1], sys.argv[2:]
paths, failed = {}, []
for name in files:
    try:
        paths[name] = hf_hub_download(repo_id, name)
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}")
        paths[name] = hf_hub_download(repo_id, name)
print(json.dumps({"paths": paths, "failed_once": failed}))
"#;

#[test]
fn python_huggingface_hub_reads_the_hub_cache_we_wrote() {
    let Some(python) = hf_hub_python_or_skip("python_huggingface_hub_reads_the_hub_cache_we_wrote")
    else {
        return;
    };
    let hub = server();
    let home = tempfile::tempdir().unwrap();
    let answer = embed_matches_reference(online(home.path(), &hub), ID);
    let files = file_names(&answer);
    let hub_cache = home.path().join("hub");

    let mut script = PY_READ_OUR_CACHE.to_owned();
    let args: Vec<&str> = std::iter::once(ID)
        .chain(files.iter().map(String::as_str))
        .collect();
    script = format!("import sys; sys.argv[1:] = {}\n{script}", py_list(&args));
    let seen = run_python(
        &python,
        &script,
        &[
            ("HOME", home.path().as_os_str()),
            ("HF_HUB_CACHE", hub_cache.as_os_str()),
            ("HF_HUB_OFFLINE", OsStr::new("1")),
        ],
    )
    .unwrap();
    assert_eq!(seen["warnings"], serde_json::json!([]), "{seen}");
    let repos = seen["repos"].as_array().unwrap();
    assert_eq!(repos.len(), 1, "{seen}");
    assert_eq!(repos[0]["repo_id"], ID);
    assert_eq!(repos[0]["repo_type"], "model");
    let revisions = repos[0]["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 1, "{seen}");
    assert_eq!(revisions[0]["commit"], MAIN);
    assert_eq!(revisions[0]["refs"], serde_json::json!(["main"]));
    let listed: BTreeSet<String> = serde_json::from_value(revisions[0]["files"].clone()).unwrap();
    assert_eq!(listed, files);
    let snapshot = repo_dir(&hub_cache, ID).join("snapshots").join(MAIN);
    for file in &files {
        let loaded = &seen["loaded"][file.as_str()];
        assert_eq!(
            Path::new(loaded["path"].as_str().unwrap()),
            snapshot.join(file),
            "{file}"
        );
        assert_eq!(
            loaded["sha256"].as_str().unwrap(),
            sha256_of(&fixture_model("bert").join(file)),
            "{file}"
        );
    }
}

#[test]
fn we_load_offline_from_a_cache_huggingface_hub_wrote() {
    let Some(python) = hf_hub_python_or_skip("we_load_offline_from_a_cache_huggingface_hub_wrote")
    else {
        return;
    };
    let hub = server();
    let home = tempfile::tempdir().unwrap();
    let hub_cache = home.path().join("hub");
    // Python's transfer of the weights drops half-way too; huggingface_hub
    // resumes it itself.
    let size = std::fs::metadata(fixture_model("bert").join("model.safetensors"))
        .unwrap()
        .len();
    hub.fail_once_after(ID, "model.safetensors", size / 2)
        .unwrap();
    let args: Vec<&str> = std::iter::once(ID)
        .chain(EMBED_FILES.iter().copied())
        .collect();
    let script = format!(
        "import sys; sys.argv[1:] = {}\n{PY_DOWNLOAD}",
        py_list(&args)
    );
    let downloaded = run_python_online(&python, &script, home.path(), &hub);
    // Python went through the same protocol: the weights through the CDN
    // redirect, and the transfer was cut once; what it kept is whole (the
    // layout check compares every blob with the fixture).
    let log = hub.requests();
    assert!(
        log.iter()
            .any(|r| r.host == Host::Cdn && r.method == "GET" && r.cut),
        "{log:#?}"
    );
    eprintln!("huggingface_hub after the cut: {downloaded}");
    assert_hub_layout(
        &hub_cache,
        &hub,
        ID,
        "main",
        MAIN,
        &EMBED_FILES.iter().map(|s| s.to_string()).collect(),
    );
    assert_eq!(
        downloaded["paths"]["model.safetensors"],
        repo_dir(&hub_cache, ID)
            .join("snapshots")
            .join(MAIN)
            .join("model.safetensors")
            .to_str()
            .unwrap(),
        "{downloaded}"
    );

    // The server is no longer needed: offline, through our storage.
    drop(hub);
    let mut cmd = cli(home.path());
    cmd.env("IPFS_ACCELERATE_FORCE_INTERCEPT", "1");
    let answer = embed_matches_reference(cmd, ID);
    for (file, source) in sources(&answer) {
        assert_eq!(source, "hub_cache", "{file}");
    }
    assert_cache_sound(home.path());
}

/// `huggingface_hub` classifies each of the server's refusals as it does
/// the Hub's, from the status and `X-Error-Code`.
const PY_ERRORS: &str = r#"
import json, os, sys
from huggingface_hub import hf_hub_download
public, gated, token = sys.argv[1:4]
cases = {
    "gated_no_token": (gated, "config.json", "main", None),
    "gated_wrong_token": (gated, "config.json", "main", "hf_notTheRightToken"),
    "no_such_repo": ("fixture-org/no-such-repo", "config.json", "main", None),
    "no_such_revision": (public, "config.json", "no-such-branch", None),
    "no_such_file": (public, "no-such-file.json", "main", None),
}
seen = {}
for name, (repo, file, rev, tok) in cases.items():
    try:
        hf_hub_download(repo, file, revision=rev, token=tok if tok else False)
        seen[name] = "downloaded"
    except Exception as e:
        seen[name] = type(e).__name__
from huggingface_hub import HfApi
info = HfApi().model_info(public, revision="v1.0")
seen["model_info"] = {"sha": info.sha, "files": sorted(s.rfilename for s in info.siblings)}
from huggingface_hub import snapshot_download
seen["snapshot"] = snapshot_download(public, revision="v1.0")
path = hf_hub_download(gated, "model.safetensors", token=token)
seen["gated_with_token"] = os.path.relpath(path, os.environ["HF_HUB_CACHE"])
print(json.dumps(seen))
"#;

#[test]
fn huggingface_hub_reads_the_servers_answers_as_the_hubs() {
    let Some(python) =
        hf_hub_python_or_skip("huggingface_hub_reads_the_servers_answers_as_the_hubs")
    else {
        return;
    };
    let hub = server();
    let home = tempfile::tempdir().unwrap();
    let hub_cache = home.path().join("hub");
    let script = format!(
        "import sys; sys.argv[1:] = {}\n{PY_ERRORS}",
        py_list(&[ID, GATED, TOKEN])
    );
    let seen = run_python_online(&python, &script, home.path(), &hub);
    assert_eq!(seen["gated_no_token"], "GatedRepoError", "{seen}");
    // An invalid token is refused whatever the repo; huggingface_hub does
    // not take that 401 for a missing repo.
    assert_eq!(seen["gated_wrong_token"], "HfHubHTTPError", "{seen}");
    assert_eq!(seen["no_such_repo"], "RepositoryNotFoundError", "{seen}");
    assert_eq!(seen["no_such_revision"], "RevisionNotFoundError", "{seen}");
    assert!(
        seen["no_such_file"]
            .as_str()
            .unwrap()
            .ends_with("EntryNotFoundError"),
        "{seen}"
    );
    // The absence is cached under the commit the 404 named.
    assert!(repo_dir(&hub_cache, ID)
        .join(".no_exist")
        .join(MAIN)
        .join("no-such-file.json")
        .is_file());
    assert_eq!(
        seen["gated_with_token"],
        format!("models--fixture-org--gated-bert/snapshots/{MAIN}/model.safetensors")
    );
    // The repo info and the whole snapshot of a tag, file for file the
    // fixture.
    let bert = fixture_model("bert");
    let mut fixture_files = Vec::new();
    list_files(&bert, &bert, &mut fixture_files);
    fixture_files.sort();
    assert_eq!(seen["model_info"]["sha"], V1, "{seen}");
    assert_eq!(
        seen["model_info"]["files"],
        serde_json::json!(fixture_files),
        "{seen}"
    );
    let snapshot = PathBuf::from(seen["snapshot"].as_str().unwrap());
    assert_eq!(
        snapshot,
        repo_dir(&hub_cache, ID).join("snapshots").join(V1)
    );
    for file in &fixture_files {
        assert_eq!(
            std::fs::read(snapshot.join(file)).unwrap(),
            std::fs::read(bert.join(file)).unwrap(),
            "{file}"
        );
    }
    // The token went to the Hub, never to the CDN.
    let log = hub.requests();
    assert!(log.iter().any(|r| r.host == Host::Cdn), "{log:#?}");
    for r in log.iter().filter(|r| r.host == Host::Cdn) {
        assert_eq!(r.authorization, None, "{r:?}");
    }
}

/// Every file under `dir`, as `/`-separated paths below `root`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            list_files(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap();
            out.push(rel.to_str().unwrap().replace('\\', "/"));
        }
    }
}

/// A Python list literal of `items` (JSON strings are Python strings).
fn py_list(items: &[&str]) -> String {
    serde_json::to_string(items).unwrap()
}

/// Write-through from the Hub: host A downloads a model from the Hub and
/// adds it to IPFS under its id; host B (empty caches, Hub offline) loads
/// the same id from IPFS alone, with the same embeddings.
#[test]
fn a_hub_download_is_written_through_to_ipfs() {
    let test = "a_hub_download_is_written_through_to_ipfs";
    let Some((api, [a, b])) = ipfs_node::node_and_hosts(test) else {
        return;
    };
    // An id unique to this run: the shared node outlives the test, and an
    // earlier run's index entry must not answer for this one.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("fixture-org/write-through-{nanos}");
    let hub = HubServer::start(vec![HubRepo::new(&id)
        .commit_dir(MAIN, &fixture_model("bert"))
        .unwrap()
        .reference("main", MAIN)])
    .unwrap();

    let from_a = embed_matches_reference(with_ipfs(online(a.path(), &hub), &api), &id);
    for (file, source) in sources(&from_a) {
        assert_eq!(source, "hub", "{file}");
    }
    let (texts, _) = bert_reference();
    let from_b = embed(with_ipfs(cli(b.path()), &api), &id, &texts, &[]);
    for (file, source) in sources(&from_b) {
        assert_eq!(source, "ipfs", "{file}");
    }
    assert_eq!(embeddings(&from_b), embeddings(&from_a));
    let verify = cache(cli(b.path()), &["verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

/// A Hub cache file whose content no longer matches the sha256 it is
/// named by is refused (never stored in a manifest), removed from the Hub
/// cache, and downloaded anew by the next load.
#[test]
fn a_corrupted_hub_cache_blob_is_refused_and_downloaded_again() {
    let hub = server();
    let home = tempfile::tempdir().unwrap();
    embed_matches_reference(online(home.path(), &hub), ID);
    let snapshot = repo_dir(&home.path().join("hub"), ID)
        .join("snapshots")
        .join(MAIN)
        .join("model.safetensors");
    let blob = std::fs::canonicalize(&snapshot).unwrap();
    let name = blob.file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        name.len(),
        64,
        "the weights are named by their sha256: {name}"
    );
    // Same length, one byte changed: only the hash can tell.
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    std::fs::remove_dir_all(home.path().join("cache")).unwrap();

    // Offline: the Hub cache is the only origin, and it is refused.
    let line = failure_of(cli(home.path()), "embed", Path::new(ID), &["hello"]);
    assert!(line.contains("rejected") && line.contains(&name), "{line}");
    assert!(
        !blob.exists() && !snapshot.exists(),
        "the bad copy is removed"
    );
    assert!(cached_model(home.path(), ID, "main")
        .is_none_or(|m| { !m.to_string().contains("model.safetensors") }));
    assert_cache_sound(home.path());

    // Online again: downloaded anew, and right.
    let answer = embed_matches_reference(online(home.path(), &hub), ID);
    let weights = sources(&answer)
        .into_iter()
        .find(|(f, _)| f == "model.safetensors")
        .unwrap();
    assert_eq!(weights.1, "hub");
    assert_eq!(sha256_of(&snapshot), name);
}
