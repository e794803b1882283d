"""Moments and StandardScaler beside a copy of the same bytes, NumPy and
scikit-learn (when installed), on (1e6, 32) float64 and float32.

Contenders run interleaved (cnorm.bench's measure: rounds in rotating order)
and the figures are medians of per-round ratios to the copy.  The transform
rows compare like with like: a fresh output (transform(X) against
np.array(X)) and an existing one (transform(X, copy=False) against
np.copyto into a buffer).

    python benchmarks/statistics_vs_copy.py [--threads N]
"""
import argparse
import statistics

import numpy as np

import cnorm
from cnorm.bench.engine import measure, median_ratio


def contenders(x):
    buffer = np.empty_like(x)
    inplace = x.copy()
    scaler = cnorm.StandardScaler().fit(x)
    fns = {
        "copy (np.copyto)": lambda: np.copyto(buffer, x),
        "copy (np.array)": lambda: np.array(x),
        "cnorm Moments.of": lambda: cnorm.Moments.of(x),
        "cnorm StandardScaler.fit": lambda: cnorm.StandardScaler().fit(x),
        "numpy mean + std": lambda: (x.mean(axis=0), x.std(axis=0)),
        "cnorm transform (new array)": lambda: scaler.transform(x),
        "cnorm transform (copy=False)": lambda: scaler.transform(inplace, copy=False),
    }
    try:
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        return fns
    reference = StandardScaler().fit(x)
    fns["sklearn StandardScaler.fit"] = lambda: StandardScaler().fit(x)
    fns["sklearn transform (new array)"] = lambda: reference.transform(x)
    return fns


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=0, help="0: cnorm's default")
    args = parser.parse_args()
    if args.threads:
        cnorm.set_num_threads(args.threads)
    print(f"cnorm {cnorm.__version__}, {cnorm.get_num_threads()} threads")
    for dtype in (np.float64, np.float32):
        x = np.random.default_rng(0).normal(3.0, 2.0, (1_000_000, 32)).astype(dtype)
        fns = contenders(x)
        for fn in fns.values():
            fn()
        samples, _ = measure(fns, budget_s=20.0, rounds=15)
        base = {"copy (np.copyto)": samples["copy (np.copyto)"],
                "copy (np.array)": samples["copy (np.array)"]}
        print(f"\n(1e6, 32) {np.dtype(dtype).name}: median ms, ratio to np.copyto, "
              "ratio to np.array")
        for name, times in samples.items():
            print(f"  {name:<32} {statistics.median(times) / 1e6:8.2f} ms  "
                  f"{median_ratio(times, base['copy (np.copyto)']):6.2f}x  "
                  f"{median_ratio(times, base['copy (np.array)']):6.2f}x")


if __name__ == "__main__":
    main()
