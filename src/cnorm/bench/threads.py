"""Throughput of cnorm called from several Python threads at once.

Every kernel releases the GIL, so two Python threads, each with cnorm on one
OpenMP thread, should do close to twice the work of one: the figure printed
here is that ratio (the machine's memory bandwidth is the other limit).
"""
import threading
import time

import numpy as np

import cnorm

SHAPE = (8, 64, 28, 28)  # 1.6 MB: each thread's data stays in its own L2 + L3 share
SECONDS = 0.5


def _calls_in(seconds, n_threads):
    """Total batch_norm_train calls n_threads Python threads complete in `seconds`."""
    counts = [0] * n_threads
    stop = threading.Event()
    start = threading.Barrier(n_threads + 1)

    def work(i):
        x = np.random.default_rng(i).standard_normal(SHAPE, dtype=np.float32)
        y = np.empty_like(x)
        start.wait()
        while not stop.is_set():
            cnorm.batch_norm_train(x, out=y)
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts)


def python_threads_report(seconds=SECONDS):
    """Lines comparing 1 and 2 Python threads (cnorm on one thread each)."""
    previous = cnorm.get_num_threads()
    cnorm.set_num_threads(1)
    try:
        one = _calls_in(seconds, 1) / seconds
        two = _calls_in(seconds, 2) / seconds
    finally:
        cnorm.set_num_threads(previous)
    shape = "x".join(map(str, SHAPE))
    return [
        f"Python threads, cnorm.set_num_threads(1), batch_norm_train {shape} float32:",
        f"  1 thread  {one:8.0f} calls/s",
        f"  2 threads {two:8.0f} calls/s   ({two / one:.2f}x: the GIL is released in the kernels)",
    ]
