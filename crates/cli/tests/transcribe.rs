//! `transcribe` reproduces transformers for the Whisper and wav2vec2
//! fixtures (preprocessed inputs, logits, greedy ids, text), accepts other
//! WAV layouts (stereo, float, other rates), and refuses bad input with one
//! line.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

fn transcribe(home: &Path, model: &Path, audio: &Path, extra: &[&str]) -> serde_json::Value {
    let out = run(cli(home)
        .args(["transcribe", "--json", "--model"])
        .arg(model)
        .args(extra)
        .arg(audio));
    json_ok(&out)
}

/// The answer's `{shape, data}` under `section.name` against the reference
/// array, within `tolerance`.
fn assert_array_close(
    answer: &serde_json::Value,
    section: &str,
    name: &str,
    model: &str,
    tolerance: f32,
) {
    let reference = reference(model);
    let (shape, want) = reference_array(model, &reference[section][name]);
    let got = &answer[section][name];
    let got_shape: Vec<usize> = serde_json::from_value(got["shape"].clone()).unwrap();
    assert_eq!(got_shape, shape, "{model} {name}: shape");
    let diff = max_abs_diff(&f32_list(&got["data"]), &want);
    assert!(diff <= tolerance, "{model} {name}: max abs diff {diff}");
}

#[test]
fn whisper_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("whisper");
    let reference = reference("whisper");
    let generation = &reference["generation"];
    let answer = transcribe(
        home.path(),
        &model,
        &model.join("input.wav"),
        &[
            "--max-new-tokens",
            "12",
            "--greedy",
            "--return-inputs",
            "--return-logits",
        ],
    );
    assert_array_close(&answer, "preprocessed", "input_features", "whisper", 1e-4);
    assert_array_close(&answer, "outputs", "prefix_logits", "whisper", 1e-4);
    assert_eq!(answer["decoder_prefix"], generation["decoder_prefix"]);
    assert_eq!(
        id_list(&answer["token_ids"]),
        id_list(&generation["token_ids"])
    );
    assert_eq!(answer["text"], generation["text"]);
    assert_eq!(answer["backend"], "cpu");
    assert_eq!(answer["model"], model.to_str().unwrap());
}

#[test]
fn wav2vec2_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("wav2vec2");
    let reference = reference("wav2vec2");
    let answer = transcribe(
        home.path(),
        &model,
        &model.join("input.wav"),
        &["--return-inputs", "--return-logits"],
    );
    assert_array_close(&answer, "preprocessed", "input_values", "wav2vec2", 1e-4);
    assert_array_close(&answer, "outputs", "logits", "wav2vec2", 1e-4);
    assert_eq!(
        id_list(&answer["frame_ids"]),
        id_list(&reference["outputs"]["argmax_ids"])
    );
    // The ASR pipeline's CTC text: blanks dropped, other specials kept.
    assert_eq!(answer["text"], reference["outputs"]["text"]);
    assert_eq!(answer["token_ids"], serde_json::json!([]));
}

/// The fixture's samples as int16.
fn fixture_pcm(model: &str) -> (Vec<i16>, u32) {
    let mut reader = hound::WavReader::open(fixture_model(model).join("input.wav")).unwrap();
    let rate = reader.spec().sample_rate;
    (reader.samples::<i16>().map(Result::unwrap).collect(), rate)
}

fn write_wav(path: &Path, spec: hound::WavSpec, frames: &[Vec<f32>]) {
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for frame in frames {
        for &s in frame {
            match spec.sample_format {
                hound::SampleFormat::Float => writer.write_sample(s).unwrap(),
                hound::SampleFormat::Int => writer.write_sample((s * 32768.0) as i16).unwrap(),
            }
        }
    }
    writer.finalize().unwrap();
}

