//! Checkpoints saved the way older transformers versions saved them (TF-era
//! LayerNorm names, a base model without its `model.` prefix, `inv_freq`
//! buffers, renamed config keys) load through the patches and give the
//! fixtures' reference outputs; with patches off they fail with a clear error.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::{BackendKind, GenerateOptions, Loader, TextEmbedder, TextGenerator};
use ipfs_accelerate_tests::{
    as_strs, assert_cosines, assert_rows_close, bert_reference, copy_dir, fixture_model, id_list,
    loader_builder, model_ref, read_json, reference,
};
use std::path::Path;

/// A copy of fixture `name` whose tensors are renamed by `rename` (`None`
/// drops none; extra tensors come from `extra`) and whose config is edited
/// by `edit_config`.
fn legacy_copy(
    name: &str,
    dir: &Path,
    rename: impl Fn(&str) -> String,
    extra: &[(&str, Vec<f32>)],
    edit_config: impl Fn(&mut serde_json::Value),
) {
    copy_dir(&fixture_model(name), dir).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let extra_bytes: Vec<(String, Vec<u8>, usize)> = extra
        .iter()
        .map(|(n, v)| {
            let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            ((*n).to_owned(), b, v.len())
        })
        .collect();
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .tensors()
        .into_iter()
        .map(|(n, view)| (rename(&n), view))
        .collect();
    for (n, b, len) in &extra_bytes {
        views.push((
            n.clone(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*len], b).unwrap(),
        ));
    }
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), out).unwrap();
    let path = dir.join("config.json");
    let mut config = read_json(&path);
    edit_config(&mut config);
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

fn loader(home: &Path, patches: Option<bool>) -> Loader {
    let mut b = loader_builder(home).dump_rewriting(home.join("dump"));
    if let Some(on) = patches {
        b = b.patches(on);
    }
    b.build().unwrap()
}

#[test]
fn tf_era_bert_loads_with_patches_and_fails_without() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("bert-tf");
    // As a TF-converted BertForMaskedLM was saved by transformers 2.x:
    // LayerNorm gamma/beta, everything under `bert.`, an MLM head, and a
    // config with no `model_type` (the key came later).
    legacy_copy(
        "bert",
        &dir,
        |n| {
            let n = n
                .replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta");
            format!("bert.{n}")
        },
        &[("cls.predictions.bias", vec![0.0; 600])],
        |c| {
            let map = c.as_object_mut().unwrap();
            map.remove("model_type");
            map.insert(
                "architectures".into(),
                serde_json::json!(["BertForMaskedLM"]),
            );
            map.insert("transformers_version".into(), "2.11.0".into());
            let dtype = map.remove("dtype").unwrap();
            map.insert("torch_dtype".into(), dtype);
        },
    );
    let model = model_ref(&dir);
    let (texts, expected) = bert_reference();

    let embedder =
        TextEmbedder::load(&loader(home.path(), None), &model, BackendKind::Cpu).unwrap();
    let got = embedder.embed(&as_strs(&texts)).unwrap();
    assert_cosines("bert-tf", &got, &expected, 0.99999);
    assert_rows_close("bert-tf", &got, &expected, 1e-5);
    // The rewrites were dumped: config first, then the tensors.
    let dump = home.path().join("dump");
    let diff = std::fs::read_to_string(dump.join("000-config.torch_dtype_to_dtype.diff")).unwrap();
    assert!(diff.contains("+  \"dtype\": \"float32\""), "{diff}");
    let diff =
        std::fs::read_to_string(dump.join("001-checkpoint.layer_norm_gamma_beta.diff")).unwrap();
    assert!(
        diff.contains("-bert.embeddings.LayerNorm.gamma [32]"),
        "{diff}"
    );
    assert!(
        diff.contains("+bert.embeddings.LayerNorm.weight [32]"),
        "{diff}"
    );
    let diff =
        std::fs::read_to_string(dump.join("002-checkpoint.bert.strip_bert_prefix.diff")).unwrap();
    assert!(diff.contains("+embeddings.LayerNorm.weight [32]"), "{diff}");

    let err = TextEmbedder::load(&loader(home.path(), Some(false)), &model, BackendKind::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot load weights"), "{err}");
    assert!(err.contains("embeddings.word_embeddings.weight"), "{err}");
}

