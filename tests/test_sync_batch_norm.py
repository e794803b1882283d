"""SyncBatchNorm across real MPI processes (mpiexec from the mpich wheel),
on this machine only: the fork launcher on 127.0.0.1 and shared-memory
transports; each rank ends itself on a deadline (tests/mpi/sync_worker.py)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnorm

pytest.importorskip("mpi4py", reason="SyncBatchNorm needs the mpi extra")
WORKER = Path(__file__).parent / "mpi" / "sync_worker.py"
DEADLINE = 60


def _mpiexec():
    local = Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec")
    return found


def run_local(ranks, *args):
    """mpiexec -n ranks python args..., local only; its stdout (checked)."""
    command = [_mpiexec(), "-launcher", "fork", "-hosts", "127.0.0.1", "-n", str(ranks),
               sys.executable, *map(str, args)]
    env = dict(os.environ, UCX_TLS="self,sm", OMP_NUM_THREADS="1")
    result = subprocess.run(command, check=False, capture_output=True, text=True,
                            timeout=DEADLINE + 30, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def launch(ranks, scenario):
    out = run_local(ranks, WORKER, scenario, DEADLINE)
    assert out.count(f"{scenario} ok") == ranks, out


@pytest.mark.parametrize("ranks", [1, 2, 3])
@pytest.mark.parametrize("scenario", ["equal", "unequal", "empty", "far"])
def test_training_equals_batch_norm_on_the_concatenation(ranks, scenario):
    if scenario != "equal" and ranks == 1:
        pytest.skip("one rank holds the whole batch")
    launch(ranks, scenario)


@pytest.mark.parametrize("scenario", ["mismatch", "bad_input", "bad_buffer"])
def test_errors_reach_every_rank_without_a_hang(scenario):
    launch(2, scenario)


def test_a_batch_empty_on_every_rank_is_batch_norms_empty_batch():
    launch(2, "all_empty")


def test_bad_comm_and_no_pickling():
    with pytest.raises(TypeError, match="comm"):
        cnorm.SyncBatchNorm(3, comm=object())
    from mpi4py import MPI
    with pytest.raises(ValueError, match="COMM_NULL"):
        cnorm.SyncBatchNorm(3, comm=MPI.COMM_NULL)
    layer = cnorm.SyncBatchNorm(3)   # COMM_WORLD of a single process
    with pytest.raises(TypeError, match="state_dict"):
        import pickle

        pickle.dumps(layer)
    x = np.random.default_rng(0).normal(size=(4, 3, 2)).astype(np.float32)
    single = cnorm.BatchNorm(3)
    np.testing.assert_allclose(layer(x), single(x), rtol=1e-6, atol=1e-6)
    assert set(layer.state_dict()) == set(single.state_dict())


def test_example_trains_and_ranks_agree():
    example = Path(__file__).parent.parent / "examples" / "sync_batch_norm.py"
    out = run_local(2, example)
    assert out.count("running statistics agree with rank 0") == 2, out
    accuracies = [float(a) for a in re.findall(r"accuracy ([0-9.]+),", out)]
    assert len(accuracies) == 2, out
    assert min(accuracies) > 0.9, out


def test_state_dict_loads_into_torch_sync_batch_norm():
    torch = pytest.importorskip("torch")
    layer = cnorm.SyncBatchNorm(3)
    layer(np.random.default_rng(1).normal(2.0, 3.0, (5, 3, 4)).astype(np.float32))
    peer = torch.nn.SyncBatchNorm(3)
    peer.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in
                          layer.state_dict().items()})
    np.testing.assert_array_equal(peer.running_mean.numpy(), layer.running_mean)
    assert int(peer.num_batches_tracked) == layer.num_batches_tracked == 1
    back = cnorm.BatchNorm(3)
    back.load_state_dict(peer.state_dict())
    np.testing.assert_array_equal(back.running_var, layer.running_var)


def test_activation_on_one_rank_equals_batch_norm():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 3, 5))
    dy = rng.normal(size=x.shape)
    sync = cnorm.SyncBatchNorm(3, activation="silu", dtype=np.float64)
    plain = cnorm.BatchNorm(3, activation="silu", dtype=np.float64)
    sync.bias[...] = plain.bias[...] = [0.5, -0.5, 1.0]
    np.testing.assert_allclose(sync(x), plain(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sync.backward(dy), plain.backward(dy), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(sync.grad_bias, plain.grad_bias, rtol=1e-12)


# ---- the same argument and state checks as BatchNorm ----------------------

BAD_CONSTRUCTOR_ARGUMENTS = [
    ((True,), {}), ((np.True_,), {}), ((0,), {}), ((2.5,), {}), (("3",), {}), ((2**63,), {}),
    ((2**61,), {}), ((3,), {"eps": -1.0}), ((3,), {"eps": float("nan")}),
    ((3,), {"eps": "1e-5"}), ((3,), {"momentum": 1.5}), ((3,), {"momentum": True}),
    ((3,), {"axis": 1.5}), ((3,), {"axis": True}), ((3,), {"dtype": np.int32}),
    ((3,), {"dtype": "no such dtype"}), ((3,), {"activation": "tanh"}),
]


@pytest.mark.parametrize("args,kwargs", BAD_CONSTRUCTOR_ARGUMENTS, ids=repr)
def test_constructor_refuses_what_batch_norm_refuses(args, kwargs):
    with pytest.raises((TypeError, ValueError)) as plain:
        cnorm.BatchNorm(*args, **kwargs)
    with pytest.raises(plain.type) as sync:
        cnorm.SyncBatchNorm(*args, **kwargs)
    assert str(sync.value) == str(plain.value)
    assert "array is too big" not in str(plain.value)


def _batch(seed=0, shape=(4, 3, 5)):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


@pytest.mark.parametrize("eps,built", [(0, True), (0.0, False), (-1.0, False),
                                       (float("nan"), False), ("x", False)])
def test_training_refuses_the_eps_batch_norm_refuses(eps, built):
    """eps=0 is accepted by both constructors (eval with running statistics
    takes it) but refused by a training forward; eps is also re-checked there
    when it was assigned after construction."""
    layers = []
    for cls in (cnorm.BatchNorm, cnorm.SyncBatchNorm):
        layer = cls(3, eps=eps) if built else cls(3)
        layer.eps = eps
        layers.append(layer)
    errors = []
    for layer in layers:
        with pytest.raises((TypeError, ValueError), match="eps") as error:
            layer(_batch())
        errors.append(error)
        assert layer.num_batches_tracked == 0
        np.testing.assert_array_equal(layer.running_var, 1)
    plain, sync = errors
    assert sync.type is plain.type
    assert str(sync.value).endswith(str(plain.value))


def test_backward_before_forward_is_a_runtime_error_as_in_batch_norm():
    dy = np.ones((4, 3, 5), np.float32)
    with pytest.raises(RuntimeError, match="training-mode forward") as plain:
        cnorm.BatchNorm(3).backward(dy)
    layer = cnorm.SyncBatchNorm(3)
    with pytest.raises(RuntimeError, match="training-mode forward") as sync:
        layer.backward(dy)
    assert str(sync.value) == f"SyncBatchNorm: rank 0 of 1: {plain.value}"
    layer.eval()(dy)   # an eval forward saves nothing either
    with pytest.raises(RuntimeError, match="training-mode forward"):
        layer.backward(dy)


@pytest.mark.parametrize("stage", ["forward", "backward"])
@pytest.mark.parametrize("name,value,error", [
    ("weight", np.ones(2, np.float32), ValueError),
    ("bias", np.ones(4, np.float32), ValueError),
    ("weight", np.ones(3, np.int32), TypeError),
])
def test_a_bad_parameter_is_refused_before_any_collective(stage, name, value, error):
    """BatchNorm refuses a weight or bias of a wrong shape or dtype in both
    passes; SyncBatchNorm refuses it in the agreement step (where every rank
    sees it), not in the middle of a step where the other ranks would wait."""
    x, dy = _batch(1), _batch(2)
    for cls in (cnorm.BatchNorm, cnorm.SyncBatchNorm):
        layer = cls(3)
        if stage == "backward":
            layer(x)
        setattr(layer, name, value)
        with pytest.raises(error, match=name):
            layer(x) if stage == "forward" else layer.backward(dy)
        assert layer.num_batches_tracked == (stage == "backward")


def test_repr_is_batch_norm_s_without_the_communicator():
    layer = cnorm.SyncBatchNorm(64)
    assert repr(layer) == ("SyncBatchNorm(64, eps=1e-05, momentum=0.1, affine=True, "
                           "track_running_stats=True, axis=1)")
    assert repr(cnorm.SyncBatchNorm(8, momentum=None, dtype=np.float64, activation="relu")) == (
        "SyncBatchNorm(8, eps=1e-05, momentum=None, affine=True, track_running_stats=True, "
        "axis=1, dtype='float64', activation='relu')")
    rebuilt = eval(repr(layer), {"cnorm": cnorm, **vars(cnorm)})
    assert repr(rebuilt) == repr(layer)


def test_repr_matches_torch_sync_batch_norm_but_for_bias_and_axis():
    """torch 2.13 shows bias= (an argument cnorm's layers do not take: affine
    gives both parameters); cnorm adds axis=."""
    torch = pytest.importorskip("torch")
    for kwargs in ({}, {"momentum": None, "affine": False, "track_running_stats": False},
                   {"eps": 1e-3}):
        theirs = repr(torch.nn.SyncBatchNorm(16, **kwargs))
        theirs = theirs.replace(", bias=True", "").replace(", bias=False", "")
        assert repr(cnorm.SyncBatchNorm(16, **kwargs)) == theirs[:-1] + ", axis=1)"


# Every rank runs this under mpiexec; SIGALRM ends a rank that hangs.
STATE_ERRORS_WORKER = '''
import signal, sys
signal.alarm(int(sys.argv[1]))
from mpi4py import MPI
import numpy as np
import cnorm

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
x = np.random.default_rng(rank).standard_normal((4, 3, 5), dtype=np.float32)


def everywhere(call, kind, fragment):
    try:
        call()
    except Exception as error:
        assert type(error) is kind, repr(error)
        assert fragment in str(error), str(error)
        return
    raise AssertionError(f"expected a {kind.__name__} on rank {rank}")


# rank 0's batch has the wrong channel count
everywhere(lambda: cnorm.SyncBatchNorm(3)(np.ones((2, 3 + (rank == 0), 4), np.float32)),
           ValueError, "rank 0 of 2: x must have 3 channels on axis 1")
trained = cnorm.SyncBatchNorm(3)
trained(x)
# rank 0 differentiates a layer with no training forward, the others one with
everywhere(lambda: (cnorm.SyncBatchNorm(3) if rank == 0 else trained).backward(x),
           RuntimeError, "rank 0 of 2: backward() needs a training-mode forward call first")
# the last rank's dy has another dtype
everywhere(lambda: trained.backward(x.astype(np.float64) if rank == size - 1 else x),
           TypeError, f"rank {size - 1} of 2: dy must have the dtype")
# the last rank's weight was replaced by one of a wrong size
bad = cnorm.SyncBatchNorm(3)
bad(x)
if rank == size - 1:
    bad.weight = np.ones(2, np.float32)
everywhere(lambda: bad.backward(x), ValueError, "weight must have shape (3,)")
everywhere(lambda: bad(x), ValueError, "weight must have shape (3,)")
# rank 0's eps was set to 0
zero = cnorm.SyncBatchNorm(3)
if rank == 0:
    zero.eps = 0.0
everywhere(lambda: zero(x), ValueError, "rank 0 of 2: eps must be > 0")
assert zero.num_batches_tracked == 0
# ranks disagreeing on eps
other = cnorm.SyncBatchNorm(3, eps=1e-5 if rank else 1e-3)
everywhere(lambda: other(x), ValueError, "disagree")
# but a NumPy scalar agrees with the same Python float
same = cnorm.SyncBatchNorm(3)
same.eps = np.float64(1e-5) if rank else 1e-5
same(x)
# and the ranks are still in step: a whole training step works
trained.backward(trained(x))
grads = comm.allgather(trained.grad_weight.tobytes())
assert all(g == grads[0] for g in grads)
comm.Barrier()
print(f"rank {rank}: state errors ok", flush=True)
'''


def test_state_errors_reach_every_rank_as_runtime_errors_without_a_hang(tmp_path):
    worker = tmp_path / "state_errors.py"
    worker.write_text(STATE_ERRORS_WORKER)
    out = run_local(2, worker, DEADLINE)
    assert out.count("state errors ok") == 2, out