#[test]
fn stereo_and_float_files_give_the_same_transcription() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("wav2vec2");
    let (pcm, rate) = fixture_pcm("wav2vec2");
    let want = transcribe(
        home.path(),
        &model,
        &model.join("input.wav"),
        &["--return-logits"],
    );
    // Both channels equal: the mono mix is the original signal.
    let stereo = home.path().join("stereo.wav");
    let frames: Vec<Vec<f32>> = pcm
        .iter()
        .map(|&s| vec![f32::from(s) / 32768.0; 2])
        .collect();
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_wav(&stereo, spec, &frames);
    let float = home.path().join("float.wav");
    let mono: Vec<Vec<f32>> = frames.iter().map(|f| vec![f[0]]).collect();
    let spec = hound::WavSpec {
        channels: 1,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
        ..spec
    };
    write_wav(&float, spec, &mono);
    for file in [&stereo, &float] {
        let got = transcribe(home.path(), &model, file, &["--return-logits"]);
        assert_eq!(got["text"], want["text"], "{}", file.display());
        let diff = max_abs_diff(
            &f32_list(&got["outputs"]["logits"]["data"]),
            &f32_list(&want["outputs"]["logits"]["data"]),
        );
        assert!(diff <= 1e-5, "{}: logits differ by {diff}", file.display());
    }
}

#[test]
fn other_rates_are_resampled_to_the_model_rate() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("wav2vec2");
    let wav = home.path().join("tone.wav");
    let rate = 44_100u32;
    let frames: Vec<Vec<f32>> = (0..rate / 2)
        .map(|i| vec![0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin()])
        .collect();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_wav(&wav, spec, &frames);
    let answer = transcribe(home.path(), &model, &wav, &["--return-inputs"]);
    // Half a second at the model's 16 kHz.
    assert_eq!(
        answer["preprocessed"]["input_values"]["shape"],
        serde_json::json!([1, 8000])
    );
}

#[test]
fn bad_audio_fails_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let model = fixture_model("wav2vec2");
    // Not audio at all.
    let png = fixture_model("clip").join("input.png");
    let err = failure_of(home.path(), "transcribe", &model, &[png.to_str().unwrap()]);
    assert!(err.contains("not a readable WAV file"), "{err}");
    // A valid header with no samples.
    let empty = home.path().join("empty.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_wav(&empty, spec, &[]);
    let err = failure_of(
        home.path(),
        "transcribe",
        &model,
        &[empty.to_str().unwrap()],
    );
    assert!(err.contains("holds no samples"), "{err}");
    // Cut in the middle of the data.
    let bytes = std::fs::read(model.join("input.wav")).unwrap();
    let truncated = home.path().join("truncated.wav");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2 + 1]).unwrap();
    let err = failure_of(
        home.path(),
        "transcribe",
        &model,
        &[truncated.to_str().unwrap()],
    );
    assert!(err.contains("truncated.wav"), "{err}");
    // Too short for the convolutional front end.
    let short = home.path().join("short.wav");
    write_wav(&short, spec, &[vec![0.1], vec![0.2]]);
    let err = failure_of(
        home.path(),
        "transcribe",
        &model,
        &[short.to_str().unwrap()],
    );
    assert!(err.contains("too short"), "{err}");
    // Missing file.
    let err = failure_of(home.path(), "transcribe", &model, &["/nonexistent.wav"]);
    assert!(err.contains("/nonexistent.wav"), "{err}");
    // Whisper takes at most 30 s.
    let long = home.path().join("long.wav");
    let frames = vec![vec![0.0f32]; 16_000 * 31];
    write_wav(&long, spec, &frames);
    let err = failure_of(
        home.path(),
        "transcribe",
        &fixture_model("whisper"),
        &[long.to_str().unwrap()],
    );
    assert!(err.contains("at most 30.0 s"), "{err}");
    // A text model is not a speech model.
    let wav = model.join("input.wav");
    let err = failure_of(
        home.path(),
        "transcribe",
        &fixture_model("gpt2"),
        &[wav.to_str().unwrap()],
    );
    assert!(err.contains("not a speech-recognition model"), "{err}");
}

fn variant_reference(model: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(model.join("reference.json")).unwrap()).unwrap()
}

