//! ONNX graph rewrites (crates/patches/src/onnx/rewrites) on real graphs:
//! the fixtures' optimum exports, and small graphs built with our writer
//! where the fixtures lack a case. Structure is checked always; outputs
//! are compared in ONNX Runtime when `ORT_DYLIB_PATH` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use ipfs_accelerate_export::builder::{Dim, GraphBuilder};
use ipfs_accelerate_export::proto::{
    data_type, tensor_shape_proto::dimension::Value as DimValue, type_proto, ModelProto,
};
use ipfs_accelerate_export::rewrites::{
    apply_checked, decompose_gelu, decompose_layer_norm, fold_constant_if, restore_dynamic_dims,
    stop_if_static, DynamicAxes,
};
use ipfs_accelerate_export::{model_io, OnnxError};
use ipfs_accelerate_tests::{
    f32_tensor, fixture_model, have_ort, i64_list, i64_tensor, max_abs_diff, reference,
    session_from_memory, Outputs,
};
use ort::session::Session;
use ort::value::{DynTensor, Tensor};
use std::collections::HashMap;

/// A session on an in-memory model; `Err` carries ORT's refusal.
fn session(model: &ModelProto) -> Result<Session, String> {
    session_from_memory(&model_io::encode(model))
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The outputs' values by name.
fn run(session: &mut Session, inputs: HashMap<String, DynTensor>) -> Result<Values, String> {
    let outputs: Outputs = ipfs_accelerate_tests::run_session(session, inputs)?;
    Ok(outputs.into_iter().map(|(k, v)| (k, v.data)).collect())
}

type Values = HashMap<String, Vec<f32>>;

fn ops(model: &ModelProto, op: &str) -> usize {
    model
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == op)
        .count()
}

fn bert_inputs(batch: usize) -> HashMap<String, DynTensor> {
    let r = reference("bert");
    let mut inputs = HashMap::new();
    for name in ["input_ids", "attention_mask", "token_type_ids"] {
        let data = i64_list(&r["pair"][name]["data"]);
        let n = data.len();
        let data = data.repeat(batch);
        inputs.insert(name.to_owned(), i64_tensor(&[batch, n], data));
    }
    inputs
}

#[test]
fn protobuf_round_trip_keeps_the_fixture_graphs() {
    for path in [
        fixture_model("bert").join("onnx/model.onnx"),
        fixture_model("gpt2").join("onnx/model.onnx"),
        fixture_model("t5").join("onnx/decoder_model_merged.onnx"),
    ] {
        let model = model_io::read(&path).unwrap();
        let again = model_io::decode(&model_io::encode(&model)).unwrap();
        assert_eq!(model, again, "{}", path.display());
        let graph = model.graph.as_ref().unwrap();
        assert!(!graph.node.is_empty() && !graph.input.is_empty());
    }
    let err = model_io::decode(b"not a model at all").unwrap_err();
    assert!(matches!(err, OnnxError::Decode { .. }), "{err}");
}