fn greedy_ids(generator: &TextGenerator, prompt: &str, n: usize) -> Vec<u32> {
    let options = GenerateOptions {
        max_new_tokens: n,
        ..GenerateOptions::default()
    };
    generator
        .generate(prompt, &options, &mut |_| {})
        .unwrap()
        .token_ids
}

fn reference_ids(name: &str) -> (String, Vec<u32>, usize) {
    let r = reference(name);
    let ids = id_list(&r["prompt"]["token_ids"]);
    let n = r["generation"]["max_new_tokens"].as_u64().unwrap() as usize;
    (r["inputs"]["prompt"].as_str().unwrap().to_owned(), ids, n)
}

#[test]
fn old_llama_base_checkpoint_loads_with_patches_and_fails_without() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("llama-old");
    // Saved from LlamaModel (no `model.` prefix) by transformers 4.30, with
    // the rotary inv_freq buffer of each layer (head_dim 8 -> 4 values),
    // and rope_scaling written with the legacy `type` key.
    let config = read_json(&fixture_model("llama").join("config.json"));
    let layers = config["num_hidden_layers"].as_u64().unwrap() as usize;
    let head_dim = (config["hidden_size"].as_u64().unwrap()
        / config["num_attention_heads"].as_u64().unwrap()) as usize;
    let names: Vec<String> = (0..layers)
        .map(|i| format!("layers.{i}.self_attn.rotary_emb.inv_freq"))
        .collect();
    let inv_freq: Vec<f32> = (0..head_dim / 2)
        .map(|i| 1.0 / 10000f32.powf(2.0 * i as f32 / head_dim as f32))
        .collect();
    let extra: Vec<(&str, Vec<f32>)> = names
        .iter()
        .map(|n| (n.as_str(), inv_freq.clone()))
        .collect();
    legacy_copy(
        "llama",
        &dir,
        |n| n.strip_prefix("model.").unwrap_or(n).to_owned(),
        &extra,
        |c| {
            c["transformers_version"] = "4.30.2".into();
        },
    );
    let model = model_ref(&dir);
    let (prompt, expected, n) = reference_ids("llama");
    let generator =
        TextGenerator::load(&loader(home.path(), None), &model, BackendKind::Cpu).unwrap();
    assert_eq!(greedy_ids(&generator, &prompt, n), expected);
    let dumped: Vec<String> = std::fs::read_dir(home.path().join("dump"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".diff"))
        .collect();
    assert!(
        dumped
            .iter()
            .any(|n| n.contains("checkpoint.llama.add_model_prefix")),
        "{dumped:?}"
    );
    assert!(
        dumped
            .iter()
            .any(|n| n.contains("checkpoint.rotary_emb_inv_freq")),
        "{dumped:?}"
    );

    let err = TextGenerator::load(&loader(home.path(), Some(false)), &model, BackendKind::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot load weights"), "{err}");
    assert!(err.contains("model.embed_tokens.weight"), "{err}");
}

#[test]
fn gpt2_config_with_generic_names_loads_with_patches_and_fails_without() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("gpt2-generic");
    legacy_copy("gpt2", &dir, str::to_owned, &[], |c| {
        let map = c.as_object_mut().unwrap();
        for (gpt2, generic) in [
            ("n_embd", "hidden_size"),
            ("n_positions", "max_position_embeddings"),
            ("n_head", "num_attention_heads"),
            ("n_layer", "num_hidden_layers"),
        ] {
            let v = map.remove(gpt2).unwrap();
            map.insert(generic.to_owned(), v);
        }
    });
    let model = model_ref(&dir);
    let (prompt, expected, n) = reference_ids("gpt2");
    let generator =
        TextGenerator::load(&loader(home.path(), None), &model, BackendKind::Cpu).unwrap();
    assert_eq!(greedy_ids(&generator, &prompt, n), expected);
    let err = TextGenerator::load(&loader(home.path(), Some(false)), &model, BackendKind::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("n_positions") || err.contains("n_embd"),
        "{err}"
    );
}