/// `fixtures/variants-src/make_speech_variants.py`: a multilingual
/// generation config (language detected) and a 128-mel, n_fft 512, hop 200
/// front end.
#[test]
fn whisper_variants_match_reference() {
    let home = tempfile::tempdir().unwrap();
    for model in variant_dirs("whisper") {
        let reference = variant_reference(&model);
        let name = reference["variant"].as_str().unwrap().to_owned();
        let answer = transcribe(
            home.path(),
            &model,
            &model.join("input.wav"),
            &[
                "--max-new-tokens",
                "12",
                "--return-inputs",
                "--return-logits",
            ],
        );
        let features = &answer["preprocessed"]["input_features"];
        assert_eq!(
            features["shape"], reference["input_features_shape"],
            "{name}"
        );
        // The first 4 frames of every mel bin, and the sum of all.
        let data = f32_list(&features["data"]);
        let frames = reference["input_features_shape"][2].as_u64().unwrap() as usize;
        let head: Vec<f32> = data
            .chunks(frames)
            .flat_map(|bin| bin[..4].to_vec())
            .collect();
        let diff = max_abs_diff(&head, &f32_list(&reference["input_features_head"]));
        assert!(diff <= 1e-4, "{name}: input_features max abs diff {diff}");
        let sum: f64 = data.iter().map(|&v| f64::from(v)).sum();
        let want = reference["input_features_sum"].as_f64().unwrap();
        assert!(
            (sum - want).abs() <= 1e-6 * data.len() as f64,
            "{name}: input_features sum {sum} vs {want}"
        );
        let logits = f32_list(&answer["outputs"]["prefix_logits"]["data"]);
        let diff = max_abs_diff(
            &logits[..64],
            &f32_list(&reference["prefix_logits_first64"]),
        );
        assert!(diff <= 1e-4, "{name}: prefix_logits max abs diff {diff}");
        for pair in reference["prefix_logits_top32"].as_array().unwrap() {
            let (i, v) = (
                pair[0].as_u64().unwrap() as usize,
                pair[1].as_f64().unwrap(),
            );
            assert!(
                (f64::from(logits[i]) - v).abs() <= 1e-4,
                "{name}: logit {i}"
            );
        }
        assert_eq!(
            answer["decoder_prefix"], reference["decoder_prefix"],
            "{name}"
        );
        assert_eq!(
            id_list(&answer["token_ids"]),
            id_list(&reference["token_ids"]),
            "{name}: token_ids"
        );
        assert_eq!(answer["text"], reference["text"], "{name}: text");
    }
}

/// Large-checkpoint layout (layer-norm feature encoder, stable layer norm,
/// conv biases, odd positional kernel, `weight_g`/`weight_v`) and a CTC
/// blank that is the last id.
#[test]
fn wav2vec2_variants_match_reference() {
    let home = tempfile::tempdir().unwrap();
    for model in variant_dirs("wav2vec2") {
        let reference = variant_reference(&model);
        let name = reference["variant"].as_str().unwrap().to_owned();
        let answer = transcribe(
            home.path(),
            &model,
            &model.join("input.wav"),
            &["--return-inputs", "--return-logits"],
        );
        let values = f32_list(&answer["preprocessed"]["input_values"]["data"]);
        let diff = max_abs_diff(&values[..8], &f32_list(&reference["input_values_head"]));
        assert!(diff <= 1e-4, "{name}: input_values max abs diff {diff}");
        let logits = &answer["outputs"]["logits"];
        let shape: Vec<usize> = serde_json::from_value(logits["shape"].clone()).unwrap();
        let want_shape: Vec<usize> =
            serde_json::from_value(reference["logits_shape"].clone()).unwrap();
        assert_eq!(
            shape[shape.len() - 2..],
            want_shape[..],
            "{name}: logits shape"
        );
        let diff = max_abs_diff(&f32_list(&logits["data"]), &f32_list(&reference["logits"]));
        assert!(diff <= 1e-4, "{name}: logits max abs diff {diff}");
        assert_eq!(
            id_list(&answer["frame_ids"]),
            id_list(&reference["argmax_ids"]),
            "{name}: frame ids"
        );
        assert_eq!(answer["text"], reference["text"], "{name}: text");
    }
}
