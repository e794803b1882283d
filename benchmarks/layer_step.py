"""A BatchNorm layer's training forward in a loop (`bn(x)`, the result
dropped each step) beside the functional call and np.copyto of x, one
thread, float32: medians of 5 rounds (each the best of 3 repeats).

    python benchmarks/layer_step.py
"""
import timeit

import numpy as np

import cnorm


def main():
    cnorm.set_num_threads(1)
    rng = np.random.default_rng(0)
    for shape, number in [((1, 64, 7, 7), 2000), ((8, 256, 14, 14), 50),
                          ((32, 64, 56, 56), 5)]:
        x = rng.standard_normal(shape, dtype=np.float32)
        bn = cnorm.BatchNorm(shape[1])
        out = np.empty_like(x)
        contenders = {
            "layer": lambda bn=bn, x=x: bn(x),
            "functional": lambda bn=bn, x=x: cnorm.batch_norm_train(x, bn.weight, bn.bias),
            "copy": lambda x=x, out=out: np.copyto(out, x),
        }
        medians = {}
        for name, fn in contenders.items():
            rounds = [min(timeit.repeat(fn, number=number, repeat=3)) / number
                      for _ in range(5)]
            medians[name] = sorted(rounds)[2]
        cells = " ".join(f"{name} {t * 1e6:.1f} us" for name, t in medians.items())
        print(f"{shape}: {cells}; layer/functional {medians['layer'] / medians['functional']:.2f}")


if __name__ == "__main__":
    main()
