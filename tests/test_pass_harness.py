"""benchmarks/passes.c builds against the public header and runs: the pass
harness only calls exported kernels, so it is compiled the way
examples/c/build.py compiles the C example (linked with the kernels
module).  Its timings are not checked, only that each case prints its line."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "benchmarks" / "passes.c"
BUILD = HARNESS.parent.parent / "examples" / "c" / "build.py"
NO_LIBPYTHON = 3  # build.py's exit status when there is no libpython to link


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    if not sys.platform.startswith("linux") or shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("needs Linux and a C compiler")
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("the compiler would run under the preloaded ASan runtime")
    exe = tmp_path_factory.mktemp("passes") / "passes"
    proc = subprocess.run([sys.executable, str(BUILD), str(HARNESS), "-o", str(exe)],
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode == NO_LIBPYTHON:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return exe


def _run(exe, *args):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_every_case_prints_its_passes(harness):
    proc = _run(harness, 2, 3, 40, 4, 5, 1, "--rows", 6, 64, 3, 16, "--rows", 4, 100, 1, 1)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("one thread, float32")
    ratio = r" [0-9]+\.[0-9]{2}"
    channel = "".join(f"  {name}{ratio}" for name in
                      ("statistics", "elementwise", "train fwd", "bwd sums", "backward"))
    rows = f"  row fwd{ratio}  row bwd{ratio}"
    assert re.fullmatch(r"\(2,3,40\)" + channel, lines[1]), lines[1]
    assert re.fullmatch(r"\(4,5,1\)" + channel, lines[2]), lines[2]
    assert re.fullmatch(r"rows \(6,64\) G 3 S 16" + rows, lines[3]), lines[3]
    assert re.fullmatch(r"rows \(4,100\) G 1 S 1" + rows, lines[4]), lines[4]
    assert len(lines) == 5


@pytest.mark.parametrize("args", [(2, 3), ("--rows", 6, 64, 4, 16), ("--rows", 6, 64, 3, 7)])
def test_bad_cases_are_refused(harness, args):
    proc = _run(harness, *args)
    assert proc.returncode == 2 and ("usage" in proc.stderr or "divide" in proc.stderr)
