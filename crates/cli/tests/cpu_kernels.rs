//! Which CPU kernels the binary picks, and that each choice gives the
//! reference's answers: our f32 kernel for products of a few rows (AVX-512 or AVX2 + FMA),
//! candle's product when `IPFS_ACCELERATE_CPU_KERNELS=candle`, a clear
//! refusal of a value it does not know, and, on a CPU without AVX-512
//! (QEMU's user-mode emulator with `-cpu Haswell`), the AVX2 kernels of
//! ours and llama.cpp's `haswell` module, named in `status`. The same for
//! our kernel inside llama.cpp (batches of Q4_1 and Q8_0 rows,
//! `IPFS_ACCELERATE_GGML_KERNELS`); that its batched answers equal the
//! solo ones is tested in `tests/tests/gguf_smollm2.rs`.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// The emulated CPU: Haswell has AVX2, FMA and F16C, and no AVX-512.
const NO_AVX512_CPU: &str = "Haswell";

/// The gpt2 fixture's greedy answer on `--backend cpu` through `cmd`,
/// checked against transformers' reference.
fn gpt2_fixture_matches_reference(cmd: Command, what: &str) {
    shared_fixture_matches_on_cpu(cmd, "gpt2", what, &["--backend", "cpu"]);
}

/// The `cpu` backend's `status` detail.
fn cpu_detail(mut cmd: Command) -> String {
    let cpu = status_backend(&json_of(cmd.args(["status", "--json"])), "cpu");
    assert_eq!(cpu["available"], true, "{cpu}");
    cpu["detail"].as_str().unwrap().to_owned()
}

#[test]
fn candles_product_on_request_gives_the_reference_answer() {
    let home = tempfile::tempdir().unwrap();
    let with_candle = || {
        let mut cmd = cli(home.path());
        cmd.env("IPFS_ACCELERATE_CPU_KERNELS", "candle");
        cmd
    };
    let detail = cpu_detail(with_candle());
    assert!(
        detail.contains("products of up to 16 rows: candle's"),
        "{detail}"
    );
    gpt2_fixture_matches_reference(with_candle(), "candle's product");
    // And ours, named as such where this CPU runs one.
    let detail = cpu_detail(cli(home.path()));
    if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx2") {
        assert!(
            detail.contains("products of up to 16 rows: ours on "),
            "{detail}"
        );
    }
    gpt2_fixture_matches_reference(cli(home.path()), "our kernel");
}

#[test]
fn an_unknown_kernel_setting_is_refused_with_the_reason() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = cli(home.path());
    let status = json_of(
        cmd.env("IPFS_ACCELERATE_CPU_KERNELS", "fastest")
            .args(["status", "--json"]),
    );
    let cpu = status_backend(&status, "cpu");
    assert_eq!(cpu["available"], false, "{cpu}");
    let detail = cpu["detail"].as_str().unwrap();
    assert!(
        detail
            .contains("IPFS_ACCELERATE_CPU_KERNELS=\"fastest\" is neither \"ours\" nor \"candle\""),
        "{detail}"
    );
}

/// The `llamacpp` backend's `status` entry with `IPFS_ACCELERATE_GGML_KERNELS`
/// set to `setting` (or left unset).
fn llama_cpp_status(home: &Path, setting: Option<&str>) -> serde_json::Value {
    let mut cmd = cli(home);
    if let Some(setting) = setting {
        cmd.env("IPFS_ACCELERATE_GGML_KERNELS", setting);
    }
    status_backend(&json_of(cmd.args(["status", "--json"])), "llamacpp")
}

#[test]
fn the_kernel_for_batches_in_llama_cpp_is_named_and_its_setting_checked() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let detail = |entry: &serde_json::Value| {
        assert_eq!(entry["available"], true, "{entry}");
        entry["detail"].as_str().unwrap().to_owned()
    };
    // Ours where the loaded module has it (the ones built with AMX and
    // VNNI), ggml's elsewhere.
    let default = detail(&llama_cpp_status(home, None));
    let ours_here = default.contains("ggml CPU kernels 'sapphirerapids'");
    let want = if ours_here {
        "batches of Q4_1 and Q8_0 rows: ours on AVX-512 VNNI"
    } else {
        "batches of Q4_1 and Q8_0 rows: ggml's"
    };
    assert!(default.contains(want), "{default}");
    assert_eq!(detail(&llama_cpp_status(home, Some("ours"))), default);
    let ggml = detail(&llama_cpp_status(home, Some("GGML")));
    assert!(
        ggml.contains("batches of Q4_1 and Q8_0 rows: ggml's"),
        "{ggml}"
    );
    let refused = llama_cpp_status(home, Some("fastest"));
    assert_eq!(refused["available"], false, "{refused}");
    let why = refused["detail"].as_str().unwrap();
    assert!(
        why.contains("IPFS_ACCELERATE_GGML_KERNELS=\"fastest\" is neither \"ours\" nor \"ggml\""),
        "{why}"
    );
}

/// The binary under QEMU's emulation of a CPU without AVX-512.
fn emulated(qemu: &Path, home: &Path) -> Command {
    let mut cmd = runner::command(qemu, home);
    cmd.args(["-cpu", NO_AVX512_CPU, BIN]);
    cmd
}

#[test]
fn on_a_cpu_without_avx512_the_avx2_kernels_run_and_answer_alike() {
    let test = "on_a_cpu_without_avx512_the_avx2_kernels_run_and_answer_alike";
    let Some(qemu) = qemu_or_skip(test) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    // `status` names what the emulated CPU has and the kernels picked for it.
    let status = json_of(emulated(&qemu, home).args(["status", "--json"]));
    let backend = |name: &str| status_backend(&status, name);
    let cpu = backend("cpu");
    let detail = cpu["detail"].as_str().unwrap();
    assert!(detail.contains("AVX2"), "{detail}");
    assert!(!detail.contains("AVX-512"), "{detail}");
    assert!(
        detail.contains("products of up to 16 rows: ours on AVX2+FMA"),
        "{detail}"
    );
    let llama_cpp = backend("llamacpp");
    assert_eq!(llama_cpp["available"], true, "{llama_cpp}");
    let detail = llama_cpp["detail"].as_str().unwrap();
    assert!(detail.contains("ggml CPU kernels 'haswell'"), "{detail}");
    assert!(
        detail.contains("batches of Q4_1 and Q8_0 rows: ggml's"),
        "{detail}"
    );

    // The f32 path on the AVX2 kernel equals transformers' reference.
    gpt2_fixture_matches_reference(emulated(&qemu, home), "AVX2 kernel");

    // SmolLM2 GGUF on llama.cpp's haswell module: the same greedy answer
    // as this machine's own module gives. A plain 5-token prompt and 4 new
    // tokens: emulated, each token takes seconds.
    let Some(file) = smollm2_or_skip(test) else {
        return;
    };
    let complete =
        |cmd: Command| greedy(cmd, "generate", &file, "The capital of Germany is", 4, &[]);
    let native = complete(cli(home));
    let haswell = complete(emulated(&qemu, home));
    assert_eq!(haswell["backend"], "llamacpp");
    assert_eq!(
        haswell["token_ids"], native["token_ids"],
        "{haswell}\n{native}"
    );
    assert!(
        haswell["text"].as_str().unwrap().contains("Berlin"),
        "{haswell}"
    );
}
