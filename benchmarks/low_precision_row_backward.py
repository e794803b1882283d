"""layer_norm_backward of float16/bfloat16 data beside the float32 call of
the same shape, interleaved (cnorm.bench's measure), at 1 and 2 threads:
median per-round ratio low/float32.

    python benchmarks/low_precision_row_backward.py LABEL
"""
import sys

import ml_dtypes
import numpy as np

import cnorm
from cnorm.bench.engine import measure, median_ratio


def backward_call(x):
    """layer_norm_backward over the last dim of x, dy = x, into a preallocated out."""
    K = x.shape[-1]
    _, mean, rstd = cnorm.layer_norm(x, K)
    out, w = np.empty_like(x), np.ones(K, np.float32)
    return lambda: cnorm.layer_norm_backward(x, x, mean, rstd, K, w, out=out)


def main(label):
    rng = np.random.default_rng(0)
    for threads in (1, 2):
        cnorm.set_num_threads(threads)
        for shape in ((32, 128, 768), (8, 64, 4096)):
            x32 = rng.standard_normal(shape, dtype=np.float32)
            cells = []
            for dtype in (np.float16, ml_dtypes.bfloat16):
                fns = {"f32": backward_call(x32), "low": backward_call(x32.astype(dtype))}
                samples, _ = measure(fns, 2)
                cells.append(f"{median_ratio(samples['low'], samples['f32']):.2f}")
            print(label, f"t={threads} {shape} f16 {cells[0]} bf16 {cells[1]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
