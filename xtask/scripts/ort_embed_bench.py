"""ONNX Runtime's own Python API on the same graph and the same batches as
the `embed_onnx` criterion bench: the baseline its ORT rows are compared to.

usage: ort_embed_bench.py MODEL.onnx INPUTS.json OUT.json
Times session.run only (tokenization and pooling are not included, which
favours Python slightly). Uses the onnxruntime wheel unpacked by
`cargo xtask setup-ort` (PYTHONPATH set by the xtask), default session
options, CPU execution provider.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def mean_seconds(fn, min_time=5.0, min_runs=10):
    fn()  # warm-up
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < min_time:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs


def main():
    model, inputs_path, out_path = sys.argv[1:4]
    inputs = json.load(open(inputs_path))
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def feeds(batches):
        return [
            {k: np.array(v, dtype=np.int64) for k, v in b.items() if k in names}
            for b in batches
        ]

    short, mixed = feeds(inputs["short"]), feeds(inputs["mixed_bs32"])

    def run(batches):
        for feed in batches:
            session.run(["last_hidden_state"], feed)

    result = {
        "onnxruntime": ort.__version__,
        "short_s": mean_seconds(lambda: run(short)),
        "mixed_bs32_s": mean_seconds(lambda: run(mixed)),
    }
    json.dump(result, open(out_path, "w"))


if __name__ == "__main__":
    main()
