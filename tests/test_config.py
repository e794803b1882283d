"""Library configuration: threads, show_config, get_include, OpenMP build."""
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

import pytest

import cnorm
from cnorm import _kernels


def test_get_num_threads_is_positive_int():
    n = cnorm.get_num_threads()
    assert isinstance(n, int) and n >= 1


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_set_get_round_trip(n, restore_threads):
    cnorm.set_num_threads(n)
    if _kernels.openmp_enabled():
        assert cnorm.get_num_threads() == n
    else:
        assert cnorm.get_num_threads() == 1


def test_none_restores_default(restore_threads):
    cnorm.set_num_threads(None)
    default = cnorm.get_num_threads()
    cnorm.set_num_threads(default + 1)
    if _kernels.openmp_enabled():
        assert cnorm.get_num_threads() == default + 1
    cnorm.set_num_threads(None)
    assert cnorm.get_num_threads() == default


@pytest.mark.parametrize("n", [0, -1, -8])
def test_set_num_threads_rejects_non_positive(n, restore_threads):
    before = cnorm.get_num_threads()
    with pytest.raises(ValueError):
        cnorm.set_num_threads(n)
    assert cnorm.get_num_threads() == before


@pytest.mark.parametrize("n", [1.5, "2", 2.0])
def test_set_num_threads_rejects_non_integers(n, restore_threads):
    with pytest.raises((TypeError, ValueError)):
        cnorm.set_num_threads(n)


def _run(code, **env):
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=120, check=True).stdout.strip()


@pytest.mark.skipif(not _kernels.openmp_enabled(), reason="built without OpenMP")
def test_default_honours_omp_num_threads():
    out = _run("import cnorm; print(cnorm.get_num_threads())", OMP_NUM_THREADS="3")
    assert out == "3"


def test_show_config(capsys):
    cnorm.show_config()
    text = capsys.readouterr().out
    assert "OpenMP" in text
    assert cnorm.__version__ in text
    try:
        assert version("cnorm-numpy") == cnorm.__version__
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        pass
    lower = text.lower()
    assert any(p in lower for p in ("avx512", "avx2", "baseline", "neon", "sse")), text
    assert str(cnorm.get_num_threads()) in text


def test_get_include():
    inc = cnorm.get_include()
    assert isinstance(inc, str)
    header = os.path.join(inc, "cnorm.h")
    assert os.path.isfile(header)
    with open(header) as f:
        assert '#include "cnorm_kernels.def"' in f.read()
    with open(os.path.join(inc, "cnorm_kernels.def")) as f:  # the list it expands
        assert "X(SFX, bn_forward_infer," in f.read()


def _compiler_builds_openmp(compiler, tmp_path):
    src = tmp_path / "probe.c"
    src.write_text("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
    try:
        run = subprocess.run([compiler, "-fopenmp", str(src), "-o", str(tmp_path / "probe")],
                             check=False, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None   # that compiler is not here: nothing to compare with
    return run.returncode == 0


def test_openmp_enabled_flag(tmp_path):
    """The build uses OpenMP exactly when its compiler can build OpenMP code
    (setup.py's probe), unless CNORM_OPENMP=0 asked for a serial build."""
    flag = _kernels.openmp_enabled()
    assert isinstance(flag, bool)
    if os.environ.get("CNORM_OPENMP", "").strip() == "0":
        assert flag is False
        return
    family = _kernels.build_compiler().split()[0]   # "gcc 12.2.0" -> "gcc"
    can = _compiler_builds_openmp(family, tmp_path)
    if can is None:
        pytest.skip(f"the kernels' compiler ({family}) is not on PATH to probe")
    assert flag is can, f"{family} can{'' if can else 'not'} build OpenMP, kernels say {flag}"


def test_unknown_simd_request_warns():
    import warnings

    from cnorm._config import check_simd_request

    for bad in ("Baseline", "sse", "AVX2", ""):
        with pytest.warns(RuntimeWarning, match="baseline, avx2, avx512"):
            check_simd_request({"CNORM_SIMD": bad})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for good in ("baseline", "avx2", "avx512"):
            check_simd_request({"CNORM_SIMD": good})
        check_simd_request({})


def test_config_names_the_compiler_that_built_cnorm():
    compiler = cnorm._config.config()["compiler"]
    assert compiler.split()[0] in ("gcc", "clang", "msvc"), compiler
