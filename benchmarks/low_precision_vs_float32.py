"""float16/bfloat16 calls beside the float32 call of the same shape, a
copy of the low-precision bytes and, when installed, PyTorch's CPU kernel on
the same low-precision tensor, interleaved (cnorm.bench.engine.measure);
ratios to the float32 call of the same round, and torch's time over cnorm's.

    python benchmarks/low_precision_vs_float32.py [SRC] [THREADS] [MATCH]

SRC: a checkout's src/ to import cnorm from (an older commit built in place
with `python setup.py build_ext --inplace`), for before/after runs ("" for
the installed cnorm).  THREADS: one thread count (default 1, then 2).
MATCH: only the cases whose name contains it.
"""
import sys

import ml_dtypes
import numpy as np

if len(sys.argv) > 1 and sys.argv[1]:
    sys.path.insert(0, sys.argv[1])
import cnorm
from cnorm.bench.engine import measure, median_ratio

try:
    import torch
except ImportError:
    torch = None

CASES = {   # name: (shape, channel axis; None: layer norm over the last dim, "ln-backward"
            # its backward; "train", "backward" (axis 1), "train-1", "backward-1" (axis -1);
            # ("far", axis) inference with running means of 1e3, which 2-byte data centre on)
    "batch_norm_infer (32,64,56,56)": ((32, 64, 56, 56), 1),
    "batch_norm_train (32,64,56,56)": ((32, 64, 56, 56), "train"),
    "batch_norm_train (4,3,512,512)": ((4, 3, 512, 512), "train"),
    "batch_norm_train (32,256,14,14)": ((32, 256, 14, 14), "train"),
    "batch_norm_train (16,64,24,24)": ((16, 64, 24, 24), "train"),
    "batch_norm_train (8,64,14,14)": ((8, 64, 14, 14), "train"),
    "batch_norm_train (32,56,56,64) axis=-1": ((32, 56, 56, 64), "train-1"),
    "batch_norm_backward (32,64,56,56)": ((32, 64, 56, 56), "backward"),
    "batch_norm_backward (4,3,512,512)": ((4, 3, 512, 512), "backward"),
    "batch_norm_backward (16,64,24,24)": ((16, 64, 24, 24), "backward"),
    "batch_norm_backward (8,64,14,14)": ((8, 64, 14, 14), "backward"),
    "batch_norm_backward (32,56,56,64) axis=-1": ((32, 56, 56, 64), "backward-1"),
    "batch_norm_infer (4,3,512,512)": ((4, 3, 512, 512), 1),
    "batch_norm_infer (32,56,56,64) axis=-1": ((32, 56, 56, 64), -1),
    "batch_norm_infer (32,56,56,64) axis=-1 mean 1e3": ((32, 56, 56, 64), ("far", -1)),
    "batch_norm_infer (32,64,8,8)": ((32, 64, 8, 8), 1),
    "batch_norm_infer (32,64,8,8) mean 1e3": ((32, 64, 8, 8), ("far", 1)),
    "layer_norm (32,128,768)": ((32, 128, 768), None),
    "layer_norm_backward (32,128,768)": ((32, 128, 768), "ln-backward"),
}


def call(x, axis):
    """The case's cnorm call on x into a preallocated output."""
    out = np.empty_like(x)
    if axis is None:
        return lambda: cnorm.layer_norm(x, x.shape[-1], out=out)
    if axis == "ln-backward":
        _, mean, rstd = cnorm.layer_norm(x, x.shape[-1])
        return lambda: cnorm.layer_norm_backward(x, x, mean, rstd, x.shape[-1], out=out)  # dy = x
    if axis in ("train", "train-1"):
        a = -1 if axis == "train-1" else 1
        return lambda: cnorm.batch_norm_train(x, axis=a, out=out)
    if axis in ("backward", "backward-1"):
        a = -1 if axis == "backward-1" else 1
        _, mean, invstd = cnorm.batch_norm_train(x, axis=a)
        return lambda: cnorm.batch_norm_backward(x, x, mean, invstd, axis=a, out=out)  # dy = x
    far = isinstance(axis, tuple)
    axis = axis[1] if far else axis
    C = x.shape[axis]
    rm, rv = np.full(C, 1e3 if far else 0.0, np.float32), np.ones(C, np.float32)
    return lambda: cnorm.batch_norm_infer(x, rm, rv, axis=axis, out=out)


def torch_call(x32, dtype, axis):
    """PyTorch's call of the case on a tensor of the low dtype, or None."""
    if torch is None:
        return None
    t = torch.from_numpy(x32).to(torch.float16 if dtype == np.float16 else torch.bfloat16)
    F = torch.nn.functional
    if axis is None:
        return lambda: F.layer_norm(t, (t.shape[-1],))
    if axis == "ln-backward":
        t = t.detach().requires_grad_()
        y = F.layer_norm(t, (t.shape[-1],))
        dy = t.detach().clone()
        return lambda: torch.autograd.grad(y, t, dy, retain_graph=True)
    if axis in (-1, "train-1", "backward-1", ("far", -1)):   # a channels_last NCHW tensor
        t = t.permute(0, 3, 1, 2)
    C = t.shape[1]
    rm, rv = torch.zeros(C), torch.ones(C)
    if axis in ("backward", "backward-1"):   # the autograd backward of the training forward
        t = t.detach().requires_grad_()
        y = F.batch_norm(t, None, None, training=True)
        dy = t.detach().clone()
        return lambda: torch.autograd.grad(y, t, dy, retain_graph=True)
    return lambda: F.batch_norm(t, rm, rv, training=axis in ("train", "train-1"))


def main(thread_counts, match):
    rng = np.random.default_rng(0)
    for threads in thread_counts:
        cnorm.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        for dtype in (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)):
            for name, (shape, axis) in CASES.items():
                if match not in name:
                    continue
                x32 = rng.standard_normal(shape, dtype=np.float32)
                low = x32.astype(dtype)
                copy = np.empty_like(low)
                fns = {"f32": call(x32, axis), "low": call(low, axis),
                       "copy": lambda: np.copyto(copy, low)}  # noqa: B023
                peer = torch_call(x32, dtype, axis)
                if peer is not None:
                    fns["torch"] = peer
                t, _ = measure(fns, 1.5)
                versus = (f"  torch/cnorm {median_ratio(t['torch'], t['low']):.2f}"
                          if "torch" in t else "")
                print(f"{threads} thr {dtype.name:9s} {name:40s} "
                      f"low/float32 {median_ratio(t['low'], t['f32']):.2f}  "
                      f"copy-low/float32 {median_ratio(t['copy'], t['f32']):.2f}{versus}",
                      flush=True)


if __name__ == "__main__":
    main([int(sys.argv[2])] if len(sys.argv) > 2 else [1, 2],
         sys.argv[3] if len(sys.argv) > 3 else "")
