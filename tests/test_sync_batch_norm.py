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
@pytest.mark.parametrize("scenario", ["equal", "unequal", "empty"])
def test_training_equals_batch_norm_on_the_concatenation(ranks, scenario):
    if scenario != "equal" and ranks == 1:
        pytest.skip("one rank holds the whole batch")
    launch(ranks, scenario)


@pytest.mark.parametrize("scenario", ["mismatch", "bad_input"])
def test_errors_reach_every_rank_without_a_hang(scenario):
    launch(2, scenario)


def test_bad_comm_and_no_pickling():
    with pytest.raises(TypeError, match="comm"):
        cnorm.SyncBatchNorm(3, comm=object())
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
