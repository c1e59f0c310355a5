//! `cache pin | unpin | gc | warm`.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;

fn ids(ls: &serde_json::Value) -> Vec<String> {
    ls["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn gc_keeps_pinned_models_and_frees_the_rest() {
    let home = tempfile::tempdir().unwrap();
    let small = home.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("config.json"), b"{\"model_type\":\"bert\"}").unwrap();
    for (dir, id) in [(fixture_model("bert"), "org/one"), (small, "org/two")] {
        json_ok(&run(cli(home.path())
            .args(["cache", "import", "--json", "--as", id])
            .arg(dir)));
    }
    let pinned = json_ok(&run(
        cli(home.path()).args(["cache", "pin", "org/one", "--json"])
    ));
    assert_eq!(pinned["pinned"], true);
    assert!(pinned["ipfs_pinned"].is_null(), "no node here: {pinned}");

    // Recent models are kept by default.
    let kept = json_ok(&run(cli(home.path()).args([
        "cache",
        "gc",
        "--max-bytes",
        "0",
        "--json",
    ])));
    assert!(
        kept["removed_models"].as_array().unwrap().is_empty(),
        "{kept}"
    );

    let gc = json_ok(&run(cli(home.path()).args([
        "cache",
        "gc",
        "--max-bytes",
        "0",
        "--keep-recent",
        "0",
        "--json",
    ])));
    assert_eq!(gc["removed_models"], serde_json::json!(["org/two@main"]));
    assert_eq!(gc["removed_blobs"], 1);
    assert_eq!(gc["pinned"], serde_json::json!(["org/one@main"]));
    let ls = json_ok(&run(cli(home.path()).args(["cache", "ls", "--json"])));
    assert_eq!(ids(&ls), ["org/one"]);
    let verify = json_ok(&run(cli(home.path()).args(["cache", "verify", "--json"])));
    assert_eq!(verify["ok"], true);

    let unpinned = json_ok(&run(
        cli(home.path()).args(["cache", "unpin", "org/one", "--json"])
    ));
    assert_eq!(unpinned["was_pinned"], true);
    json_ok(&run(cli(home.path()).args([
        "cache",
        "gc",
        "--max-bytes",
        "0",
        "--keep-recent",
        "0",
        "--json",
    ])));
    let ls = json_ok(&run(cli(home.path()).args(["cache", "ls", "--json"])));
    assert!(ids(&ls).is_empty());
    assert_eq!(
        std::fs::read_dir(home.path().join("cache/blobs"))
            .unwrap()
            .count(),
        0
    );

    let err = one_line_failure(&run(cli(home.path()).args(["cache", "pin", "org/none"])));
    assert!(err.contains("not in the cache"), "{err}");
}

#[test]
fn warm_fetches_a_list_of_models() {
    let home = tempfile::tempdir().unwrap();
    json_ok(&run(cli(home.path())
        .args(["cache", "import", "--json", "--as", "org/one"])
        .arg(fixture_model("bert"))));
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
    let warm = json_ok(&run(cli(home.path())
        .args(["cache", "warm", "--json", "--from"])
        .arg(&list)));
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
    let ls = json_ok(&run(cli(home.path()).args(["cache", "ls", "--json"])));
    assert_eq!(ids(&ls), ["org/hubbed", "org/one"]);

    let err = one_line_failure(&run(cli(home.path()).args([
        "cache",
        "warm",
        "org/missing",
    ])));
    assert!(err.contains("cannot warm org/missing"), "{err}");
    let err = one_line_failure(&run(cli(home.path()).args(["cache", "warm"])));
    assert!(err.contains("no models given"), "{err}");
}
