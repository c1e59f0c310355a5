//! `export onnx` (crates/patches/src/onnx): graphs built from safetensors
//! run in ONNX Runtime and agree with transformers' references and with
//! candle; decoders generate the reference's greedy ids through their KV
//! cache. Skips (with the reason) when `ORT_DYLIB_PATH` is unset.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use ipfs_accelerate::{BackendKind, TextEmbedder};
use ipfs_accelerate_export::{export, ExportOptions, OnnxError};
use ipfs_accelerate_tests::{
    as_strs, f32_list, f32_tensor, fixture_model, fixture_ref, fixtures_dir, i64_list, i64_tensor,
    loader, max_abs_diff, minilm_or_skip, model_ref, ort_session, read_json, reference,
    reference_array, run_session, shape_of, string_list, Outputs,
};
use ort::session::Session;
use ort::value::DynTensor;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

fn run(session: &mut Session, inputs: HashMap<String, DynTensor>) -> Outputs {
    run_session(session, inputs).unwrap()
}

/// An integer reference array of fixture `name` (inline, or in
/// `reference.safetensors` when large).
fn ids(name: &str, array: &Value) -> (Vec<usize>, Vec<i64>) {
    if let Some(list) = array.as_array() {
        return (vec![list.len()], i64_list(array));
    }
    if array.get("data").is_none() {
        let (shape, data) = reference_array(name, array);
        return (shape, data.into_iter().map(|v| v as i64).collect());
    }
    (shape_of(&array["shape"]), i64_list(&array["data"]))
}

