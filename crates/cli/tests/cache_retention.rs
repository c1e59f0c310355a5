//! `cache pin | unpin | gc | warm`.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

/// The ids `cache ls` lists.
fn ids(home: &Path) -> Vec<String> {
    pluck(&cache(cli(home), &["ls"])["models"], "id")
}

/// `cache gc --max-bytes 0 EXTRA...`, its report.
fn gc_everything(home: &Path, extra: &[&str]) -> serde_json::Value {
    cache(cli(home), &[&["gc", "--max-bytes", "0"], extra].concat())
}

#[test]
fn gc_keeps_pinned_models_and_frees_the_rest() {
    let home = tempfile::tempdir().unwrap();
    let small = home.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("config.json"), b"{\"model_type\":\"bert\"}").unwrap();
    for (dir, id) in [(fixture_model("bert"), "org/one"), (small, "org/two")] {
        cache_import(cli(home.path()), id, &dir);
    }
    let pinned = cache(cli(home.path()), &["pin", "org/one"]);
    assert_eq!(pinned["pinned"], true);
    assert!(pinned["ipfs_pinned"].is_null(), "no node here: {pinned}");

    // Recent models are kept by default.
    let kept = gc_everything(home.path(), &[]);
    assert!(
        kept["removed_models"].as_array().unwrap().is_empty(),
        "{kept}"
    );

    let gc = gc_everything(home.path(), &["--keep-recent", "0"]);
    assert_eq!(gc["removed_models"], serde_json::json!(["org/two@main"]));
    assert_eq!(gc["removed_blobs"], 1);
    assert_eq!(gc["pinned"], serde_json::json!(["org/one@main"]));
    assert_eq!(ids(home.path()), ["org/one"]);
    let verify = cache(cli(home.path()), &["verify"]);
    assert_eq!(verify["ok"], true);

    let unpinned = cache(cli(home.path()), &["unpin", "org/one"]);
    assert_eq!(unpinned["was_pinned"], true);
    gc_everything(home.path(), &["--keep-recent", "0"]);
    assert!(ids(home.path()).is_empty());
    assert_eq!(
        std::fs::read_dir(home.path().join("cache/blobs"))
            .unwrap()
            .count(),
        0
    );

    let err = failure(cli(home.path()).args(["cache", "pin", "org/none"]));
    assert!(err.contains("not in the cache"), "{err}");
}

#[test]
fn warm_fetches_a_list_of_models() {
    let home = tempfile::tempdir().unwrap();
    cache_import(cli(home.path()), "org/one", &fixture_model("bert"));
    let hub = make_hub_cache(
        &home.path().join("hub"),
        "org/hubbed",
        &fixture_model("bert"),
    );
    assert!(hub.is_dir());
    let list = home.path().join("models.txt");
    std::fs::write(
        &list,
        "# models to warm\norg/hubbed\n\norg/one  # already here\n",
    )
    .unwrap();
    let warm = cache(
        cli(home.path()),
        &["warm", "--from", list.to_str().unwrap()],
    );
    let models = warm["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["model"], "org/hubbed");
    assert!(
        models[0]["sources"]["hub_cache"].as_u64().unwrap() >= 3,
        "{warm}"
    );
    assert!(
        models[1]["sources"]["cache"].as_u64().unwrap() >= 3,
        "{warm}"
    );
    // Now in our cache.
    assert_eq!(ids(home.path()), ["org/hubbed", "org/one"]);

    let err = failure(cli(home.path()).args(["cache", "warm", "org/missing"]));
    assert!(err.contains("cannot warm org/missing"), "{err}");
    let err = failure(cli(home.path()).args(["cache", "warm"]));
    assert!(err.contains("no models given"), "{err}");
}
