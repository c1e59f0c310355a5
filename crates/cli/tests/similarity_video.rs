//! `similarity --video` reproduces transformers' X-CLIP for the fixture
//! (pixel values, per-video text embeddings, video embedding, logits,
//! probabilities), samples longer videos as transformers' video processors
//! do, and refuses bad frame folders with one line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn string_list(value: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(value.clone()).unwrap()
}

/// Largest difference between an answer's `{shape, data}` and a reference's
/// shape and values.
fn array_diff(got: &serde_json::Value, shape: &[usize], want: &[f32]) -> f32 {
    let got_shape: Vec<usize> = serde_json::from_value(got["shape"].clone()).unwrap();
    assert_eq!(got_shape, shape, "shape");
    max_abs_diff(&f32_list(&got["data"]), want)
}

fn inline(array: &serde_json::Value) -> (Vec<usize>, Vec<f32>) {
    (
        serde_json::from_value(array["shape"].clone()).unwrap(),
        f32_list(&array["data"]),
    )
}

fn similarity_json(
    home: &Path,
    model: &Path,
    frames: &Path,
    texts: &[String],
) -> serde_json::Value {
    json_ok(&run(cli(home)
        .args([
            "similarity",
            "--json",
            "--return-inputs",
            "--return-embeddings",
            "--model",
        ])
        .arg(model)
        .arg("--video")
        .arg(frames)
        .args(texts)))
}

#[test]
fn xclip_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("xclip");
    let reference = reference("xclip");
    let texts = string_list(&reference["inputs"]["texts"]);
    let answer = similarity_json(home.path(), &model, &model.join("frames"), &texts);

    let (shape, want) = reference_array("xclip", &reference["preprocessed"]["pixel_values"]);
    assert_eq!(shape, [1, 4, 3, 32, 32]);
    let diff = array_diff(&answer["preprocessed"]["pixel_values"], &shape, &want);
    assert!(diff <= 1e-4, "pixel_values: max abs diff {diff}");
    for name in ["text_embeds", "video_embeds"] {
        let (shape, want) = inline(&reference["outputs"][name]);
        let diff = array_diff(&answer["outputs"][name], &shape, &want);
        assert!(diff <= 1e-4, "{name}: max abs diff {diff}");
    }
    let logits = reference_rows(&reference["outputs"]["logits_per_video"]);
    let diff = max_abs_diff(&f32_list(&answer["logits"]), &logits[0]);
    assert!(diff <= 1e-4, "logits: max abs diff {diff}");
    let probs = reference_rows(&reference["outputs"]["probs"]);
    let diff = max_abs_diff(&f32_list(&answer["probs"]), &probs[0]);
    assert!(diff <= 1e-5, "probs: max abs diff {diff}");
    assert_eq!(answer["backend"], "cpu");
    assert_eq!(answer["model"], model.to_str().unwrap());
}

/// `fixtures/references/xclip_video7.json` (make_xclip_references.py) and
/// its frames folder. Found from this crate's own path: `fixtures_dir()` is
/// compiled into the shared test-support crate, which a target dir shared
/// between checkouts may have built from another checkout.
fn video7_reference() -> (PathBuf, serde_json::Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/references");
    let text = std::fs::read_to_string(dir.join("xclip_video7.json")).unwrap();
    (
        dir.join("xclip_video7"),
        serde_json::from_str(&text).unwrap(),
    )
}

#[test]
fn longer_video_is_sampled_as_transformers_samples() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("xclip");
    let (frames, reference) = video7_reference();
    assert_eq!(
        reference["sampled_indices"],
        serde_json::json!([0, 1, 3, 5])
    );
    let texts = string_list(&reference["texts"]);
    let answer = similarity_json(home.path(), &model, &frames, &texts);
    for (name, got) in [
        ("pixel_values", &answer["preprocessed"]["pixel_values"]),
        ("text_embeds", &answer["outputs"]["text_embeds"]),
        ("video_embeds", &answer["outputs"]["video_embeds"]),
    ] {
        let (shape, want) = inline(&reference[name]);
        let diff = array_diff(got, &shape, &want);
        assert!(diff <= 1e-4, "{name}: max abs diff {diff}");
    }
    let diff = max_abs_diff(
        &f32_list(&answer["logits"]),
        &f32_list(&reference["logits_per_video"]["data"]),
    );
    assert!(diff <= 1e-4, "logits: max abs diff {diff}");
    let diff = max_abs_diff(
        &f32_list(&answer["probs"]),
        &f32_list(&reference["probs"]["data"]),
    );
    assert!(diff <= 1e-5, "probs: max abs diff {diff}");
}

#[test]
fn bad_videos_fail_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("xclip");
    let fail = |model: &Path, media: &str, path: &Path| {
        failure_of(
            home.path(),
            "similarity",
            model,
            &[media, path.to_str().unwrap(), "a ball"],
        )
    };
    let frames_copy = |name: &str, count: usize| {
        let dir = home.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for i in 0..count {
            let file = format!("frame_{i:02}.png");
            std::fs::copy(model.join("frames").join(&file), dir.join(&file)).unwrap();
        }
        dir
    };
    // A corrupt frame: the error names it.
    let corrupt = frames_copy("corrupt", 4);
    let bytes = std::fs::read(corrupt.join("frame_02.png")).unwrap();
    std::fs::write(corrupt.join("frame_02.png"), &bytes[..bytes.len() / 2]).unwrap();
    let err = fail(&model, "--video", &corrupt);
    assert!(
        err.contains("frame_02.png") && err.contains("not a readable PNG or JPEG"),
        "{err}"
    );
    // Fewer frames than vision_config.num_frames.
    let short = frames_copy("short", 3);
    let err = fail(&model, "--video", &short);
    assert!(
        err.contains("the video has 3 frames; the model takes 4"),
        "{err}"
    );
    // An empty folder.
    let err = fail(&model, "--video", &frames_copy("empty", 0));
    assert!(err.contains("holds no video frames"), "{err}");
    // X-CLIP takes videos, CLIP images.
    let image = model.join("frames/frame_00.png");
    let err = fail(&model, "--image", &image);
    assert!(
        err.contains("takes a video (--video), not an image"),
        "{err}"
    );
    let err = fail(&fixture_model("clip"), "--video", &model.join("frames"));
    assert!(
        err.contains("takes an image (--image), not a video"),
        "{err}"
    );
}
