"""Row-family kernels against np.copyto of the same bytes, one thread: the
median over 15 rounds of the ratio (each timed as the best of 3 repeats).

Behind the stop-18 before/after table in RESULTS.md; to compare two builds,
run it with each checkout's src/ on PYTHONPATH (it prints which it uses)."""
import timeit

import numpy as np

import cnorm


def ratio_to_copy(call, copy, number):
    calls, copies = [], []
    for _ in range(15):
        calls.append(min(timeit.repeat(call, number=number, repeat=3)))
        copies.append(min(timeit.repeat(copy, number=number, repeat=3)))
    return float(np.median(np.array(calls) / np.array(copies)))


def main():
    print(cnorm.__file__)
    cnorm.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 128, 768)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    out = np.empty_like(x)
    w = np.ones(768, np.float32)
    _, m, r = cnorm.layer_norm(x, 768, w)
    cases = [
        ("layer_norm (32,128,768)", lambda: cnorm.layer_norm(x, 768, w, out=out), x, out, 10),
        ("layer_norm_backward (32,128,768)",
         lambda: cnorm.layer_norm_backward(dy, x, m, r, 768, w, out=out), x, out, 10),
    ]
    x4 = rng.standard_normal((32, 64, 28, 28)).astype(np.float32)
    d4 = rng.standard_normal(x4.shape).astype(np.float32)
    o4 = np.empty_like(x4)
    _, m4, r4 = cnorm.group_norm(x4, 32)
    cases += [
        ("group_norm (32,64,28,28)", lambda: cnorm.group_norm(x4, 32, out=o4), x4, o4, 5),
        ("group_norm_backward (32,64,28,28)",
         lambda: cnorm.group_norm_backward(d4, x4, m4, r4, 32, out=o4), x4, o4, 5),
    ]
    for label, call, src, dst, number in cases:
        ratio = ratio_to_copy(call, lambda s=src, d=dst: np.copyto(d, s), number)
        print(f"{label}: {ratio:.3f} x copy")


if __name__ == "__main__":
    main()