/// optimum's merged T5 decoder chooses its branch on `use_cache_branch`:
/// bound to a value, the `If` folds away and the graph computes what the
/// merged one does for that value.
#[test]
fn fold_if_on_optimum_merged_t5_decoder() {
    let test = "fold_if_on_optimum_merged_t5_decoder";
    let path = fixture_model("t5").join("onnx/decoder_model_merged.onnx");
    let merged = model_io::read(&path).unwrap();
    assert_eq!(ops(&merged, "If"), 1);
    let mut folded = HashMap::new();
    for use_cache in [false, true] {
        let mut m = merged.clone();
        let n = fold_constant_if(&mut m, &[("use_cache_branch", use_cache)]).unwrap();
        assert_eq!(n, 1);
        assert_eq!(ops(&m, "If"), 0);
        let g = m.graph.as_ref().unwrap();
        assert!(g.node.len() > 500, "{} nodes", g.node.len());
        assert!(!g.input.iter().any(|i| i.name == "use_cache_branch"));
        folded.insert(use_cache, m);
    }
    let err = fold_constant_if(&mut merged.clone(), &[("no_such_input", true)]).unwrap_err();
    assert!(err.to_string().contains("no_such_input"), "{err}");
    if !have_ort(test) {
        return;
    }
    // Decoder inputs: 2 layers, 4 heads of 8, encoder length 5, past 3.
    let (enc, past, heads, d) = (5usize, 3usize, 4usize, 8usize);
    let inputs = |use_cache: Option<bool>, past_len: usize| {
        let mut i: HashMap<String, DynTensor> = HashMap::new();
        i.insert(
            "encoder_attention_mask".into(),
            i64_tensor(&[1, enc], vec![1; enc]),
        );
        let ids = if past_len == 0 {
            vec![0, 17, 42]
        } else {
            vec![42]
        };
        i.insert("input_ids".into(), i64_tensor(&[1, ids.len()], ids));
        i.insert(
            "encoder_hidden_states".into(),
            f32_tensor(&[1, enc, 32], values(enc * 32, 1)),
        );
        for l in 0..2 {
            for (kind, len, seed) in [("decoder", past_len, 10), ("encoder", enc, 20)] {
                for (j, part) in ["key", "value"].iter().enumerate() {
                    let n = heads * len * d;
                    let data = values(n, seed + l * 2 + j as u64);
                    i.insert(
                        format!("past_key_values.{l}.{kind}.{part}"),
                        f32_tensor(&[1, heads, len, d], data),
                    );
                }
            }
        }
        if let Some(flag) = use_cache {
            let t: DynTensor = Tensor::from_array((vec![1i64], vec![flag]))
                .unwrap()
                .upcast();
            i.insert("use_cache_branch".into(), t);
        }
        i
    };
    let mut original = session(&merged).unwrap();
    for (use_cache, past_len) in [(false, 0), (true, past)] {
        let want = run(&mut original, inputs(Some(use_cache), past_len)).unwrap();
        let mut s = session(&folded[&use_cache]).unwrap();
        // Inputs the taken branch does not read are still declared; ORT
        // accepts them fed.
        let got = run(&mut s, inputs(None, past_len)).unwrap();
        let d = max_abs_diff(&got["logits"], &want["logits"]);
        let dk = max_abs_diff(
            &got["present.1.decoder.key"],
            &want["present.1.decoder.key"],
        );
        println!(
            "fold If (use_cache_branch={use_cache}): logits max abs {d:e}, present max abs {dk:e}"
        );
        assert!(d <= 1e-6 && dk <= 1e-6);
    }
}

#[test]
fn decompose_layer_norm_on_the_bert_fixture() {
    let test = "decompose_layer_norm_on_the_bert_fixture";
    let original = model_io::read(&fixture_model("bert").join("onnx/model.onnx")).unwrap();
    let mut m = original.clone();
    let n = apply_checked(&mut m, "decompose_layer_norm", true, decompose_layer_norm).unwrap();
    assert_eq!(n, 5);
    assert_eq!(ops(&m, "LayerNormalization"), 0);
    // Opset 18: ReduceMean takes its axes as an input.
    assert!(m
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .any(|n| n.op_type == "ReduceMean" && n.input.len() == 2));
    if !have_ort(test) {
        return;
    }
    let want = run(&mut session(&original).unwrap(), bert_inputs(2)).unwrap();
    let got = run(&mut session(&m).unwrap(), bert_inputs(2)).unwrap();
    let d = max_abs_diff(&got["last_hidden_state"], &want["last_hidden_state"]);
    println!("LayerNormalization decomposed: last_hidden_state max abs {d:e}");
    assert!(d <= 1e-5, "{d}");
}

/// A graph with opset-20 `Gelu` (both approximations), built with our
/// writer: the fixtures' exports predate the op.
#[test]
fn decompose_gelu_on_an_opset_20_graph() {
    let test = "decompose_gelu_on_an_opset_20_graph";
    let mut g = GraphBuilder::new();
    let dims = [Dim::named("batch"), Dim::Fixed(16)];
    let x = g.input("x", data_type::FLOAT, &dims);
    let exact = g.op("Gelu", &[&x], vec![]);
    let mut tanh_attr = ipfs_accelerate_export::builder::attr_int("approximate", 0);
    tanh_attr.r#type = ipfs_accelerate_export::proto::attribute_type::STRING;
    tanh_attr.s = b"tanh".to_vec();
    let approx = g.op("Gelu", &[&x], vec![tanh_attr]);
    g.output(&exact, "exact", data_type::FLOAT, &dims);
    g.output(&approx, "approx", data_type::FLOAT, &dims);
    let mut original = g.finish("gelu", "");
    original.opset_import[0].version = 20;
    original.ir_version = 9;
    let mut m = original.clone();
    assert_eq!(decompose_gelu(&mut m).unwrap(), 2);
    assert_eq!(ops(&m, "Gelu"), 0);
    if !have_ort(test) {
        return;
    }
    let inputs = || {
        let mut i = HashMap::new();
        let data: Vec<f32> = values(48, 7).into_iter().map(|v| v * 4.0).collect();
        i.insert("x".to_owned(), f32_tensor(&[3, 16], data));
        i
    };
    let want = run(&mut session(&original).unwrap(), inputs()).unwrap();
    let got = run(&mut session(&m).unwrap(), inputs()).unwrap();
    let (de, da) = (
        max_abs_diff(&got["exact"], &want["exact"]),
        max_abs_diff(&got["approx"], &want["approx"]),
    );
    println!("Gelu decomposed: exact max abs {de:e}, tanh max abs {da:e}");
    assert!(de <= 1e-6 && da <= 1e-6);
}