#[test]
fn bert_fixture_export_matches_transformers_and_candle() {
    let test = "bert_fixture_export_matches_transformers_and_candle";
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let model = fixture_ref("bert");
    let out = home.path().join("onnx");
    let summary = export(
        &loader,
        &model,
        &out,
        &ExportOptions {
            pooling: true,
            ..ExportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(summary.opset, 17);
    let names: Vec<&str> = summary.inputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["input_ids", "attention_mask", "token_type_ids"]);
    assert_eq!(
        serde_json::to_value(&summary.inputs[0].shape).unwrap(),
        serde_json::json!(["batch_size", "sequence_length"])
    );
    let outs: Vec<&str> = summary.outputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(outs, ["last_hidden_state", "sentence_embedding"]);
    let Some(mut session) = ort_session(test, &summary.path) else {
        return;
    };
    let r = reference("bert");
    let mut inputs = HashMap::new();
    for name in ["input_ids", "attention_mask", "token_type_ids"] {
        let (shape, data) = ids("bert", &r["preprocessed"][name]);
        inputs.insert(name.to_owned(), i64_tensor(&shape, data));
    }
    let got = run(&mut session, inputs);
    let (shape, want) = reference_array("bert", &r["outputs"]["last_hidden_state"]);
    assert_eq!(got["last_hidden_state"].shape, shape);
    let d_hidden = max_abs_diff(&got["last_hidden_state"].data, &want);
    let (_, want_emb) = reference_array("bert", &r["outputs"]["embeddings"]);
    let d_ref = max_abs_diff(&got["sentence_embedding"].data, &want_emb);
    // candle's path: the embed skill on the same texts.
    let embedder = TextEmbedder::load(&loader, &model, BackendKind::Cpu).unwrap();
    let texts = string_list(&r["inputs"]["texts"]);
    let candle: Vec<f32> = embedder.embed(&as_strs(&texts)).unwrap().concat();
    let d_candle = max_abs_diff(&got["sentence_embedding"].data, &candle);
    println!(
        "bert: last_hidden_state vs transformers max abs {d_hidden:e}; sentence_embedding vs transformers {d_ref:e}, vs candle {d_candle:e}"
    );
    assert!(d_hidden <= 1e-4, "{d_hidden}");
    assert!(d_ref <= 1e-4, "{d_ref}");
    assert!(d_candle <= 1e-4, "{d_candle}");
}

#[test]
fn minilm_export_matches_candle() {
    let test = "minilm_export_matches_candle";
    let Some(dir) = minilm_or_skip(test) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let model = model_ref(&dir);
    let out = home.path().join("onnx");
    let summary = export(
        &loader,
        &model,
        &out,
        &ExportOptions {
            pooling: true,
            ..ExportOptions::default()
        },
    )
    .unwrap();
    let Some(mut session) = ort_session(test, &summary.path) else {
        return;
    };
    let texts = [
        "The quick brown fox jumps over the lazy dog.",
        "Rust is fast.",
        "Sentence embeddings map every text to a single vector, even short ones!",
        "ONNX Runtime and candle should agree to within a rounding error.",
    ];
    let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    // The shipped tokenizer.json pads to 128; pad to the longest instead.
    tokenizer.with_padding(Some(tokenizers::PaddingParams::default()));
    let enc = tokenizer.encode_batch(texts.to_vec(), true).unwrap();
    let (b, s) = (enc.len(), enc[0].get_ids().len());
    let field = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<i64>| {
        i64_tensor(&[b, s], enc.iter().flat_map(f).collect())
    };
    let mut inputs = HashMap::new();
    inputs.insert(
        "input_ids".to_owned(),
        field(&|e| e.get_ids().iter().map(|&v| i64::from(v)).collect()),
    );
    inputs.insert(
        "attention_mask".to_owned(),
        field(&|e| {
            e.get_attention_mask()
                .iter()
                .map(|&v| i64::from(v))
                .collect()
        }),
    );
    inputs.insert(
        "token_type_ids".to_owned(),
        field(&|e| e.get_type_ids().iter().map(|&v| i64::from(v)).collect()),
    );
    let got = run(&mut session, inputs);
    let embedder = TextEmbedder::load(&loader, &model, BackendKind::Cpu).unwrap();
    let candle: Vec<f32> = embedder.embed(&texts).unwrap().concat();
    let d = max_abs_diff(&got["sentence_embedding"].data, &candle);
    println!(
        "all-MiniLM-L6-v2: sentence_embedding ORT vs candle max abs {d:e} ({b} texts, {s} tokens)"
    );
    assert!(d <= 1e-4, "{d}");
}

/// Greedy decoding through the exported graph's KV cache: the prompt in
/// one step, then one token per step with `present.*` fed back as
/// `past_key_values.*`. Rows that reached EOS continue with `pad`.
struct Decoder {
    session: Session,
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Decoder {
    fn new(session: Session) -> Self {
        let past: Vec<_> = session
            .inputs()
            .iter()
            .filter(|i| i.name().starts_with("past_key_values."))
            .collect();
        let ort::value::ValueType::Tensor { shape, .. } = past[0].dtype() else {
            panic!("past is a tensor")
        };
        let (kv_heads, head_dim) = (shape[1] as usize, shape[3] as usize);
        let layers = past.len() / 2;
        Self {
            session,
            layers,
            kv_heads,
            head_dim,
        }
    }

    /// Returns the generated ids `[rows][steps]` and the first step's last
    /// logits `[rows][vocab]`.
    fn greedy(
        &mut self,
        (rows, len): (usize, usize),
        input_ids: Vec<i64>,
        mut mask: Vec<i64>,
        positions: Vec<i64>,
        steps: usize,
        (eos, pad): (i64, i64),
    ) -> (Vec<Vec<i64>>, Vec<Vec<f32>>) {
        let empty = f32_tensor(&[rows, self.kv_heads, 0, self.head_dim], Vec::new());
        let mut past: Vec<DynTensor> = (0..2 * self.layers).map(|_| empty.clone()).collect();
        let (mut ids, mut pos, mut seq) = (input_ids, positions, len);
        let mut out = vec![Vec::new(); rows];
        let mut done = vec![false; rows];
        let mut first_logits = Vec::new();
        // `total`: cached plus new tokens, the attention mask's width.
        for (total, _) in (len..).zip(0..steps) {
            let mut inputs: HashMap<String, DynTensor> = HashMap::new();
            inputs.insert("input_ids".into(), i64_tensor(&[rows, seq], ids.clone()));
            inputs.insert(
                "attention_mask".into(),
                i64_tensor(&[rows, total], mask.clone()),
            );
            inputs.insert("position_ids".into(), i64_tensor(&[rows, seq], pos.clone()));
            for (i, t) in past.drain(..).enumerate() {
                let kind = if i % 2 == 0 { "key" } else { "value" };
                inputs.insert(format!("past_key_values.{}.{kind}", i / 2), t);
            }
            let outputs = self.session.run(inputs).unwrap();
            let (shape, logits) = outputs["logits"].try_extract_tensor::<f32>().unwrap();
            let vocab = shape[2] as usize;
            let mut next = Vec::new();
            let mut last_logits = Vec::new();
            for r in 0..rows {
                let row = &logits[(r * seq + seq - 1) * vocab..(r * seq + seq) * vocab];
                last_logits.push(row.to_vec());
                let best = row
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |m, (i, &v)| if v > m.1 { (i, v) } else { m },
                    )
                    .0 as i64;
                let token = if done[r] { pad } else { best };
                done[r] |= token == eos;
                out[r].push(token);
                next.push(token);
            }
            if first_logits.is_empty() {
                first_logits = last_logits;
            }
            for i in 0..self.layers {
                for kind in ["key", "value"] {
                    let (shape, data) = outputs[format!("present.{i}.{kind}").as_str()]
                        .try_extract_tensor::<f32>()
                        .unwrap();
                    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
                    past.push(f32_tensor(&shape, data.to_vec()));
                }
            }
            if done.iter().all(|d| *d) {
                break;
            }
            // The next step sees one new token per row at the next position.
            let last_pos: Vec<i64> = (0..rows).map(|r| pos[r * seq + seq - 1] + 1).collect();
            mask = (0..rows)
                .flat_map(|r| {
                    let mut m = mask[r * total..(r + 1) * total].to_vec();
                    m.push(1);
                    m
                })
                .collect();
            seq = 1;
            ids = next;
            pos = last_pos;
        }
        (out, first_logits)
    }
}

fn export_decoder(test: &str, dir: &Path, home: &Path) -> Option<Decoder> {
    let loader = loader(home);
    let model = model_ref(dir);
    let summary = export(
        &loader,
        &model,
        &home.join("onnx"),
        &ExportOptions::default(),
    )
    .unwrap();
    let inputs: Vec<&str> = summary.inputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        &inputs[..4],
        [
            "input_ids",
            "attention_mask",
            "position_ids",
            "past_key_values.0.key"
        ]
    );
    assert_eq!(summary.outputs[0].name, "logits");
    assert_eq!(summary.outputs[1].name, "present.0.key");
    assert_eq!(
        serde_json::to_value(&summary.inputs[3].shape).unwrap()[2],
        "past_sequence_length"
    );
    ort_session(test, &summary.path).map(Decoder::new)
}

