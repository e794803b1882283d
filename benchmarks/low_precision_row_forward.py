"""The row-family forwards (layer, RMS, group, instance norm) of
float16/bfloat16 data beside the float32 call of the same shape, a copy of
the 2-byte bytes and PyTorch's call on a tensor of the 2-byte dtype (when
installed), interleaved (cnorm.bench's measure): median per-round ratios.

    python benchmarks/low_precision_row_forward.py [SRC] [THREADS]

SRC: a checkout's src/ to import cnorm from (an older commit built in place
with `python setup.py build_ext --inplace`), for before/after runs.
"""
import sys

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])
import ml_dtypes
import numpy as np

import cnorm
from cnorm.bench.engine import measure, median_ratio

try:
    import torch
except ImportError:
    torch = None

CASES = {   # name: (shape, kind)
    "layer_norm (32,128,768)": ((32, 128, 768), "layer"),
    "layer_norm (128,128,768)": ((128, 128, 768), "layer"),
    "layer_norm + silu (32,128,768)": ((32, 128, 768), "layer-silu"),
    "rms_norm (32,128,768)": ((32, 128, 768), "rms"),
    "group_norm (8,64,56,56) g=32": ((8, 64, 56, 56), "group"),
    "instance_norm (8,64,56,56)": ((8, 64, 56, 56), "instance"),
}


def call(x, kind):
    """The case's cnorm call on x (unit weight, zero bias) into a preallocated output."""
    out, K = np.empty_like(x), x.shape[-1]
    w, b = np.ones(K, np.float32), np.zeros(K, np.float32)
    if kind == "layer":
        return lambda: cnorm.layer_norm(x, K, w, b, out=out)
    if kind == "layer-silu":
        return lambda: cnorm.layer_norm(x, K, w, b, out=out, activation="silu")
    if kind == "rms":
        return lambda: cnorm.rms_norm(x, K, w, out=out)
    if kind == "group":
        return lambda: cnorm.group_norm(x, 32, out=out)
    return lambda: cnorm.instance_norm(x, out=out)


def torch_call(x32, dtype, kind):
    """PyTorch's call of the case on a tensor of the 2-byte dtype."""
    t = torch.from_numpy(x32).to(torch.float16 if dtype == np.float16 else torch.bfloat16)
    F, K = torch.nn.functional, t.shape[-1]
    w, b = torch.ones(K, dtype=t.dtype), torch.zeros(K, dtype=t.dtype)
    if kind == "layer":
        return lambda: F.layer_norm(t, (K,), w, b)
    if kind == "layer-silu":
        return lambda: F.silu(F.layer_norm(t, (K,), w, b))
    if kind == "rms":
        return lambda: F.rms_norm(t, (K,), w)
    if kind == "group":
        return lambda: F.group_norm(t, 32)
    return lambda: F.instance_norm(t)


def main(threads):
    cnorm.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    for dtype in (np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)):
        for name, (shape, kind) in CASES.items():
            x32 = rng.standard_normal(shape, dtype=np.float32)
            low = x32.astype(dtype)
            copy = np.empty_like(low)
            fns = {"f32": call(x32, kind), "low": call(low, kind),
                   "copy": lambda: np.copyto(copy, low)}  # noqa: B023
            if torch is not None:
                fns["torch"] = torch_call(x32, dtype, kind)
            t, _ = measure(fns, 2.0)
            versus = f"  torch/cnorm {median_ratio(t['torch'], t['low']):.2f}" if torch else ""
            print(f"{threads} thr {dtype.name:9s} {name:32s} "
                  f"low/float32 {median_ratio(t['low'], t['f32']):.2f}  "
                  f"low/copy-low {median_ratio(t['low'], t['copy']):.2f}{versus}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
