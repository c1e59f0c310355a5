//! `patch list --json` (CONTRACT.md), with and without `--model`, under
//! `TRANSFORMERS_PATCH_DISABLE`; `--dump-rewriting` on a command that loads
//! a model.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::path::Path;

/// The GPT-2 fixture with its config written with the generic names
/// (`hidden_size`, ...) that `GPT2Config.attribute_map` accepts.
fn gpt2_generic_names(dir: &Path) {
    copy_dir(&fixture_model("gpt2"), dir).unwrap();
    edit_json(&dir.join("config.json"), |config| {
        let map = config.as_object_mut().unwrap();
        for (gpt2, generic) in [("n_embd", "hidden_size"), ("n_layer", "num_hidden_layers")] {
            let v = map.remove(gpt2).unwrap();
            map.insert(generic.to_owned(), v);
        }
    });
}

fn rows(answer: &serde_json::Value) -> Vec<(String, bool)> {
    answer["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            for key in ["name", "kind", "target", "gate"] {
                assert!(p[key].is_string(), "{key} in {p}");
            }
            (
                p["name"].as_str().unwrap().to_owned(),
                p["applies"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn applies(rows: &[(String, bool)], name: &str) -> bool {
    rows.iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| *a)
        .unwrap()
}

#[test]
fn lists_every_kind_and_evaluates_a_model() {
    let home = tempfile::tempdir().unwrap();
    let all = json_of(cli(home.path()).args(["patch", "list", "--json"]));
    let kinds = pluck(&all["patches"], "kind");
    for kind in [
        "runtime_fix",
        "model_rewrite",
        "cache_serialization",
        "file_patch",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
    let all = rows(&all);
    assert!(applies(&all, "config.gpt2_attribute_map"));
    assert!(applies(&all, "checkpoint.layer_norm_gamma_beta"));

    let dir = home.path().join("gpt2-generic");
    gpt2_generic_names(&dir);
    let model = dir.to_str().unwrap();
    let list_for = |cmd: &mut std::process::Command| {
        json_of(cmd.args(["patch", "list", "--json", "--model", model]))
    };
    let answer = list_for(&mut cli(home.path()));
    assert_eq!(answer["model"], model);
    let for_model = rows(&answer);
    assert!(applies(&for_model, "config.gpt2_attribute_map"));
    assert!(!applies(&for_model, "checkpoint.layer_norm_gamma_beta"));
    assert!(!applies(&for_model, "config.torch_dtype_to_dtype"));

    let off = list_for(cli(home.path()).env("TRANSFORMERS_PATCH_DISABLE", "1"));
    assert!(!applies(&rows(&off), "config.gpt2_attribute_map"));

    let missing = Path::new("/nonexistent/model");
    let err = failure(
        cli(home.path())
            .args(["patch", "list", "--json", "--model"])
            .arg(missing),
    );
    assert!(err.contains("/nonexistent/model"), "{err}");
}

#[test]
fn dump_rewriting_writes_the_config_diff_when_generating() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("gpt2-generic");
    gpt2_generic_names(&dir);
    let dump = home.path().join("dump");
    let model = dir.to_str().unwrap();
    let generate = |extra: &[&str]| {
        let mut cmd = cli(home.path());
        cmd.args(["generate", "--json", "--greedy", "--max-new-tokens", "3"])
            .args(extra)
            .args(["--model", model, "Hello"]);
        cmd
    };
    let answer = json_of(&mut generate(&["--dump-rewriting", dump.to_str().unwrap()]));
    assert_eq!(answer["token_ids"].as_array().unwrap().len(), 3);
    let diff = std::fs::read_to_string(dump.join("000-config.gpt2_attribute_map.diff")).unwrap();
    assert!(diff.contains("-  \"hidden_size\": 32"), "{diff}");
    assert!(diff.contains("+  \"n_embd\": 32"), "{diff}");

    let err = failure(&mut generate(&["--no-patches"]));
    assert!(err.contains("config.json"), "{err}");
}
