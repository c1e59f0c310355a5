//! Fuzz targets over every parser of outside bytes the library has, each
//! seeded with real files and run for a bounded time (see
//! `ipfs_accelerate_tests::fuzz`; `cargo xtask fuzz` runs them longer).
//! Any input must give an error or an answer: never a panic, a hang, or an
//! allocation sized by the input (the address space is limited).
//!
//! The multipart parser is fuzzed beside it, in the server crate's unit
//! tests (it is private there).

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::export::{model_io, rewrites};
use ipfs_accelerate::media::{decode_audio, decode_image, read_wav};
use ipfs_accelerate::skills::text_generation::gguf::{GgufCompute, GgufModel};
use ipfs_accelerate::skills::text_generation::ChatTemplate;
use ipfs_accelerate::skills::{
    families, ImageCaptioner, SimilarityModel, SpeechRecognizer, Text2TextGenerator, TextEmbedder,
    TextGenerator,
};
use ipfs_accelerate::storage::{unixfs, Store};
use ipfs_accelerate::{BackendKind, Loader, ModelRef};
use ipfs_accelerate_tests::fuzz::{
    fuzz, limit_address_space, mutate_bytes, mutate_json_bytes, Rng,
};
use ipfs_accelerate_tests::{
    fixture_copy, fixture_model, fixtures_dir, loader, model_ref, smollm2_or_skip,
};
use std::path::Path;

/// Far above what any fixture needs, far below what a size read from a
/// hostile header would ask for.
const ADDRESS_SPACE: u64 = 6 << 30;

fn setup() {
    limit_address_space(ADDRESS_SPACE);
}