fn decoder_fixture_matches_reference(name: &str) {
    let test = format!("{name}_export_greedy_kv_cache_matches_reference");
    let home = tempfile::tempdir().unwrap();
    let Some(mut decoder) = export_decoder(&test, &fixture_model(name), home.path()) else {
        return;
    };
    let r = reference(name);
    let eos = r["generation"]["eos_token_id"].as_i64().unwrap();
    let pad = r["generation"]["pad_token_id_used_for_batch"]
        .as_i64()
        .unwrap();
    let steps = r["generation"]["max_new_tokens"].as_u64().unwrap() as usize;

    // One prompt.
    let (shape, prompt) = ids(name, &r["prompt"]["input_ids"]);
    let n = shape[1];
    let (got, logits) = decoder.greedy(
        (1, n),
        prompt,
        vec![1; n],
        (0..n as i64).collect(),
        steps,
        (eos, pad),
    );
    let (_, want) = ids(name, &r["prompt"]["token_ids"]);
    let (_, want_logits) = reference_array(name, &r["prompt"]["last_logits"]);
    let d = max_abs_diff(&logits[0], &want_logits);
    println!(
        "{name}: prompt last logits vs transformers max abs {d:e}; ids {:?}",
        got[0]
    );
    assert_eq!(got[0], want, "{name} prompt greedy ids");
    assert!(d <= 1e-4, "{d}");

    // A left-padded batch.
    let (shape, batch) = ids(name, &r["batch"]["input_ids"]);
    let (_, mask) = ids(name, &r["batch"]["attention_mask"]);
    let (_, positions) = ids(name, &r["batch"]["position_ids"]);
    let (got, logits) = decoder.greedy(
        (shape[0], shape[1]),
        batch,
        mask,
        positions,
        steps,
        (eos, pad),
    );
    let (_, want) = ids(name, &r["batch"]["token_ids"]);
    let (_, want_logits) = reference_array(name, &r["batch"]["last_logits"]);
    let d = max_abs_diff(&logits.concat(), &want_logits);
    println!("{name}: batch last logits vs transformers max abs {d:e}");
    assert_eq!(got.concat(), want, "{name} batch greedy ids");
    assert!(d <= 1e-4, "{d}");
}

