"""The README's downstream Cython project, file for file as the README
shows it, builds with pip and runs.  pip builds it without isolation here
(--no-build-isolation): the build requirement cnorm-numpy is this checkout's
install, which no index offers."""
import importlib
import pathlib
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import cnorm

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
FILES = ("pyproject.toml", "setup.py", "downstream.pyx")


def readme_files():
    """{file name: text} of the code blocks whose first line names a file."""
    section = README.read_text().split("## C and Cython API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\w*\n(.*?)```", section, flags=re.S)
    found = {}
    for block in blocks:
        first = block.splitlines()[0]
        for name in FILES:
            if first.strip() == f"# {name}":
                found[name] = block
    return found


def test_readme_shows_the_whole_project():
    assert sorted(readme_files()) == sorted(FILES)


@pytest.fixture(scope="module")
def downstream(tmp_path_factory):
    pytest.importorskip("Cython")
    project = tmp_path_factory.mktemp("project")
    for name, text in readme_files().items():
        (project / name).write_text(text)
    wheels = tmp_path_factory.mktemp("wheels")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
         "--check-build-dependencies",   # every [build-system] requirement is installed here
         "--wheel-dir", str(wheels), str(project)],
        capture_output=True, text=True, timeout=600, check=False)
    if build.returncode != 0 and "error: command" in build.stderr and "not found" in build.stderr:
        pytest.skip("no C compiler")
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    unpacked = tmp_path_factory.mktemp("site")
    (wheel,) = wheels.glob("downstream-*.whl")
    zipfile.ZipFile(wheel).extractall(unpacked)
    sys.path.insert(0, str(unpacked))
    try:
        return importlib.import_module("downstream")
    finally:
        sys.path.remove(str(unpacked))


def test_readme_project_builds_and_runs(downstream):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    mean = rng.normal(size=4).astype(np.float32)
    var = rng.uniform(0.5, 2, 4).astype(np.float32)
    y = np.empty_like(x)
    assert downstream.infer(x, mean, var, y) == 0
    np.testing.assert_allclose(y, cnorm.batch_norm_infer(x, mean, var), rtol=1e-6, atol=1e-6)