fn assert_no_findings(findings: Vec<String>) {
    assert!(findings.is_empty(), "findings:\n{}", findings.join("\n"));
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads `model` as its family's skill on the CPU; what loads runs once.
fn load_and_run(loader: &Loader, model: &ModelRef, skill: &str) {
    let cpu = BackendKind::Cpu;
    match skill {
        "text_embedding" => {
            if let Ok(e) = TextEmbedder::load(loader, model, cpu) {
                let _ = e.embed(&["hello world"]);
            }
        }
        "text_generation" => {
            if let Ok(g) = TextGenerator::load(loader, model, cpu) {
                let options = ipfs_accelerate::GenerateOptions {
                    max_new_tokens: 2,
                    ..Default::default()
                };
                let _ = g.generate("hello", &options, &mut |_| {});
            }
        }
        "text2text" => {
            if let Ok(g) = Text2TextGenerator::load(loader, model, cpu) {
                let options = ipfs_accelerate::GenerateOptions {
                    max_new_tokens: 2,
                    ..Default::default()
                };
                let _ = g.generate("hello", &options, &mut |_| {});
            }
        }
        "speech_recognition" => {
            let _ = SpeechRecognizer::load(loader, model, cpu);
        }
        "similarity" => {
            let _ = SimilarityModel::load(loader, model, cpu);
        }
        "image_to_text" => {
            let _ = ImageCaptioner::load(loader, model, cpu);
        }
        other => panic!("no fuzz loader for skill {other}"),
    }
}

/// `config.json` of every family in the table, mutated, loaded (and run
/// once when it loads).
#[test]
fn config_json_of_every_family() {
    setup();
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let mut findings = Vec::new();
    for family in families() {
        let model = fixture_copy(family.fixture, &home.path().join(family.model_type));
        let config = model.join("config.json");
        let seeds = vec![read(&config)];
        let reference = model_ref(&model);
        findings.extend(fuzz(
            &format!("config_json_{}", family.model_type),
            &seeds,
            mutate_json_bytes,
            |input| {
                std::fs::write(&config, input).unwrap();
                load_and_run(&loader, &reference, family.skill.name());
            },
        ));
    }
    assert_no_findings(findings);
}

/// `model.safetensors`: the header (length prefix and JSON) mostly.
#[test]
fn safetensors_headers() {
    setup();
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let model = fixture_copy("bert", home.path());
    let weights = model.join("model.safetensors");
    let seed = read(&weights);
    let header = 8 + u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    let reference = model_ref(&model);
    assert_no_findings(fuzz(
        "safetensors",
        &[seed],
        |rng, seed| mutate_bytes(rng, seed, header),
        |input| {
            std::fs::write(&weights, input).unwrap();
            load_and_run(&loader, &reference, "text_embedding");
        },
    ));
}

/// `tokenizer.json`, structurally and byte-wise.
#[test]
fn tokenizer_json() {
    setup();
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let model = fixture_copy("bert", home.path());
    let tokenizer = model.join("tokenizer.json");
    let reference = model_ref(&model);
    assert_no_findings(fuzz(
        "tokenizer_json",
        &[read(&tokenizer)],
        mutate_json_bytes,
        |input| {
            std::fs::write(&tokenizer, input).unwrap();
            load_and_run(&loader, &reference, "text_embedding");
        },
    ));
}

/// GGUF metadata: the SmolLM2 file's header (metadata and tensor table)
/// mutated; the tensor data is cut off, which the loader must also refuse.
#[test]
fn gguf_metadata() {
    let Some(file) = smollm2_or_skip("gguf_metadata") else {
        return;
    };
    setup();
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let dir = home.path().join("gguf");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.gguf");
    let mut header = read(&file);
    // The metadata and tensor table of SmolLM2 end well before 2 MiB.
    header.truncate(2 << 20);
    let gguf = GgufModel {
        model: model_ref(&dir),
        file: "model.gguf".to_owned(),
    };
    assert_no_findings(fuzz(
        "gguf_metadata",
        &[header],
        |rng, seed| mutate_bytes(rng, seed, 64 * 1024),
        |input| {
            std::fs::write(&path, input).unwrap();
            let _ =
                TextGenerator::load_gguf(&loader, &gguf, BackendKind::Cpu, GgufCompute::Quantized);
        },
    ));
}

/// Cache manifests: read one, list them all, verify the store.
#[test]
fn manifests() {
    setup();
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path().join("cache")).unwrap();
    store
        .import_dir(&fixture_model("bert"), "org/bert", "main")
        .unwrap();
    let path = store.manifest_path("org/bert", "main");
    assert_no_findings(fuzz(
        "manifests",
        &[read(&path)],
        mutate_json_bytes,
        |input| {
            std::fs::write(&path, input).unwrap();
            let _ = store.manifest("org/bert", "main");
            let _ = store.manifests();
            let _ = store.verify();
        },
    ));
}

