"""A downstream Cython project cimports cnorm's kernels and calls them nogil.

Like numpy's test_extending: build a tiny extension in a temporary directory
(one compile for the module), with cnorm.get_include() on the include path
and no link against cnorm: the functions are bound at import through the
capsules of cnorm.kernels.
"""
import importlib
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import threading

import numpy as np
import pytest

import cnorm

import reference as ref
from conftest import assert_close

PYX = textwrap.dedent(
    """
    # cython: language_level=3, boundscheck=False, wraparound=False
    import numpy as np
    from libc.stdint cimport int64_t
    from cnorm.kernels cimport bn_forward_infer_f32


    def infer(const float[:, :, ::1] x, const float[::1] rm, const float[::1] rv,
              const float[::1] w, const float[::1] b, double eps, bint affine=True):
        cdef int64_t N = x.shape[0], C = x.shape[1], S = x.shape[2]
        y = np.empty((N, C, S), dtype=np.float32)
        cdef float[:, :, ::1] yv = y
        cdef const float *wp = &w[0] if affine else NULL
        cdef const float *bp = &b[0] if affine else NULL
        cdef int rc
        with nogil:
            rc = bn_forward_infer_f32(&x[0, 0, 0], N, C, S, &rm[0], &rv[0], wp, bp, eps, 0,
                                      &yv[0, 0, 0])
        return rc, y
    """
)

SETUP = textwrap.dedent(
    """
    import numpy
    import cnorm
    from Cython.Build import cythonize
    from setuptools import Extension, setup

    ext = Extension(
        "cnorm_downstream",
        ["cnorm_downstream.pyx"],
        include_dirs=[cnorm.get_include(), numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    setup(name="cnorm_downstream", ext_modules=cythonize([ext], language_level=3))
    """
)


def _have_compiler():
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(os.environ.get("CC", cc).split()[0]) is not None


@pytest.fixture(scope="module")
def downstream(tmp_path_factory):
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    if not _have_compiler():
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("downstream")
    (d / "cnorm_downstream.pyx").write_text(PYX)
    (d / "setup.py").write_text(SETUP)
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=d,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sys.path.insert(0, str(d))
    try:
        mod = importlib.import_module("cnorm_downstream")
    finally:
        sys.path.remove(str(d))
    return mod


def _inputs(rng, shape):
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    rm = rng.standard_normal(c).astype(np.float32)
    rv = rng.uniform(0.5, 2.0, c).astype(np.float32)
    w = rng.uniform(0.5, 1.5, c).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    return x, rm, rv, w, b


@pytest.mark.parametrize("shape", [(2, 3, 5), (4, 16, 33), (7, 1, 1)])
def test_downstream_infer(downstream, rng, shape):
    x, rm, rv, w, b = _inputs(rng, shape)
    rc, y = downstream.infer(x, rm, rv, w, b, 1e-3)
    assert rc == 0
    assert_close(y, ref.bn_infer(x, rm, rv, w, b, eps=1e-3))
    # and the same as the Python API
    assert_close(y, cnorm.batch_norm_infer(x, rm, rv, w, b, eps=1e-3))


def test_downstream_null_weight_bias(downstream, rng):
    x, rm, rv, w, b = _inputs(rng, (3, 4, 6))
    rc, y = downstream.infer(x, rm, rv, w, b, 1e-5, False)
    assert rc == 0
    assert_close(y, ref.bn_infer(x, rm, rv, eps=1e-5))


def test_downstream_from_threads(downstream, rng):
    """nogil calls from several Python threads at once give the right answers."""
    inputs = [_inputs(rng, (4, 8, 64)) for _ in range(4)]
    results = [None] * len(inputs)

    def work(i):
        for _ in range(20):
            results[i] = downstream.infer(*inputs[i], 1e-5)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for (x, rm, rv, w, b), (rc, y) in zip(inputs, results):
        assert rc == 0
        assert_close(y, ref.bn_infer(x, rm, rv, w, b, eps=1e-5))
