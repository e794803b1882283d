"""Threads and fork: shared state objects, atomic training steps, forked workers."""
import multiprocessing
import threading

import numpy as np
import pytest

import cnorm


def run_in_threads(n, target):
    """Run target(i) on n threads started together; re-raise the first error."""
    errors = []
    barrier = threading.Barrier(n)

    def body(i):
        try:
            barrier.wait()
            target(i)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def trained_layers(rng):
    """Every state object with non-trivial parameters and statistics, in eval mode."""
    x4 = rng.standard_normal((8, 16, 12, 12)).astype(np.float32)
    x3 = rng.standard_normal((8, 24, 32)).astype(np.float32)
    layers = [
        (cnorm.BatchNorm(16), x4),
        (cnorm.BatchRenorm(16), x4),
        (cnorm.GroupNorm(4, 16), x4),
        (cnorm.InstanceNorm(16, affine=True, track_running_stats=True), x4),
        (cnorm.LayerNorm(32), x3),
        (cnorm.RMSNorm(32), x3),
    ]
    for layer, x in layers:
        for _ in range(3):
            layer(x * 2.0 + 1.0)
        if layer.weight is not None:
            layer.weight[...] = rng.uniform(0.5, 1.5, layer.weight.shape)
        layer.eval()
    return layers


def test_eval_calls_from_many_threads_match_sequential(rng):
    for layer, x in trained_layers(rng):
        batches = [x * (1 + i / 10) for i in range(8)]
        expected = [layer(b) for b in batches]
        results = [None] * len(batches)

        def work(i, layer=layer, batches=batches, results=results):
            for _ in range(20):
                results[i] = layer(batches[i])

        run_in_threads(len(batches), work)
        for got, want in zip(results, expected):
            np.testing.assert_array_equal(got, want, err_msg=type(layer).__name__)


@pytest.mark.parametrize("make", [
    lambda: cnorm.BatchNorm(8),
    lambda: cnorm.BatchNorm(8, momentum=None),
    lambda: cnorm.BatchRenorm(8),
    lambda: cnorm.InstanceNorm(8, track_running_stats=True),
], ids=["bn", "bn-cumulative", "renorm", "instance"])
def test_concurrent_training_steps_are_atomic(rng, make):
    x = rng.standard_normal((16, 8, 6, 6)).astype(np.float32) * 3 + 2
    sequential, shared = make(), make()
    for _ in range(400):
        sequential(x)

    def work(_):
        for _ in range(50):
            shared(x)

    run_in_threads(8, work)
    assert shared.num_batches_tracked == 400
    np.testing.assert_array_equal(shared.running_mean, sequential.running_mean)
    np.testing.assert_array_equal(shared.running_var, sequential.running_var)


def _child_batch_norm(queue):
    x = np.random.default_rng(1).standard_normal((32, 64, 32, 32)).astype(np.float32)
    y = cnorm.batch_norm_train(x)[0]
    queue.put((float(np.abs(y.mean(axis=(0, 2, 3))).max()), cnorm.get_num_threads()))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="needs the fork start method")
def test_forked_child_after_multithreaded_parent_finishes(restore_threads):
    cnorm.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((32, 64, 32, 32)).astype(np.float32)
    cnorm.batch_norm_train(x)  # large enough to start the OpenMP team
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_batch_norm, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("forked child hung in cnorm")
    assert child.exitcode == 0
    max_abs_mean, child_threads = queue.get(timeout=5)
    assert max_abs_mean < 1e-5
    if cnorm._kernels.openmp_enabled():
        assert child_threads == 1  # documented: a forked child runs serially
