"""Fused add_layer_norm beside np.add + layer_norm, layer_norm alone and a copy
of x's bytes, interleaved rounds (cnorm.bench's measure); ratios are medians
of per-round ratios to np.add + layer_norm.

    python benchmarks/add_norm_blocks.py [threads] [shape, e.g. 128,128,768]
"""
import statistics
import sys

import numpy as np

import cnorm
from cnorm.bench.engine import measure, median_ratio


def main(threads, shape):
    cnorm.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    r = rng.standard_normal(shape, dtype=np.float32)
    K = shape[-1]
    w, b = np.ones(K, np.float32), np.zeros(K, np.float32)
    y, s = np.empty_like(x), np.empty_like(x)
    row = {
        "fused": lambda: cnorm.add_layer_norm(x, r, K, w, b, out=y, sum_out=s),
        "unfused": lambda: cnorm.layer_norm(np.add(x, r, out=s), K, w, b, out=y),
        "ln": lambda: cnorm.layer_norm(x, K, w, b, out=y),
        "copy": lambda: np.copyto(y, x),
    }
    samples, _ = measure(row, 6.0)
    cells = []
    for name in row:
        ms = statistics.median(samples[name]) / 1e6
        cells.append(f"{name} {ms:.2f}ms ({median_ratio(samples[name], samples['unfused']):.2f})")
    print(f"t={threads}", shape, " ".join(cells))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1,
         tuple(int(v) for v in sys.argv[2].split(",")) if len(sys.argv) > 2 else (32, 128, 768))
