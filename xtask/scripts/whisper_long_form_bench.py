"""PyTorch eager's side of the long-form transcription row of `cargo xtask
bench multimodal`.

usage: whisper_long_form_bench.py MODEL_DIR WAV OUT.json THREADS MAX_NEW_TOKENS

Builds, once, a real-size Whisper with random weights in MODEL_DIR:
tiny.en's architecture (transformers' default WhisperConfig, which is
whisper-tiny's, with tiny.en's 51,864-token vocabulary, so that the shared
fixture's English tokenizer, generation config and feature extractor fit
it), seed 0. Writes WAV, a 5-minute recording made of the Whisper fixture's
clip by the long-form references' rule. Then times what a transformers user
runs for long audio (the feature extractor with truncation=False and
padding="longest", then generate with return_timestamps=True), greedy, on
THREADS threads, after a warm-up on the first 30 s; and writes the time,
the peak resident memory of this process (Python, torch and the model
included) and the token ids.
"""

import json
import resource
import shutil
import sys
import time
import wave
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoProcessor, WhisperConfig, WhisperForConditionalGeneration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fixtures" / "references"))
from make_longform_references import long_audio, read_clip  # noqa: E402

FIXTURE = ROOT / "fixtures" / "models" / "whisper"
SECONDS = 300
FIXTURE_FILES = [
    "generation_config.json",
    "preprocessor_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
]


def build_model(model_dir: Path):
    if (model_dir / "model.safetensors").exists():
        return
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=51864)
    for key in ["decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id"]:
        setattr(config, key, json.loads((FIXTURE / "config.json").read_text())[key])
    model = WhisperForConditionalGeneration(config).eval()
    model.save_pretrained(model_dir, safe_serialization=True)
    for name in FIXTURE_FILES:
        shutil.copy(FIXTURE / name, model_dir / name)


def write_wav(path: Path, samples: np.ndarray):
    ints = np.round(samples * 32768.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(ints.tobytes())


def main():
    model_dir, wav, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    threads, max_new_tokens = int(sys.argv[4]), int(sys.argv[5])
    build_model(model_dir)
    audio = long_audio(read_clip(FIXTURE / "input.wav"), SECONDS)
    write_wav(wav, audio)

    torch.set_num_threads(threads)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()

    def transcribe(samples):
        features = processor(
            samples,
            sampling_rate=16_000,
            return_tensors="pt",
            truncation=False,
            padding="longest",
            return_attention_mask=True,
        )
        if features.input_features.shape[-1] <= 3000:
            features = processor(samples, sampling_rate=16_000, return_tensors="pt")
        with torch.no_grad():
            return model.generate(
                **features, return_timestamps=True, max_new_tokens=max_new_tokens
            )

    transcribe(audio[: 30 * 16_000])
    start = time.perf_counter()
    sequences = transcribe(audio)
    wall = time.perf_counter() - start
    result = {
        "seconds": SECONDS,
        "wall_s": wall,
        "real_time_factor": wall / SECONDS,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "token_ids": [int(t) for t in sequences[0]],
    }
    out.write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
