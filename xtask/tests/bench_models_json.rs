//! `cargo xtask bench models` end to end for one small family (bert-tiny,
//! our side built unoptimised: this checks the pipeline, not the figures):
//! the JSON it writes has a row per backend with latency, throughput, peak
//! memory and the ratio to PyTorch (or why the backend is unavailable),
//! PyTorch's row, the seeds' figures, and the chart beside it. The answers
//! were checked against PyTorch's while timing (the bench fails otherwise).
//!
//! Needs PyTorch's virtual environment (`IPFS_ACCELERATE_TORCH_PYTHON`,
//! provisioned by `cargo xtask ci`); without it the test reports a skip.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate_tests::skip;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[test]
fn bench_models_writes_every_backend_row_and_pytorchs() {
    let test = "bench_models_writes_every_backend_row_and_pytorchs";
    if std::env::var_os("IPFS_ACCELERATE_TORCH_PYTHON").is_none() {
        skip(
            test,
            "IPFS_ACCELERATE_TORCH_PYTHON is not set (PyTorch's venv, from `cargo xtask ci`)",
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("models.json");
    let status = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["xtask", "bench", "models", "--only", "bert-tiny"])
        .args(["--profile", "dev", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "the bench failed: {status}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let families = report["families"].as_array().unwrap();
    assert_eq!(families.len(), 1, "{report}");
    let family = &families[0];
    assert_eq!(family["family"], "bert-tiny");
    assert!(family["weights_bytes"].as_f64().unwrap() > 0.0);
    assert!(family["seeds_cpu"]
        .as_str()
        .unwrap()
        .contains("ms/sentence"));
    let rows = family["rows"].as_array().unwrap();
    let backends: Vec<&str> = rows
        .iter()
        .map(|r| r["backend"].as_str().unwrap())
        .collect();
    for backend in ["cpu", "ort", "openvino", "pytorch"] {
        assert!(
            backends.contains(&backend),
            "no {backend} row: {backends:?}"
        );
    }
    for row in rows {
        let backend = row["backend"].as_str().unwrap();
        if row["status"] == "unavailable" {
            // Only a backend this machine lacks may have no figures.
            assert!(backend != "cpu" && backend != "pytorch", "{row}");
            assert!(!row["detail"].as_str().unwrap().is_empty(), "{row}");
            continue;
        }
        assert_eq!(row["status"], "ok", "{row}");
        for key in [
            "latency_s",
            "throughput",
            "peak_rss_mib",
            "speed_vs_pytorch",
        ] {
            let value = row[key].as_f64().unwrap_or(f64::NAN);
            assert!(
                value.is_finite() && value > 0.0,
                "{backend}: {key} = {}",
                row[key]
            );
        }
        assert_eq!(row["unit"], "sentences/s", "{row}");
        assert!(row["seeds_style"]
            .as_str()
            .unwrap()
            .ends_with("ms/sentence"));
    }
    let pytorch = rows.iter().find(|r| r["backend"] == "pytorch").unwrap();
    assert_eq!(pytorch["speed_vs_pytorch"], 1.0);
    // ONNX Runtime is provisioned with the tests: its row ran, after the
    // one-time export.
    let ort = rows.iter().find(|r| r["backend"] == "ort").unwrap();
    assert_eq!(ort["status"], "ok", "{ort}");
    assert!(family["export"]["export_s"].as_f64().unwrap() > 0.0);
    let chart = std::fs::read_to_string(out.with_extension("svg")).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("bert-tiny"),
        "{chart:.200}"
    );
}