/// Pins every declared axis of the bert fixture to the sizes of one
/// example (what a static-shape export leaves), as ORT then refuses other
/// batch sizes; restoring the declared axes makes it run again.
#[test]
fn restore_dynamic_dims_on_the_bert_fixture() {
    let test = "restore_dynamic_dims_on_the_bert_fixture";
    let original = model_io::read(&fixture_model("bert").join("onnx/model.onnx")).unwrap();
    let declared = DynamicAxes::declared_in(&original);
    assert_eq!(declared.of("input_ids").unwrap()[&0], "batch_size");
    let mut pinned = original.clone();
    let g = pinned.graph.as_mut().unwrap();
    for v in g.input.iter_mut().chain(g.output.iter_mut()) {
        if let Some(type_proto::Value::TensorType(t)) =
            v.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            for (axis, dim) in t.shape.as_mut().unwrap().dim.iter_mut().enumerate() {
                if matches!(dim.value, Some(DimValue::DimParam(_))) {
                    dim.value = Some(DimValue::DimValue(if axis == 0 { 1 } else { 22 }));
                }
            }
        }
    }
    let err = stop_if_static(&pinned, &declared).unwrap_err();
    assert!(
        err.to_string()
            .contains("'batch_size' (axis 0 of 'input_ids')"),
        "{err}"
    );
    let mut restored = pinned.clone();
    let n = restore_dynamic_dims(&mut restored, &declared).unwrap();
    assert_eq!(n, 8); // 3 inputs × 2 axes + last_hidden_state × 2
    stop_if_static(&restored, &declared).unwrap();
    assert_eq!(restored, original);
    if !have_ort(test) {
        return;
    }
    let refused = run(&mut session(&pinned).unwrap(), bert_inputs(3)).unwrap_err();
    println!("pinned graph, batch 3: ORT says: {refused}");
    let want = run(&mut session(&original).unwrap(), bert_inputs(3)).unwrap();
    let got = run(&mut session(&restored).unwrap(), bert_inputs(3)).unwrap();
    assert_eq!(got["last_hidden_state"], want["last_hidden_state"]);
}

/// A rewrite that pins the batch axis of a KV-cache output is stopped,
/// and the error names the rewrite and the node producing the tensor.
#[test]
fn stop_if_static_names_the_node() {
    let mut m = model_io::read(&fixture_model("gpt2").join("onnx/model.onnx")).unwrap();
    let err = apply_checked(&mut m, "pin_batch", true, |m| {
        let g = m.graph.as_mut().unwrap();
        let out = g
            .output
            .iter_mut()
            .find(|o| o.name == "present.0.key")
            .unwrap();
        if let Some(type_proto::Value::TensorType(t)) =
            out.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape.as_mut().unwrap().dim[0].value = Some(DimValue::DimValue(1));
        }
        Ok(())
    })
    .unwrap_err();
    let OnnxError::StaticDimension(found) = &err else {
        panic!("{err}")
    };
    let (node, op_type, tensor, axis) = (&found.node, &found.op_type, &found.tensor, &found.axis);
    assert_eq!(node, "/transformer/h.0/attn/Concat_3");
    assert_eq!(op_type, "Concat");
    assert_eq!((tensor.as_str(), *axis), ("present.0.key", 0));
    let text = err.to_string();
    assert!(text.contains("after rewrite pin_batch"), "{text}");
    println!("{text}");
    // Without the check the same rewrite goes through.
    apply_checked(&mut m, "noop", false, |_| Ok(())).unwrap();
}
