"""llama.cpp's side of `cargo xtask bench generate`, through llama-cpp-python
(built from source by the bench in its own virtual environment).

  quantize SRC DST TYPE   llama.cpp's quantizer: SRC (any GGUF) to DST in TYPE
                          (Q4_0, Q4_1, Q5_K_M, Q4_K_M, Q8_0, F16)
  run FILE OURS OUT       prompt and decode tokens/s and peak memory on FILE,
                          on the prompt ids our run used (OURS, its JSON)

Measured as our bench measures (crates/skills/benches/generate.rs):
prompt = the 126-token prompt's forward pass and one greedy pick, best of
3; decode = 64 greedy steps after a short prompt, timed from the first pick.
"""

import json
import resource
import sys
import time

import llama_cpp
import numpy as np

FTYPES = {
    "F16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
    "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "Q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1,
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
}


def quantize(src, dst, kind):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[kind]
    # The source is itself quantized (the published Q4_1): requantizing goes
    # through f32, which is what these speed rows need.
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        sys.exit(f"quantizing {src} to {kind} failed ({rc})")


def last_logits(llm):
    return llm.scores[llm.n_tokens - 1]


def run(path, ours_path, out):
    with open(ours_path) as f:
        ours = json.load(f)
    threads = int(ours["threads"])
    llm = llama_cpp.Llama(
        model_path=path,
        n_ctx=2048,
        n_batch=512,
        n_ubatch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    prompt = ours["prompt_ids"]
    short = ours["decode_prompt_ids"]

    def prompt_seconds():
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        int(np.argmax(last_logits(llm)))
        return time.perf_counter() - start

    prompt_seconds()
    best = min(prompt_seconds() for _ in range(3))

    steps = int(ours["decode_tokens"])
    llm.reset()
    llm.eval(short)
    token = int(np.argmax(last_logits(llm)))
    start = time.perf_counter()
    for _ in range(steps):
        llm.eval([token])
        token = int(np.argmax(last_logits(llm)))
    decode_s = time.perf_counter() - start

    result = {
        "file": path,
        "llama_cpp_python": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode(),
        "threads": threads,
        "prompt_tokens": len(prompt),
        "prompt_tokens_per_s": len(prompt) / best,
        "decode_tokens": steps,
        "decode_tokens_per_s": steps / decode_s,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


def main():
    command, *args = sys.argv[1:]
    {"quantize": quantize, "run": run}[command](*args)


if __name__ == "__main__":
    main()
