"""Each compiled SIMD path holds its instructions: the disassembly of the
kernels shows zmm registers in the avx512 path, ymm in the avx2 path and
neither in the baseline (a compiler that ignored the target regions would
compile all three as baseline code and still pass every result test)."""
import platform
import re
import shutil
import subprocess
from collections import defaultdict

import pytest

import cnorm.kernels
from cnorm import _kernels

pytestmark = [
    pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                       reason="the SIMD paths are x86-64 only"),
    pytest.mark.skipif(shutil.which("objdump") is None, reason="no objdump"),
    pytest.mark.skipif("-fsanitize" in _kernels.build_compiler(),
                       reason="a sanitizer build's instrumentation keeps loops scalar"),
]
FUNCTION = re.compile(r"^[0-9a-f]+ <(\w+?)_(f32|f64)_(base|avx2|avx512)(?:\.\w+)?>:$")


@pytest.fixture(scope="module")
def registers_by_path():
    """path -> {function: set of vector register kinds it uses}."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", cnorm.kernels.__file__],
                          capture_output=True, text=True, check=True, timeout=300).stdout
    found = defaultdict(dict)
    current = None
    for line in text.splitlines():
        m = FUNCTION.match(line)
        if m:
            current = found[m.group(3)].setdefault(f"{m.group(1)}_{m.group(2)}", set())
        elif not line.strip():
            current = None
        elif current is not None:
            current.update(re.findall(r"%([xyz])mm\d+", line))
    if not found["avx2"]:
        pytest.skip("the kernels' symbols are stripped")
    return found


def test_every_path_is_compiled(registers_by_path):
    """The same families in each path (which helpers stay out of line
    differs with the inlining of each target)."""
    common = set(registers_by_path["base"]) & set(registers_by_path["avx2"]) & set(
        registers_by_path["avx512"])
    assert len(common) >= 20, sorted(common)


def test_avx512_path_uses_zmm(registers_by_path):
    wide = [f for f, regs in registers_by_path["avx512"].items() if "z" in regs]
    assert len(wide) >= 10, sorted(registers_by_path["avx512"])


def test_avx2_path_uses_ymm_only(registers_by_path):
    paths = registers_by_path["avx2"]
    assert len([f for f, regs in paths.items() if "y" in regs]) >= 10, sorted(paths)
    assert not [f for f, regs in paths.items() if "z" in regs]


def test_baseline_uses_no_ymm_or_zmm(registers_by_path):
    assert not [f for f, regs in registers_by_path["base"].items() if regs & {"y", "z"}]
