//! `transcribe` reproduces transformers for the Whisper and wav2vec2
//! fixtures (preprocessed inputs, logits, greedy ids, text), accepts other
//! WAV layouts (stereo, float, other rates), and refuses bad input with one
//! line.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;
use common::*;
use std::path::Path;

const INPUTS_AND_LOGITS: [&str; 2] = ["--return-inputs", "--return-logits"];

/// `transcribe --json EXTRA...` of the fixture's `input.wav`.
fn transcribe_fixture(home: &Path, fixture: &Fixture, extra: &[&str]) -> serde_json::Value {
    transcribe(cli(home), &fixture.dir, &fixture.file("input.wav"), extra)
}

#[test]
fn whisper_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let whisper = Fixture::new("whisper");
    let generation = &whisper["generation"];
    let extra = [
        &["--max-new-tokens", "12", "--greedy"],
        &INPUTS_AND_LOGITS[..],
    ]
    .concat();
    let answer = transcribe_fixture(home.path(), &whisper, &extra);
    for path in [
        ["preprocessed", "input_features"],
        ["outputs", "prefix_logits"],
    ] {
        assert_like_reference("whisper", &whisper, &answer, &path, 1e-4);
    }
    assert_eq!(answer["decoder_prefix"], generation["decoder_prefix"]);
    assert_eq!(
        id_list(&answer["token_ids"]),
        id_list(&generation["token_ids"])
    );
    assert_eq!(answer["text"], generation["text"]);
    assert_eq!(answer["backend"], "cpu");
    assert_eq!(answer["model"], whisper.dir.to_str().unwrap());
}

#[test]
fn wav2vec2_fixture_matches_reference() {
    let home = tempfile::tempdir().unwrap();
    let wav2vec2 = Fixture::new("wav2vec2");
    let answer = transcribe_fixture(home.path(), &wav2vec2, &INPUTS_AND_LOGITS);
    assert_wav2vec2_reference("wav2vec2", &wav2vec2, &answer);
    assert_eq!(answer["token_ids"], serde_json::json!([]));
}

