"""The plain-C example builds against the installed header and kernels, as
its comment (and the README) says, and prints layer norm's result."""
import pathlib
import shlex
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

import cnorm
import cnorm.kernels

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "c" / "layer_norm.c"
CC = shutil.which("cc")


def python_ldflags():
    """What `python3-config --embed --ldflags` prints, from sysconfig."""
    libdir = sysconfig.get_config_var("LIBDIR")
    version = sysconfig.get_config_var("LDVERSION") or sysconfig.get_config_var("VERSION")
    return [f"-L{libdir}", f"-lpython{version}", f"-Wl,-rpath,{libdir}",
            *shlex.split(sysconfig.get_config_var("LIBS") or "")]


@pytest.mark.skipif(CC is None or not sys.platform.startswith("linux"),
                    reason="needs cc on Linux")
@pytest.mark.skipif(not sysconfig.get_config_var("Py_ENABLE_SHARED"),
                    reason="this Python has no shared libpython to link")
def test_plain_c_example(tmp_path):
    exe = tmp_path / "layer_norm"
    build = subprocess.run(
        [CC, str(EXAMPLE), f"-I{cnorm.get_include()}", cnorm.kernels.__file__,
         *python_ldflags(), "-o", str(exe)],
        capture_output=True, text=True, timeout=120, check=False)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    got = np.array([[float(v) for v in line.split()] for line in run.stdout.splitlines()])
    x = np.array([(i * i % 7) - 2.5 for i in range(15)]).reshape(3, 5)
    w, b = np.array([1, 0.5, 2, 1, -1]), np.array([0, 1, 0, -1, 0])
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
