"""float16/bfloat16 calls beside the float32 call of the same shape and a
copy of the low-precision bytes, interleaved (cnorm.bench.engine.measure);
ratios to the float32 call of the same round.

    python benchmarks/low_precision_vs_float32.py [SRC]

SRC: a checkout's src/ to import cnorm from (an older commit built in place
with `python setup.py build_ext --inplace`), for before/after runs.
"""
import sys

import ml_dtypes
import numpy as np

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])
import cnorm
from cnorm.bench.engine import measure

CASES = {   # name: (shape, channel axis; None: layer norm over the last dim)
    "batch_norm_infer (32,64,56,56)": ((32, 64, 56, 56), 1),
    "batch_norm_infer (4,3,512,512)": ((4, 3, 512, 512), 1),
    "batch_norm_infer (32,56,56,64) axis=-1": ((32, 56, 56, 64), -1),
    "layer_norm (32,128,768)": ((32, 128, 768), None),
}


def call(x, axis):
    """The case's cnorm call on x into a preallocated output."""
    out = np.empty_like(x)
    if axis is None:
        return lambda: cnorm.layer_norm(x, x.shape[-1], out=out)
    C = x.shape[axis]
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    return lambda: cnorm.batch_norm_infer(x, rm, rv, axis=axis, out=out)


def main():
    rng = np.random.default_rng(0)
    for threads in (1, 2):
        cnorm.set_num_threads(threads)
        for dtype in (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)):
            for name, (shape, axis) in CASES.items():
                x32 = rng.standard_normal(shape, dtype=np.float32)
                low = x32.astype(dtype)
                copy = np.empty_like(low)
                t, _ = measure({"f32": call(x32, axis), "low": call(low, axis),
                                "copy": lambda: np.copyto(copy, low)}, 1.5)  # noqa: B023
                m = {k: np.median(v) for k, v in t.items()}
                print(f"{threads} thr {dtype.name:9s} {name:40s} "
                      f"low/float32 {m['low'] / m['f32']:.2f}  "
                      f"copy-low/float32 {m['copy'] / m['f32']:.2f}", flush=True)


if __name__ == "__main__":
    main()
