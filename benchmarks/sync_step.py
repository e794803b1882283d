"""Time per training step (forward + backward) of SyncBatchNorm on P ranks
beside BatchNorm in one process, each rank holding a (16, 64, 28, 28)
float32 batch, one kernel thread per rank:

    mpiexec -launcher fork -hosts 127.0.0.1 -n 1 python benchmarks/sync_step.py
    mpiexec -launcher fork -hosts 127.0.0.1 -n 2 python benchmarks/sync_step.py

Rank 0 prints the medians over 30 steps and the ratio to BatchNorm
(measured on rank 0 while the other ranks wait at a barrier).
"""
import signal
import statistics
import time

import numpy as np
from mpi4py import MPI

import cnorm

signal.alarm(300)
comm = MPI.COMM_WORLD
cnorm.set_num_threads(1)
rng = np.random.default_rng(comm.Get_rank())
x = rng.standard_normal((16, 64, 28, 28), dtype=np.float32)
dy = rng.standard_normal(x.shape, dtype=np.float32)


def step_times(layer, steps=30, barrier=True):
    times = []
    for _ in range(steps + 3):
        if barrier:   # ranks start each step together
            comm.Barrier()
        t0 = time.perf_counter()
        layer(x)
        layer.backward(dy)
        times.append(time.perf_counter() - t0)
    return times[3:]


sync = step_times(cnorm.SyncBatchNorm(64))
plain = step_times(cnorm.BatchNorm(64), barrier=False) if comm.Get_rank() == 0 else None
comm.Barrier()
if comm.Get_rank() == 0:
    s, p = statistics.median(sync), statistics.median(plain)
    print(f"P={comm.Get_size()}: SyncBatchNorm {s * 1e3:.2f} ms/step, BatchNorm {p * 1e3:.2f} "
          f"ms/step, ratio {s / p:.2f}")
