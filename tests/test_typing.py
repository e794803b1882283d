"""Type information (PEP 561): mypy passes on the package with its own
settings ([tool.mypy] in pyproject.toml), and on downstream code that imports
the installed cnorm, whose types must be precise (no Any, no import-untyped).

mypy's cache lives in pytest's cache directory, so only the first run is
cold (a few seconds); .ci/typing runs the same checks plus stubtest.
"""
import runpy
import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[1]
DOWNSTREAM = Path(__file__).with_name("typing_downstream.py")


@pytest.fixture
def mypy(request, tmp_path_factory):
    """Run mypy in-process: (report, exit status)."""

    def run(*args, cache="mypy"):
        store = getattr(request.config, "cache", None)
        cache_dir = (store.mkdir(cache) if store is not None
                     else tmp_path_factory.mktemp(cache))
        stdout, stderr, status = api.run(["--cache-dir", str(cache_dir), *map(str, args)])
        return stdout + stderr, status

    return run


@pytest.fixture
def downstream_config(tmp_path):
    """A user's configuration (strict), not this project's."""
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\n")
    return config


@pytest.mark.skipif(not (ROOT / "src" / "cnorm").is_dir(),
                    reason="not a source checkout (the sdist's tests run against the wheel)")
def test_package(mypy):
    report, status = mypy("--config-file", ROOT / "pyproject.toml", ROOT / "src" / "cnorm",
                          cache="mypy-package")
    assert status == 0, report


def test_downstream(mypy, downstream_config):
    report, status = mypy("--config-file", downstream_config, DOWNSTREAM,
                          cache="mypy-downstream")
    assert status == 0, report
    assert "import-untyped" not in report
    # What the annotations claim is also what the calls return: every
    # tuple unpacks, every call runs.
    runpy.run_path(str(DOWNSTREAM))


def test_downstream_errors(mypy, downstream_config, tmp_path):
    """Wrong uses are type errors (the annotations are not Any)."""
    user = tmp_path / "user.py"
    user.write_text(textwrap.dedent("""\
        import numpy as np
        import cnorm

        x = np.ones((2, 3), np.float32)
        y, mean = cnorm.layer_norm(x, 3)
        cnorm.rms_norm(x, 3, activation="gelu")
        cnorm.batch_norm_backward(x, x, x[0], x[0])[1].sum()
        cnorm.BatchNorm(3).backward(x).no_such_attribute
        cnorm.SyncBatchNorm(3)(x, mask=x)
        """))
    report, status = mypy("--config-file", downstream_config, user, cache="mypy-downstream")
    assert status == 1, report
    for line, code in ((5, "misc"), (6, "arg-type"), (7, "attr-defined"), (8, "attr-defined"),
                       (9, "call-arg")):
        assert any(f"user.py:{line}: error:" in r and f"[{code}]" in r
                   for r in report.splitlines()), (line, code, report)


def test_dask_results_stay_dask(mypy, downstream_config, tmp_path):
    pytest.importorskip("dask.array")
    user = tmp_path / "user_dask.py"
    user.write_text(textwrap.dedent("""\
        import dask.array as da
        from typing_extensions import assert_type

        import cnorm
        import cnorm.dask

        X: da.Array = da.ones((10, 3), chunks=5)
        scaler = cnorm.StandardScaler().fit(X)
        assert_type(scaler.transform(X), da.Array)
        assert_type(scaler.fit_transform(X), da.Array)
        assert_type(cnorm.dask.moments(X, axis=1), cnorm.Moments)
        """))
    report, status = mypy("--config-file", downstream_config, user, cache="mypy-downstream")
    assert status == 0, report
