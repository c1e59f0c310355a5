"""llama.cpp's side of `cargo xtask bench generate`, through llama-cpp-python
(built from source by the bench in its own virtual environment).

  quantize SRC DST TYPE   llama.cpp's quantizer: SRC (any GGUF) to DST in TYPE
                          (Q4_0, Q4_1, Q5_K_M, Q4_K_M, Q8_0, F16)
  run FILE OURS OUT       prompt and decode tokens/s and peak memory on FILE,
                          on the prompt ids our run used (OURS, its JSON)
  streams FILE OURS OUT   llama.cpp's own batched decoding of 1, 4 and 8
                          sequences at once (llama_batch, one llama_decode
                          per step), on our streams' prompt ids and end
                          ids: the reference our scheduler is measured
                          against

Measured as our bench measures (crates/skills/benches/generate.rs):
prompt = the 126-token prompt's forward pass and one greedy pick, best of
3; decode = 64 greedy steps after a short prompt, timed from the first pick,
best of 3.
"""

import json
import resource
import sys
import time

import llama_cpp
from llama_cpp import _logger as llama_cpp_logger
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

    def decode_seconds():
        llm.reset()
        llm.eval(short)
        token = int(np.argmax(last_logits(llm)))
        start = time.perf_counter()
        for _ in range(steps):
            llm.eval([token])
            token = int(np.argmax(last_logits(llm)))
        return time.perf_counter() - start

    decode_s = min(decode_seconds() for _ in range(3))

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


def streams(path, ours_path, out):
    """As our streams row: each sequence generates 64 tokens greedily from
    its own prompt (or stops at one of our end ids, which counts),
    all prompts in the first step, then one token per live sequence per
    step, sequences ordered by id; aggregate = generated tokens / wall."""
    with open(ours_path) as f:
        ours = json.load(f)
    threads = int(ours["threads"])
    prompts = ours["stream_prompt_ids"]
    eos = set(ours["eos_ids"])
    steps = int(ours["decode_tokens"])
    if sum(len(p) for p in prompts) > 512:
        sys.exit("the streams' prompts do not fit one 512-token batch")
    lc = llama_cpp
    # Quiet, as `Llama(verbose=False)` is: only errors reach stderr.
    llama_cpp_logger.set_verbose(False)
    lc.llama_backend_init()
    model = lc.llama_model_load_from_file(path.encode(), lc.llama_model_default_params())
    vocab = lc.llama_model_get_vocab(model)
    n_vocab = lc.llama_vocab_n_tokens(vocab)
    params = lc.llama_context_default_params()
    params.n_ctx = 2048 * 8
    params.n_seq_max = 8
    params.kv_unified = False
    params.n_batch = 512
    params.n_ubatch = 512
    params.n_threads = threads
    params.n_threads_batch = threads
    ctx = lc.llama_init_from_model(model, params)
    batch = lc.llama_batch_init(512, 0, 1)

    def logits_argmax(index):
        row = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, index), shape=(n_vocab,))
        return int(np.argmax(row))

    def decode(entries):
        # entries: (seq, token, pos, wants_logits), already ordered by seq.
        batch.n_tokens = len(entries)
        for k, (seq, token, pos, wants) in enumerate(entries):
            batch.token[k] = token
            batch.pos[k] = pos
            batch.n_seq_id[k] = 1
            batch.seq_id[k][0] = seq
            batch.logits[k] = 1 if wants else 0
        if lc.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")

    def run_streams(n):
        lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
        ids = [prompts[i % len(prompts)] for i in range(n)]
        start = time.perf_counter()
        entries = []
        for seq, p in enumerate(ids):
            entries += [(seq, t, i, i == len(p) - 1) for i, t in enumerate(p)]
        decode(entries)
        at = {seq: k for k, (seq, _, _, wants) in enumerate(entries) if wants}
        live = {seq: (logits_argmax(at[seq]), len(ids[seq]), 1) for seq in range(n)}
        total = 0
        while live:
            step, keep = [], {}
            for seq, (token, pos, made) in sorted(live.items()):
                total += 1
                if made < steps and token not in eos:
                    step.append((seq, token, pos, True))
                    keep[seq] = (pos + 1, made + 1)
            if not step:
                break
            decode(step)
            live = {
                seq: (logits_argmax(k), keep[seq][0], keep[seq][1])
                for k, (seq, _, _, _) in enumerate(step)
            }
        seconds = time.perf_counter() - start
        return {"tokens": total, "seconds": seconds, "tokens_per_s": total / seconds}

    run_streams(1)  # warm-up
    result = {
        "file": path,
        "llama_cpp_python": llama_cpp.__version__,
        "threads": threads,
        # Best of 3, as on our side.
        "streams": {
            str(n): min((run_streams(n) for _ in range(3)), key=lambda r: r["seconds"])
            for n in (1, 4, 8)
        },
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


def main():
    command, *args = sys.argv[1:]
    {"quantize": quantize, "run": run, "streams": streams}[command](*args)


if __name__ == "__main__":
    main()