/// Model references: folders, Hub ids with revisions, CIDs and
/// `ipfs://` URLs.
#[test]
fn model_references_and_cids() {
    setup();
    let seeds: Vec<Vec<u8>> = [
        "ipfs://QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi/sub/file",
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        "sentence-transformers/all-MiniLM-L6-v2@main",
        "org/name@0123456789abcdef0123456789abcdef01234567",
        "./fixtures/models/bert",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    assert_no_findings(fuzz(
        "model_references",
        &seeds,
        |rng, seed| mutate_bytes(rng, seed, 0),
        |input| {
            let text = String::from_utf8_lossy(input);
            let _ = ModelRef::parse(&text);
            let _ = unixfs::parse_cid(&text);
        },
    ));
}

/// WAV files (PCM and float, mono and stereo) through the reader.
#[test]
fn wav_files() {
    setup();
    let home = tempfile::tempdir().unwrap();
    let seeds = vec![
        read(&fixture_model("whisper").join("input.wav")),
        read(&fixtures_dir().join("media/clap_chirp.wav")),
    ];
    let path = home.path().join("input.wav");
    assert_no_findings(fuzz(
        "wav",
        &seeds,
        |rng, seed| mutate_bytes(rng, seed, 64),
        |input| {
            std::fs::write(&path, input).unwrap();
            let _ = read_wav(&path);
        },
    ));
}

/// FLAC, MP3, Ogg/Vorbis and AAC in MP4 through symphonia, as uploads
/// reach it.
#[test]
fn compressed_audio() {
    setup();
    let audio = fixtures_dir().join("audio");
    let seeds: Vec<Vec<u8>> = ["input.flac", "input.mp3", "input.ogg", "input.m4a"]
        .iter()
        .map(|f| read(&audio.join(f)))
        .collect();
    assert_no_findings(fuzz(
        "compressed_audio",
        &seeds,
        |rng, seed| mutate_bytes(rng, seed, 64),
        |input| {
            let _ = decode_audio(input);
        },
    ));
}

/// PNG and JPEG through the decoder.
#[test]
fn png_and_jpeg() {
    setup();
    let media = fixtures_dir().join("media");
    let seeds = vec![
        read(&media.join("gradient.jpg")),
        read(&media.join("tall.png")),
    ];
    assert_no_findings(fuzz(
        "images",
        &seeds,
        |rng, seed| mutate_bytes(rng, seed, 512),
        |input| {
            let _ = decode_image(input);
        },
    ));
}

/// ONNX protobuf: decoded and put through the graph rewrites.
#[test]
fn onnx_protobuf() {
    setup();
    let seeds = vec![
        read(&fixture_model("bert").join("onnx/model.onnx")),
        read(&fixture_model("gpt2").join("onnx/model.onnx")),
    ];
    assert_no_findings(fuzz(
        "onnx",
        &seeds,
        |rng, seed| mutate_bytes(rng, seed, 0),
        |input| {
            if let Ok(mut model) = model_io::decode(input) {
                let _ = rewrites::opset_version(&model);
                let _ = rewrites::decompose_gelu(&mut model);
                let _ = rewrites::decompose_layer_norm(&mut model);
                let _ = rewrites::prune(&mut model);
                let declared = rewrites::DynamicAxes::declared_in(&model);
                let _ = rewrites::restore_dynamic_dims(&mut model, &declared);
                let _ = rewrites::fold_constant_if(&mut model, &[("use_cache_branch", true)]);
                let _ = model_io::encode(&model);
            }
        },
    ));
}

/// Chat messages (roles and contents of any shape) through a real chat
/// template (SmolLM2's, as its GGUF carries it).
#[test]
fn chat_messages() {
    setup();
    let template = ChatTemplate::new(
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        Some("<|im_start|>".to_owned()),
        Some("<|im_end|>".to_owned()),
    );
    let seeds = vec![serde_json::to_vec(&serde_json::json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ]))
    .unwrap()];
    assert_no_findings(fuzz("chat_messages", &seeds, mutate_json_bytes, |input| {
        if let Ok(messages) = serde_json::from_slice::<serde_json::Value>(input) {
            let _ = template.render_messages(&messages);
        }
        let _ = template.render_user_message(&String::from_utf8_lossy(input));
    }));
}

/// Chat templates themselves come with the model (tokenizer_config.json,
/// GGUF metadata): a hostile one must fail or render, never panic or hang.
#[test]
fn chat_templates() {
    setup();
    let seeds = vec![
        b"{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}".to_vec(),
        b"{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content | trim }} [/INST]{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}".to_vec(),
    ];
    assert_no_findings(fuzz(
        "chat_templates",
        &seeds,
        |rng, seed| mutate_bytes(rng, seed, 0),
        |input| {
            let template = ChatTemplate::new(&String::from_utf8_lossy(input), None, None);
            let _ = template.render_user_message("hello");
        },
    ));
}

// The generator is deterministic per target: a replay gives the same inputs.
#[test]
fn the_generator_replays() {
    let a: Vec<u64> = {
        let mut r = Rng::for_target("t");
        (0..4).map(|_| r.next_u64()).collect()
    };
    let b: Vec<u64> = {
        let mut r = Rng::for_target("t");
        (0..4).map(|_| r.next_u64()).collect()
    };
    assert_eq!(a, b);
}
