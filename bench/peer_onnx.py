#!/usr/bin/env python3
"""Peer of bench/bench_onnx.c: onnxruntime (CPUExecutionProvider, all graph optimizations) running the
file robustcv exported, at the same batch and threads; its thread pool spins as onnxruntime's does by default
unless OMP_WAIT_POLICY=passive, which turns spinning off (as it puts ours to sleep). Prints images/s.

usage: peer_onnx.py FILE.onnx C H W BATCH SECONDS THREADS
"""
import os
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    path, c, h, w, batch, seconds, threads = sys.argv[1], *map(int, sys.argv[2:6]), float(sys.argv[6]), int(sys.argv[7])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Waiting threads sleep, as ours do under OMP_WAIT_POLICY=passive; onnxruntime spins by default.
    if os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = (np.arange(batch * c * h * w, dtype=np.int64) * 37 % 255).astype(np.float32).reshape(batch, c, h, w) / 255
    for _ in range(2):
        sess.run(None, {"input": x})
    iters, t0 = 0, time.perf_counter()
    while True:
        sess.run(None, {"input": x})
        iters += 1
        t = time.perf_counter() - t0
        if t >= seconds and iters >= 3:
            break
    print(f"{iters * batch / t:.1f}")


if __name__ == "__main__":
    main()
