//! `similarity --video` reproduces transformers' X-CLIP for the fixture
//! (pixel values, per-video text embeddings, video embedding, logits,
//! probabilities), samples longer videos as transformers' video processors
//! do, and refuses bad frame folders with one line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};

#[test]
fn xclip_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let xclip = Fixture::new("xclip");
    let pixel_values = xclip.array_at(&["preprocessed", "pixel_values"]);
    assert_eq!(pixel_values.shape, [1, 4, 3, 32, 32]);
    let frames = xclip.file("frames");
    check_similarity_fixture(
        cli(home.path()),
        &xclip,
        ("--video", &frames),
        "pixel_values",
    );
}

/// The same on the ONNX backends, from the graph exported on first use
/// (the fixture has none).
#[test]
fn xclip_fixture_matches_reference_on_the_onnx_backends() {
    let test = "xclip_fixture_matches_reference_on_the_onnx_backends";
    let home = tempfile::tempdir().unwrap();
    let xclip = Fixture::new("xclip");
    let frames = xclip.file("frames");
    for backend in parity_backends(test).into_iter().filter(|b| *b != "cpu") {
        let cmd = cli_on(home.path(), backend);
        let extra = ["--backend", backend];
        let answer = similarity(
            cmd,
            &xclip.dir,
            ("--video", &frames),
            &xclip.texts(),
            &extra,
        );
        assert_eq!(answer["backend"], backend);
        let files: Vec<&str> = answer["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["file"].as_str())
            .collect();
        assert!(files.contains(&"onnx/model.onnx"), "{files:?}");
        let what = format!("xclip on {backend}");
        assert_similarity_reference(&what, &xclip, &answer, "pixel_values", "video");
    }
}

/// `fixtures/references/xclip_video7.json` (make_xclip_references.py) and
/// its frames folder. Found from this crate's own path: `fixtures_dir()` is
/// compiled into the shared test-support crate, which a target dir shared
/// between checkouts may have built from another checkout.
fn video7_reference() -> (PathBuf, serde_json::Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/references");
    (
        dir.join("xclip_video7"),
        read_json(&dir.join("xclip_video7.json")),
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
    let answer = similarity(cli(home.path()), &model, ("--video", &frames), &texts, &[]);
    for (name, got) in [
        ("pixel_values", &answer["preprocessed"]["pixel_values"]),
        ("text_embeds", &answer["outputs"]["text_embeds"]),
        ("video_embeds", &answer["outputs"]["video_embeds"]),
    ] {
        assert_array_close(name, got, &Array::from_json(&reference[name]), 1e-4);
    }
    assert_scores(
        "video7",
        &answer,
        &f32_list(&reference["logits_per_video"]["data"]),
        &f32_list(&reference["probs"]["data"]),
    );
}

#[test]
fn bad_videos_fail_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("xclip");
    let fail = |model: &Path, media: &str, path: &Path| {
        similarity_failure(cli(home.path()), model, (media, path), "a ball")
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
    let frame = corrupt.join("frame_02.png");
    write_prefix(&frame, &frame, |n| n / 2);
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
