"""Fused calls beside the unfused sequences they replace, a copy of x's
bytes, and PyTorch's eager sequence when installed, at 1 and 2 threads.

Contenders of a row run interleaved (cnorm.bench's measure); figures are
medians of per-round ratios to the first contender of the row.

    python benchmarks/fusions_vs_unfused.py
"""
import statistics

import numpy as np

import cnorm
from cnorm.bench.engine import measure, median_ratio

try:
    import torch
except ImportError:
    torch = None


def add_norm_rows(rng):
    x = rng.standard_normal((32, 128, 768), dtype=np.float32)
    r = rng.standard_normal(x.shape, dtype=np.float32)
    w, b = np.ones(768, np.float32), np.zeros(768, np.float32)
    y, s = np.empty_like(x), np.empty_like(x)
    rows = {
        "add_layer_norm (32,128,768)": {
            "fused add_layer_norm": lambda: cnorm.add_layer_norm(x, r, 768, w, b, out=y,
                                                                 sum_out=s),
            "np.add + layer_norm": lambda: cnorm.layer_norm(np.add(x, r, out=s), 768, w, b,
                                                            out=y),
            "layer_norm alone": lambda: cnorm.layer_norm(x, 768, w, b, out=y),
            "copy": lambda: np.copyto(y, x),
        },
        "add_rms_norm (32,128,768)": {
            "fused add_rms_norm": lambda: cnorm.add_rms_norm(x, r, 768, w, out=y, sum_out=s),
            "np.add + rms_norm": lambda: cnorm.rms_norm(np.add(x, r, out=s), 768, w, out=y),
            "rms_norm alone": lambda: cnorm.rms_norm(x, 768, w, out=y),
        },
    }
    if torch is not None:
        tx, tr, tw, tb = (torch.from_numpy(a) for a in (x, r, w, b))
        rows["add_layer_norm (32,128,768)"]["torch eager"] = lambda: torch.nn.functional.\
            layer_norm(tx + tr, (768,), tw, tb, 1e-5)
    return rows


def activation_rows(rng):
    x = rng.standard_normal((32, 64, 56, 56), dtype=np.float32)
    h = rng.standard_normal((32, 128, 768), dtype=np.float32)
    w, b = np.ones(64, np.float32), np.zeros(64, np.float32)
    rm, rv = np.zeros(64, np.float32), np.ones(64, np.float32)
    small = rng.standard_normal((8, 64, 28, 28), dtype=np.float32)   # 1.6 MB: in L2/L3
    y, yh, ys = np.empty_like(x), np.empty_like(h), np.empty_like(small)
    rows = {}
    for act in ("relu", "silu"):
        rows[f"batch_norm_infer + {act} (8,64,28,28), in cache"] = {
            "fused": lambda a=act: cnorm.batch_norm_infer(small, rm, rv, w, b, out=ys,
                                                          activation=a),
            "no activation": lambda: cnorm.batch_norm_infer(small, rm, rv, w, b, out=ys),
            "copy": lambda: np.copyto(ys, small),
        }
        rows[f"batch_norm_infer + {act} (32,64,56,56)"] = {
            "fused": lambda a=act: cnorm.batch_norm_infer(x, rm, rv, w, b, out=y, activation=a),
            "no activation": lambda: cnorm.batch_norm_infer(x, rm, rv, w, b, out=y),
            "copy": lambda: np.copyto(y, x),
        }
        rows[f"batch_norm_train + {act} (32,64,56,56)"] = {
            "fused": lambda a=act: cnorm.batch_norm_train(x, w, b, out=y, activation=a),
            "no activation": lambda: cnorm.batch_norm_train(x, w, b, out=y),
        }
        rows[f"layer_norm + {act} (32,128,768)"] = {
            "fused": lambda a=act: cnorm.layer_norm(h, 768, out=yh, activation=a),
            "no activation": lambda: cnorm.layer_norm(h, 768, out=yh),
        }
        rows[f"group_norm + {act} (32,64,56,56) g=32"] = {
            "fused": lambda a=act: cnorm.group_norm(x, 32, out=y, activation=a),
            "no activation": lambda: cnorm.group_norm(x, 32, out=y),
        }
        if torch is not None:
            targs = [torch.from_numpy(a) for a in (x, rm, rv, w, b)]
            fn = getattr(torch.nn.functional, act)
            rows[f"batch_norm_infer + {act} (32,64,56,56)"]["torch eager"] = \
                lambda f=fn, t=targs: f(torch.nn.functional.batch_norm(*t, False, 0.0, 1e-5),
                                        inplace=True)
    return rows


def main():
    if torch is not None:
        torch.set_grad_enabled(False)
    rng = np.random.default_rng(0)
    rows = {**add_norm_rows(rng), **activation_rows(rng)}
    for threads in (1, 2):
        cnorm.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        print(f"\n{threads} thread(s): median ms, ratio to the row's first contender")
        for label, fns in rows.items():
            for fn in fns.values():
                fn()
            samples, _ = measure(fns, budget_s=3.0, rounds=15)
            first = samples[next(iter(fns))]
            cells = [f"{n} {statistics.median(t) / 1e6:.3f} ms ({median_ratio(t, first):.2f}x)"
                     for n, t in samples.items()]
            print(f"  {label}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
