"""One rank of a SyncBatchNorm scenario, run by tests/test_sync_batch_norm.py
under mpiexec:  python sync_worker.py SCENARIO DEADLINE_SECONDS

Every rank builds the same global batch from a fixed seed, trains on its own
slice and checks itself against cnorm.BatchNorm on the whole batch and its
bits against every other rank.  Exit status 0 means the scenario held on
this rank; SIGALRM ends a rank that hangs past the deadline.
"""
import signal
import sys

import numpy as np

signal.alarm(int(sys.argv[2]))   # a hang fails the test instead of blocking it

from mpi4py import MPI  # noqa: E402

import cnorm  # noqa: E402

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
C = 3


def batch_sizes(scenario):
    """Rows of the global batch held by each rank."""
    return {"equal": [4] * size, "unequal": [5, 1, 3][:size],
            "empty": [4, 0, 3][:size], "far": [5, 1, 3][:size]}[scenario]


def same_on_every_rank(array, what):
    everyone = comm.allgather(np.asarray(array).tobytes())
    assert all(b == everyone[0] for b in everyone), f"{what} differs between ranks"


def close(actual, expected, what, dtype, far=False):
    """far: the ranks' Chan merge of float64 means at 1e4 rounds them
    (ulp(1e4) of 3: 6e-13 relative), not the single call's own blocks."""
    tol = (1e-11 if far else 1e-12) if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=what)


def train_and_compare(scenario, dtype, axis):
    sizes = batch_sizes(scenario)
    rng = np.random.default_rng(42)
    lo, hi = sum(sizes[:rank]), sum(sizes[:rank + 1])
    shape = (sum(sizes), C, 5) if axis == 1 else (sum(sizes), 5, C)
    sync = cnorm.SyncBatchNorm(C, axis=axis, dtype=dtype, momentum=None if axis == 1 else 0.3)
    single = cnorm.BatchNorm(C, axis=axis, dtype=dtype, momentum=None if axis == 1 else 0.3)
    offset = 1e4 if scenario == "far" else 0.0   # far from 0: the saved mean's rounding shows
    for step in range(3):
        x = rng.normal(2.0 + step + offset, 3.0, shape).astype(dtype)
        dy = rng.normal(0.0, 1.0, shape).astype(dtype)
        sync.weight[...] = single.weight[...] = rng.uniform(0.5, 2, C)
        sync.bias[...] = single.bias[...] = rng.uniform(-1, 1, C)
        y = sync(x[lo:hi])
        y_all = single(x)
        close(y, y_all[lo:hi], f"y, step {step}", dtype, offset > 0)
        dx = sync.backward(dy[lo:hi])
        dx_all = single.backward(dy)
        close(dx, dx_all[lo:hi], f"dx, step {step}", dtype, offset > 0)
        for name in ("grad_weight", "grad_bias", "running_mean", "running_var"):
            close(getattr(sync, name), getattr(single, name), f"{name}, step {step}", dtype,
                  offset > 0)
            same_on_every_rank(getattr(sync, name), name)
        assert sync.num_batches_tracked == single.num_batches_tracked == step + 1
    sync.eval()
    single.eval()
    x = rng.normal(size=shape).astype(dtype)
    close(sync(x[lo:hi]), single(x)[lo:hi], "eval", dtype, offset > 0)


def expect_error_everywhere(make_call, fragment, error_class=ValueError):
    try:
        make_call()
    except error_class as error:
        assert fragment in str(error), str(error)
        return
    raise AssertionError(f"expected a {error_class.__name__} on every rank")


def main(scenario):
    if scenario == "mismatch":   # ranks build different layers
        layer = cnorm.SyncBatchNorm(C + (rank == size - 1))
        x = np.ones((2, layer.num_features, 4), np.float32)
        expect_error_everywhere(lambda: layer(x), "disagree")
    elif scenario == "bad_input":   # rank 0's batch has the wrong channel count
        layer = cnorm.SyncBatchNorm(C)
        x = np.ones((2, C + (rank == 0), 4), np.float32)
        expect_error_everywhere(lambda: layer(x), "rank 0")
        expect_error_everywhere(lambda: layer.backward(x), "forward",   # nothing saved
                                RuntimeError)
    elif scenario == "all_empty":   # no rank holds a value: as BatchNorm on an empty batch
        layer, single = cnorm.SyncBatchNorm(C), cnorm.BatchNorm(C)
        x = np.zeros((0, C, 4), np.float32)
        assert layer(x).shape == single(x).shape == x.shape
        assert layer.num_batches_tracked == single.num_batches_tracked == 1
        assert layer.backward(x).shape == x.shape
        np.testing.assert_array_equal(layer.grad_weight, single.backward(x) is not None and
                                      single.grad_weight)
        np.testing.assert_array_equal(layer.running_mean, single.running_mean)
    elif scenario == "bad_buffer":   # the last rank reassigned a running buffer
        layer = cnorm.SyncBatchNorm(C)
        if rank == size - 1:
            layer.running_mean = np.zeros(C + 1, np.float32)
        expect_error_everywhere(lambda: layer(np.ones((2, C, 4), np.float32)), "running_mean")
    else:
        for dtype in (np.float64, np.float32):
            for axis in (1, -1):
                train_and_compare(scenario, dtype, axis)
    comm.Barrier()
    print(f"rank {rank}: {scenario} ok", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
