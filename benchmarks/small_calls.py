"""Per-call time of small training and backward calls (the lean paths), and
of small float16/bfloat16 inference calls beside float32's, one thread,
beside np.copyto of the same bytes: medians of 7 rounds of 2000
calls, in microseconds.  Which cnorm is measured is whatever the import
finds, so two builds compare by running this once per build with
PYTHONPATH pointing at each (interleave the runs: this machine is noisy).

    python benchmarks/small_calls.py [substring ...]   # only matching cases
"""
import sys
import timeit

import numpy as np

import cnorm

ROUNDS, CALLS = 7, 2000


def median_us(fn):
    fn()
    times = timeit.repeat(fn, number=CALLS, repeat=ROUNDS)
    return sorted(times)[ROUNDS // 2] / CALLS * 1e6


def channel_cases(rng):
    x = rng.standard_normal((1, 64, 7, 7), dtype=np.float32)
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    w, b = rng.standard_normal(64, dtype=np.float32), rng.standard_normal(64, dtype=np.float32)
    dst = np.empty_like(x)
    _, mean, invstd = cnorm.batch_norm_train(x, w, b)
    layers = {name: make() for name, make in {
        "BatchNorm": lambda: cnorm.BatchNorm(64),
        "GroupNorm": lambda: cnorm.GroupNorm(8, 64),
        "InstanceNorm": lambda: cnorm.InstanceNorm(64, affine=True),
    }.items()}
    cases = {
        "copyto (1,64,7,7)": lambda: np.copyto(dst, x),
        "batch_norm_train (1,64,7,7)": lambda: cnorm.batch_norm_train(x, w, b),
        "batch_norm_backward (1,64,7,7)": lambda: cnorm.batch_norm_backward(dy, x, mean,
                                                                            invstd, w),
    }
    for name, layer in layers.items():
        layer(x)
        cases[f"{name} forward (1,64,7,7)"] = lambda layer=layer: layer(x)
        cases[f"{name} backward (1,64,7,7)"] = lambda layer=layer: layer.backward(dy)
    return cases


def row_cases(rng, rows):
    shape = (rows, 768)
    x, dy = rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape,
                                                                               dtype=np.float32)
    w, b = rng.standard_normal(768, dtype=np.float32), rng.standard_normal(768, dtype=np.float32)
    dst = np.empty_like(x)
    _, mean, rstd = cnorm.layer_norm(x, 768, w, b)
    cases = {
        f"copyto {shape}": lambda: np.copyto(dst, x),
        f"layer_norm {shape}": lambda: cnorm.layer_norm(x, 768, w, b),
        f"layer_norm_backward {shape}": lambda: cnorm.layer_norm_backward(dy, x, mean, rstd,
                                                                          768, w),
    }
    for name, layer in (("LayerNorm", cnorm.LayerNorm(768)), ("RMSNorm", cnorm.RMSNorm(768))):
        layer(x)
        cases[f"{name} forward {shape}"] = lambda layer=layer: layer(x)
        cases[f"{name} backward {shape}"] = lambda layer=layer: layer.backward(dy)
    return cases


def two_byte_cases(rng):
    """Inference-sized calls, and small batch-norm training and backward, on
    float32, float16 and bfloat16 (when ml_dtypes is installed) data,
    float32 parameters."""
    dtypes = [np.float32, np.float16]
    try:
        import ml_dtypes
        dtypes.append(ml_dtypes.bfloat16)
    except ImportError:
        pass
    c, w = np.linspace(0.5, 1.5, 64, dtype=np.float32), np.linspace(0.5, 1.5, 768, dtype=np.float32)
    cases = {}
    for dtype in dtypes:
        name = np.dtype(dtype).name
        x = rng.standard_normal((1, 64, 7, 7), dtype=np.float32).astype(dtype)
        r = rng.standard_normal((1, 768), dtype=np.float32).astype(dtype)
        y, s = np.empty_like(x), np.empty_like(r)
        cases[f"copyto (1,64,7,7) {name}"] = lambda x=x, y=y: np.copyto(y, x)
        cases[f"batch_norm_infer (1,64,7,7) {name}"] = (
            lambda x=x, y=y: cnorm.batch_norm_infer(x, c, c, c, c, out=y))
        cases[f"layer_norm (1,768) {name}"] = lambda r=r, s=s: cnorm.layer_norm(r, 768, w, w,
                                                                                 out=s)
        cases[f"rms_norm (1,768) {name}"] = lambda r=r, s=s: cnorm.rms_norm(r, 768, w, out=s)
        _, mean, invstd = cnorm.batch_norm_train(x, c, c)
        cases[f"batch_norm_train (1,64,7,7) {name}"] = (
            lambda x=x, y=y: cnorm.batch_norm_train(x, c, c, out=y))
        cases[f"batch_norm_backward (1,64,7,7) {name}"] = (
            lambda x=x, y=y, m=mean, i=invstd: cnorm.batch_norm_backward(x, x, m, i, c, out=y))
    return cases


def main():
    cnorm.set_num_threads(1)
    rng = np.random.default_rng(0)
    cases = {**channel_cases(rng), **row_cases(rng, 1), **row_cases(rng, 8),
             **two_byte_cases(rng)}
    only = sys.argv[1:]
    for name, fn in cases.items():
        if not only or any(o in name for o in only):
            print(f"{name:40s} {median_us(fn):8.2f} us")


if __name__ == "__main__":
    main()