#[test]
fn gpt2_fixture_export_greedy_kv_cache_matches_reference() {
    decoder_fixture_matches_reference("gpt2");
}

#[test]
fn llama_fixture_export_greedy_kv_cache_matches_reference() {
    decoder_fixture_matches_reference("llama");
}

/// Config variants (RoPE llama3 / linear, tied head, biases, padded vocab,
/// GPT-2 without prefix) against their transformers references.
#[test]
fn decoder_variants_export_matches_reference() {
    let test = "decoder_variants_export_matches_reference";
    let variants = [
        "llama_llama3",
        "llama_linear",
        "llama_tied",
        "llama_bias",
        "llama_padded_vocab",
        "gpt2_no_prefix",
        "gpt2_padded_vocab",
    ];
    for v in variants {
        let dir = fixtures_dir().join("models/variants").join(v);
        let home = tempfile::tempdir().unwrap();
        let Some(mut decoder) = export_decoder(test, &dir, home.path()) else {
            return;
        };
        let r = read_json(&dir.join("reference.json"));
        let prompt = i64_list(&r["input_ids"]);
        let want = i64_list(&r["token_ids"]);
        let want_logits = f32_list(&r["last_logits"]);
        let n = prompt.len();
        let (got, logits) = decoder.greedy(
            (1, n),
            prompt,
            vec![1; n],
            (0..n as i64).collect(),
            want.len(),
            (-1, 0),
        );
        let d = max_abs_diff(&logits[0][..want_logits.len()], &want_logits);
        println!("{v}: last logits vs transformers max abs {d:e}");
        assert_eq!(got[0], want, "{v}");
        assert!(d <= 1e-4, "{v}: {d}");
    }
}

#[test]
fn unsupported_configs_are_refused_by_name() {
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let model = model_ref(&fixtures_dir().join("models/variants/llama_dynamic"));
    let err = export(&loader, &model, home.path(), &ExportOptions::default()).unwrap_err();
    assert!(matches!(err, OnnxError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("'dynamic'"), "{err}");
    // Every family of the table has an exporter; a Mamba config has none.
    let mamba = home.path().join("mamba");
    std::fs::create_dir_all(&mamba).unwrap();
    std::fs::write(mamba.join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    let err = export(
        &loader,
        &model_ref(&mamba),
        home.path(),
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("model_type 'mamba'"), "{err}");
    let model = fixture_ref("gpt2");
    let err = export(
        &loader,
        &model,
        home.path(),
        &ExportOptions {
            pooling: true,
            ..ExportOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("pooling"), "{err}");
}
