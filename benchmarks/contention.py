"""Default threads against one thread, with and without busy neighbours.

A neighbour is a process spinning in pure Python (no memory traffic to
speak of) for the duration of a measurement; it ends itself at a deadline
even if this script dies.  Each case is timed in interleaved rounds (one
thread, default threads, one thread, ...), each round the mean time of
`number` calls (not a best-of: under contention the lucky runs are not the
point); the medians and the median ratio default/one are printed.

    python benchmarks/contention.py [--neighbours 2] [--rounds 15]
"""
import argparse
import multiprocessing
import os
import time
import timeit

import numpy as np

import cnorm


def spin(deadline):
    """Burn one core until the wall clock reaches deadline."""
    while time.time() < deadline:
        pass


def cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 256, 14, 14)).astype(np.float32)
    out = np.empty_like(x)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    m, v = np.zeros(256, np.float32), np.ones(256, np.float32)
    _, mean, invstd = cnorm.batch_norm_train(x)
    r = rng.standard_normal((32, 128, 768)).astype(np.float32)
    r_out = np.empty_like(r)
    return [
        ("batch_norm_infer (8,256,14,14)",
         lambda: cnorm.batch_norm_infer(x, m, v, out=out), 50),
        ("batch_norm_train (8,256,14,14)", lambda: cnorm.batch_norm_train(x, out=out), 20),
        ("batch_norm_backward (8,256,14,14)",
         lambda: cnorm.batch_norm_backward(dy, x, mean, invstd, out=out), 20),
        ("layer_norm (32,128,768)", lambda: cnorm.layer_norm(r, 768, out=r_out), 5),
    ]


def measure(rounds):
    default = cnorm.get_num_threads()
    rows = []
    for name, call, number in cases():
        one, many = [], []
        for _ in range(rounds):
            cnorm.set_num_threads(1)
            one.append(timeit.timeit(call, number=number) / number)
            cnorm.set_num_threads(None)
            many.append(timeit.timeit(call, number=number) / number)
        one, many = np.array(one), np.array(many)
        rows.append((name, np.median(one), np.median(many), np.median(many / one)))
    cnorm.set_num_threads(None)
    return default, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neighbours", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(f"cnorm {cnorm.__version__} from {os.path.dirname(cnorm.__file__)}, "
          f"{os.cpu_count()} CPUs")
    for neighbours in (0, args.neighbours):
        ctx = multiprocessing.get_context("spawn")
        deadline = time.time() + 300   # neighbours end themselves
        procs = [ctx.Process(target=spin, args=(deadline,), daemon=True)
                 for _ in range(neighbours)]
        for p in procs:
            p.start()
        time.sleep(0.5 if procs else 0)
        try:
            default, rows = measure(args.rounds)
        finally:
            for p in procs:
                p.terminate()
                p.join()
        print(f"\n{neighbours} busy neighbours, default threads = {default}")
        print(f"{'case':38s} {'1 thread':>10s} {'default':>10s} {'default/1':>10s}")
        for name, one, many, ratio in rows:
            print(f"{name:38s} {one * 1e6:8.1f}us {many * 1e6:8.1f}us {ratio:10.2f}")


if __name__ == "__main__":
    main()
