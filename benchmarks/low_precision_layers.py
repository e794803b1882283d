"""float16 BatchNorm and LayerNorm layers (eval, training forward, a training
step with backward) beside a float32 BatchNorm in eval mode, interleaved
(cnorm.bench's measure), one thread; medians in ms.

    python benchmarks/low_precision_layers.py LABEL
"""
import statistics
import sys

import numpy as np

import cnorm
from cnorm.bench.engine import measure


def main(label):
    cnorm.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64, 56, 56), dtype=np.float32).astype(np.float16)
    h = rng.standard_normal((32, 128, 768), dtype=np.float32).astype(np.float16)
    dy = np.ones_like(x)
    bn_eval = cnorm.BatchNorm(64, dtype=np.float16).eval()
    bn_train = cnorm.BatchNorm(64, dtype=np.float16)
    ln_eval = cnorm.LayerNorm(768, dtype=np.float16).eval()
    ln_train = cnorm.LayerNorm(768, dtype=np.float16)
    x32 = x.astype(np.float32)
    bn32 = cnorm.BatchNorm(64).eval()
    fns = {
        "BatchNorm eval f16": lambda: bn_eval(x),
        "BatchNorm eval f32": lambda: bn32(x32),
        "BatchNorm train f16": lambda: bn_train(x),
        "BatchNorm step f16": lambda: (bn_train(x), bn_train.backward(dy)),
        "LayerNorm eval f16": lambda: ln_eval(h),
        "LayerNorm train f16": lambda: ln_train(h),
    }
    samples, _ = measure(fns, 10)
    print(label, "; ".join(f"{name} {statistics.median(v) / 1e6:.2f} ms"
                           for name, v in samples.items()))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