#[test]
fn stereo_and_float_files_give_the_same_transcription() {
    let home = tempfile::tempdir().unwrap();
    let wav2vec2 = Fixture::new("wav2vec2");
    let (pcm, rate) = read_pcm16(&wav2vec2.file("input.wav"));
    let want = transcribe_fixture(home.path(), &wav2vec2, &["--return-logits"]);
    // Both channels equal: the mono mix is the original signal.
    let stereo = home.path().join("stereo.wav");
    let frames: Vec<Vec<f32>> = pcm
        .iter()
        .map(|&s| vec![f32::from(s) / 32768.0; 2])
        .collect();
    write_wav(&stereo, pcm16(2, rate), &frames);
    let float = home.path().join("float.wav");
    let mono: Vec<Vec<f32>> = frames.iter().map(|f| vec![f[0]]).collect();
    let spec = hound::WavSpec {
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
        ..pcm16(1, rate)
    };
    write_wav(&float, spec, &mono);
    for file in [&stereo, &float] {
        let got = transcribe(cli(home.path()), &wav2vec2.dir, file, &["--return-logits"]);
        assert_eq!(got["text"], want["text"], "{}", file.display());
        assert_close(
            &format!("{}: logits", file.display()),
            &f32_list(&got["outputs"]["logits"]["data"]),
            &f32_list(&want["outputs"]["logits"]["data"]),
            1e-5,
        );
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
    write_wav(&wav, pcm16(1, rate), &frames);
    let answer = transcribe(cli(home.path()), &model, &wav, &["--return-inputs"]);
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
    let fail = |model: &Path, audio: &Path| {
        failure_of(
            cli(home.path()),
            "transcribe",
            model,
            &[audio.to_str().unwrap()],
        )
    };
    let file = |name: &str| home.path().join(name);
    // A valid header with no samples; too short for the convolutional
    // front end; cut in the middle of the data. (Longer than Whisper's
    // 30 s window is transcribed whole: `transcribe_long.rs`.)
    write_wav(&file("empty.wav"), pcm16(1, 16_000), &[]);
    write_wav(
        &file("short.wav"),
        pcm16(1, 16_000),
        &[vec![0.1], vec![0.2]],
    );
    write_prefix(&model.join("input.wav"), &file("truncated.wav"), |n| {
        n / 2 + 1
    });
    // A text model is not a speech model.
    let gpt2 = fixture_model("gpt2");
    let png = fixture_model("clip").join("input.png");
    for (model, audio, needle) in [
        (&model, png, "not a readable audio file"),
        (&model, file("empty.wav"), "holds no samples"),
        (&model, file("truncated.wav"), "truncated.wav"),
        (&model, file("short.wav"), "too short"),
        (&model, "/nonexistent.wav".into(), "/nonexistent.wav"),
        (
            &gpt2,
            model.join("input.wav"),
            "not a speech-recognition model",
        ),
    ] {
        let err = fail(model, &audio);
        assert!(err.contains(needle), "{err}");
    }
}

/// `fixtures/variants-src/make_speech_variants.py`: a multilingual
/// generation config (language detected) and a 128-mel, n_fft 512, hop 200
/// front end.
#[test]
fn whisper_variants_match_reference() {
    let home = tempfile::tempdir().unwrap();
    let backends = parity_backends("whisper_variants_match_reference");
    for (backend, variant) in backends.iter().flat_map(|b| {
        Fixture::variants("whisper")
            .into_iter()
            .map(move |v| (*b, v))
    }) {
        let name = &format!("{} on {backend}", variant.name);
        let reference = &variant.reference;
        let extra = [
            &["--max-new-tokens", "12", "--backend", backend],
            &INPUTS_AND_LOGITS[..],
        ]
        .concat();
        let answer = transcribe(
            cli_on(home.path(), backend),
            &variant.dir,
            &variant.file("input.wav"),
            &extra,
        );
        assert_eq!(answer["backend"], backend, "{name}");
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
        let want = f32_list(&reference["input_features_head"]);
        assert_close(&format!("{name}: input_features"), &head, &want, 1e-4);
        let sum: f64 = data.iter().map(|&v| f64::from(v)).sum();
        let want = reference["input_features_sum"].as_f64().unwrap();
        assert!(
            (sum - want).abs() <= 1e-6 * data.len() as f64,
            "{name}: input_features sum {sum} vs {want}"
        );
        let logits = f32_list(&answer["outputs"]["prefix_logits"]["data"]);
        let want = f32_list(&reference["prefix_logits_first64"]);
        assert_close(
            &format!("{name}: prefix_logits"),
            &logits[..64],
            &want,
            1e-4,
        );
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
    let backends = parity_backends("wav2vec2_variants_match_reference");
    for (backend, variant) in backends.iter().flat_map(|b| {
        Fixture::variants("wav2vec2")
            .into_iter()
            .map(move |v| (*b, v))
    }) {
        let name = &format!("{} on {backend}", variant.name);
        let reference = &variant.reference;
        let extra = [&["--backend", backend], &INPUTS_AND_LOGITS[..]].concat();
        let answer = transcribe(
            cli_on(home.path(), backend),
            &variant.dir,
            &variant.file("input.wav"),
            &extra,
        );
        assert_eq!(answer["backend"], backend, "{name}");
        let values = f32_list(&answer["preprocessed"]["input_values"]["data"]);
        let want = f32_list(&reference["input_values_head"]);
        assert_close(&format!("{name}: input_values"), &values[..8], &want, 1e-4);
        let logits = Array::from_json(&answer["outputs"]["logits"]);
        let want_shape = shape_of(&reference["logits_shape"]);
        let rank = logits.shape.len();
        assert_eq!(
            logits.shape[rank - 2..],
            want_shape[..],
            "{name}: logits shape"
        );
        let want = f32_list(&reference["logits"]);
        assert_close(&format!("{name}: logits"), &logits.data, &want, 1e-4);
        assert_eq!(
            id_list(&answer["frame_ids"]),
            id_list(&reference["argmax_ids"]),
            "{name}: frame ids"
        );
        assert_eq!(answer["text"], reference["text"], "{name}: text");
    }
}

/// The Whisper fixture's clip as FLAC, MP3, OGG/Vorbis and M4A/AAC
/// (`fixtures/audio`): FLAC is lossless and gives the WAV's answer exactly;
/// the lossy files are decoded and transcribed, and the test prints how
/// their greedy ids compare with the WAV's (a random-weight model's argmax
/// moves with small changes in the input, so they are not required equal).
#[test]
fn compressed_formats_are_transcribed() {
    let home = tempfile::tempdir().unwrap();
    let whisper = Fixture::new("whisper");
    let wav = transcribe_fixture(home.path(), &whisper, &[]);
    let audio = fixtures_dir().join("audio");
    let flac = transcribe(
        cli(home.path()),
        &whisper.dir,
        &audio.join("input.flac"),
        &[],
    );
    assert_eq!(flac["text"], wav["text"]);
    assert_eq!(flac["token_ids"], wav["token_ids"]);
    let wav_ids = id_list(&wav["token_ids"]);
    for file in ["input.mp3", "input.ogg", "input.m4a"] {
        let answer = transcribe(cli(home.path()), &whisper.dir, &audio.join(file), &[]);
        let ids = id_list(&answer["token_ids"]);
        assert!(!ids.is_empty(), "{file}: {answer}");
        let same = ids.iter().zip(&wav_ids).take_while(|(a, b)| a == b).count();
        println!(
            "{file}: first {same} of {} greedy ids equal the WAV's",
            wav_ids.len()
        );
    }
    // An MP4 without audio, a truncated MP3: one line each.
    let err = failure_of(
        cli(home.path()),
        "transcribe",
        &whisper.dir,
        &[audio.join("video-only.mp4").to_str().unwrap()],
    );
    assert!(err.contains("no audio track"), "{err}");
    let cut = home.path().join("cut.mp3");
    write_prefix(&audio.join("input.mp3"), &cut, |n| n / 2);
    let err = failure_of(
        cli(home.path()),
        "transcribe",
        &whisper.dir,
        &[cut.to_str().unwrap()],
    );
    assert!(err.contains("truncated"), "{err}");
}

/// `--timestamps` on wav2vec2: each word with its start and end (CTC
/// frames × the feature encoder's stride / the rate, as transformers'
/// pipeline computes them; the offsets themselves are checked against
/// transformers in `ctc.rs` on `fixtures/ctc`), in order, inside the clip,
/// spelling the text. Whisper gives segments instead (transformers' on the
/// clip).
#[test]
fn wav2vec2_word_timestamps() {
    let home = tempfile::tempdir().unwrap();
    let wav2vec2 = Fixture::new("wav2vec2");
    let answer = transcribe_fixture(home.path(), &wav2vec2, &["--timestamps"]);
    let words = answer["words"].as_array().unwrap();
    assert!(!words.is_empty(), "{answer}");
    let samples = reference("wav2vec2")["inputs"]["samples"]
        .as_array()
        .map_or(0, Vec::len);
    let duration = samples as f64 / 16_000.0;
    let mut last_end = 0.0;
    for word in words {
        let (start, end) = (
            word["start"].as_f64().unwrap(),
            word["end"].as_f64().unwrap(),
        );
        assert!(last_end <= start && start < end, "{word}");
        assert!(
            samples == 0 || end <= duration + 0.02,
            "{word} beyond {duration} s"
        );
        last_end = end;
    }
    let spelled: Vec<&str> = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
    let text = answer["text"].as_str().unwrap();
    assert_eq!(
        spelled.join(" "),
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    // Whisper's timestamps are segments: transformers' on the clip
    // (`fixtures/references/longform.json`).
    let whisper = Fixture::new("whisper");
    let timed = transcribe(
        cli(home.path()),
        &whisper.dir,
        &whisper.file("input.wav"),
        &["--timestamps", "--max-new-tokens", "128"],
    );
    let want = &shared_reference("longform.json")["whisper"]["whisper"]["clip_timestamps"];
    assert_eq!(timed["token_ids"], want["sequences"]);
    let segments = timed["segments"].as_array().unwrap();
    assert_eq!(segments.len(), want["segments"].as_array().unwrap().len());
    for (got, want) in segments.iter().zip(want["segments"].as_array().unwrap()) {
        assert_eq!(got["tokens"], want["tokens"]);
    }
}

/// `--task`: the multilingual variant's prefix carries the task token its
/// generation config maps the task to (`task_to_id`), in the place it
/// forces one; an English-only model and a CTC model refuse a task.
#[test]
fn whisper_task_token() {
    let home = tempfile::tempdir().unwrap();
    let variant = Fixture::at(fixtures_dir().join("models/variants/whisper_multilingual"));
    let tasks = &read_json(&variant.file("generation_config.json"))["task_to_id"];
    for task in ["transcribe", "translate"] {
        let answer = transcribe_fixture(
            home.path(),
            &variant,
            &["--task", task, "--max-new-tokens", "4"],
        );
        let prefix = id_list(&answer["decoder_prefix"]);
        assert_eq!(
            u64::from(prefix[2]),
            tasks[task].as_u64().unwrap(),
            "{task}: {prefix:?}"
        );
    }
    for model in ["whisper", "wav2vec2"] {
        let fixture = Fixture::new(model);
        let err = failure_of(
            cli(home.path()),
            "transcribe",
            &fixture.dir,
            &[
                "--task",
                "translate",
                fixture.file("input.wav").to_str().unwrap(),
            ],
        );
        assert!(err.contains("task"), "{model}: {err}");
    }
}
