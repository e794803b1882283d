"""examples/c: a plain C program compiled against the installed header and
linked with the kernels in cnorm/kernels*.so (examples/c/build.py), run, and
its numbers checked against float64 NumPy."""
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnorm

import reference as ref
from conftest import assert_close

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "c"
NO_LIBPYTHON = 3  # build.py's exit status when there is no libpython to link


def _build_command(output):
    """examples/c/build.py --print: the command it would run (None: no
    libpython here)."""
    proc = subprocess.run([sys.executable, str(EXAMPLE / "build.py"), "--print", "-o",
                           str(output)], capture_output=True, text=True, timeout=60,
                          check=False)
    if proc.returncode == NO_LIBPYTHON:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stderr
    return shlex.split(proc.stdout)


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    if not sys.platform.startswith("linux"):
        pytest.skip("the example links an ELF extension module (Linux)")
    cc = shlex.split(os.environ.get("CC", "cc"))[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc})")
    exe = tmp_path_factory.mktemp("c_example") / "cnorm_example"
    # build.py's own command, run here without LD_PRELOAD: the sanitizer job
    # preloads ASan into every process, and the compiler should not run
    # instrumented (the program keeps it: it loads an instrumented module).
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    proc = subprocess.run(_build_command(exe), env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return exe


def _run(program):
    proc = subprocess.run([str(program)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    values = {}
    for line in lines[1:]:
        name, numbers = line.split(":")
        values[name] = np.array(numbers.split(), dtype=np.float32)
    return lines[0], values


def _input(i):
    """The program's inputs: (i*37 % 101) / 16 - 3, exact in float32."""
    return ((np.asarray(i) * 37) % 101 / 16.0 - 3.0).astype(np.float32)


def test_c_example_matches_numpy(program):
    header, got = _run(program)
    assert header.startswith(f"cnorm C API {cnorm.__version__}, SIMD path ")

    N, C, S = 2, 3, 4
    x = _input(np.arange(N * C * S)).reshape(N, C, S)
    mean = np.array([0.5, -1.0, 2.0], np.float32)
    var = np.array([1.0, 4.0, 0.25], np.float32)
    weight = np.array([1.0, 0.5, 2.0], np.float32)
    bias = np.array([0.0, 1.0, -1.0], np.float32)
    want = ref.bn_infer(x, mean, var, weight, bias, eps=1e-5)
    assert_close(got["bn_forward_infer_f32 y"].reshape(N, C, S), want, dtype=np.float32)

    M, K = 3, 5
    rows = _input(3 * np.arange(M * K) ** 2 + 1).reshape(M, K)
    gamma = np.array([1.0, 2.0, 0.5, 1.0, -1.0], np.float32)
    beta = np.array([0.0, 0.1, 0.2, 0.3, 0.4], np.float32)
    y, row_mean, row_rstd = ref.layer_norm(rows, (K,), gamma, beta, eps=1e-5)
    assert_close(got["row_forward_f32 y"].reshape(M, K), y, dtype=np.float32)
    assert_close(got["row_forward_f32 mean"], row_mean, dtype=np.float32)
    assert_close(got["row_forward_f32 rstd"], row_rstd, dtype=np.float32)


def test_c_example_without_python_on_the_path(program, tmp_path):
    """The program runs from anywhere, with no Python environment around it
    (rpaths find the kernels module and libpython)."""
    env = {"PATH": "/usr/bin:/bin"}
    env.update({k: v for k, v in os.environ.items()  # the sanitizer job's ASan runtime
                if k == "LD_PRELOAD" or k.startswith(("ASAN_", "UBSAN_"))})
    proc = subprocess.run([str(program)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 5


def test_build_py_builds(tmp_path):
    """build.py itself compiles and links (the fixture runs its printed command)."""
    cc = shlex.split(os.environ.get("CC", "cc"))[0]
    if not sys.platform.startswith("linux") or shutil.which(cc) is None:
        pytest.skip("needs Linux and a C compiler")
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("the compiler would run under the preloaded ASan runtime")
    exe = tmp_path / "x"
    proc = subprocess.run([sys.executable, str(EXAMPLE / "build.py"), "-o", str(exe)],
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode == NO_LIBPYTHON:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert shlex.split(proc.stdout.splitlines()[0]) == _build_command(exe)
    assert exe.exists()
