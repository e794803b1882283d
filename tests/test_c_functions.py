"""Exported C functions that the Python API does not call on every path,
called through the capsules of cnorm.kernels (what a C or Cython caller
gets) and checked against float64 NumPy: the moments merge, the channel
moments and affine kernels, and the runtime switches."""
import ctypes

import numpy as np
import pytest

import cnorm
import cnorm.kernels
from cnorm import _kernels

P = ctypes.c_void_p
I64 = ctypes.c_int64


def exported(name, restype, *argtypes):
    """cnorm_<name> as a ctypes function, from its capsule."""
    capsule = cnorm.kernels.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return ctypes.CFUNCTYPE(restype, *argtypes)(get(capsule, get_name(capsule)))


def ptr(a):
    return a.ctypes.data


def moments(v):
    v = np.asarray(v, np.float64)
    return (v.size, v.mean(), ((v - v.mean()) ** 2).sum()) if v.size else (0, 0.0, 0.0)


@pytest.mark.parametrize("sizes", [(5, 7), (1, 1), (0, 4), (4, 0), (1000, 3)])
def test_moments_merge_equals_moments_of_concatenation(sizes):
    merge = exported("moments_merge", None, P, P, P, ctypes.c_double, ctypes.c_double,
                     ctypes.c_double)
    rng = np.random.default_rng(sum(sizes))
    a, b = rng.normal(1e3, 2.0, sizes[0]), rng.normal(-5.0, 0.5, sizes[1])
    na, mean_a, m2_a = (np.array([v], np.float64) for v in moments(a))
    merge(ptr(na), ptr(mean_a), ptr(m2_a), *moments(b))
    count, mean, m2 = moments(np.concatenate([a, b]))
    assert na[0] == count
    np.testing.assert_allclose(mean_a[0], mean, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(m2_a[0], m2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, sfx", [(np.float32, "f32"), (np.float64, "f64")])
@pytest.mark.parametrize("shape", [(3, 5, 7), (64, 3, 1), (1, 2, 4099), (0, 3, 4)])
def test_channel_moments(dtype, sfx, shape):
    fn = exported(f"channel_moments_{sfx}", ctypes.c_int, P, I64, I64, I64, P, P)
    x = np.random.default_rng(1).normal(100.0, 3.0, shape).astype(dtype)
    mean, m2 = np.full(shape[1], np.nan), np.full(shape[1], np.nan)
    assert fn(ptr(x), *shape, ptr(mean), ptr(m2)) == 0
    x64 = x.astype(np.float64)
    if x.size == 0:   # an empty reduction: zeros
        assert np.all(mean == 0) and np.all(m2 == 0)
        return
    expected_mean = x64.mean(axis=(0, 2))
    expected_m2 = ((x64 - expected_mean[None, :, None]) ** 2).sum(axis=(0, 2))
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(mean, expected_mean, rtol=rtol)
    np.testing.assert_allclose(m2, expected_m2, rtol=rtol * 10)


@pytest.mark.parametrize("dtype, sfx", [(np.float32, "f32"), (np.float64, "f64")])
@pytest.mark.parametrize("shape", [(3, 5, 7), (8, 16, 1), (2, 3, 1000)])
@pytest.mark.parametrize("in_place", [False, True])
def test_channel_affine(dtype, sfx, shape, in_place):
    fn = exported(f"channel_affine_{sfx}", ctypes.c_int, P, I64, I64, I64, P, P, P)
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape).astype(dtype)
    scale = rng.uniform(0.5, 2.0, shape[1]).astype(dtype)
    shift = rng.normal(size=shape[1]).astype(dtype)
    expected = (x.astype(np.float64) * scale[None, :, None].astype(np.float64)
                + shift[None, :, None].astype(np.float64))
    y = x if in_place else np.empty_like(x)
    assert fn(ptr(x), *shape, ptr(scale), ptr(shift), ptr(y)) == 0
    # one rounding (fused) or two: within an ulp of the float64 result
    np.testing.assert_allclose(y, expected, rtol=2 * np.finfo(dtype).eps,
                               atol=2 * np.finfo(dtype).eps)


def test_serial_only_switch():
    set_serial = exported("set_serial_only", None, ctypes.c_int)
    get_threads = exported("get_num_threads", ctypes.c_int)
    x = np.random.default_rng(3).normal(size=(64, 32, 100)).astype(np.float32)
    before = cnorm.get_num_threads()
    parallel = cnorm.batch_norm_train(x)
    set_serial(1)
    try:
        assert get_threads() == 1
        serial = cnorm.batch_norm_train(x)
    finally:
        set_serial(0)
    assert get_threads() == before
    for a, b in zip(parallel, serial):
        np.testing.assert_array_equal(a, b)   # deterministic whatever the threads


def test_runtime_queries_agree_with_python():
    set_threads = exported("set_num_threads", None, ctypes.c_int)
    get_threads = exported("get_num_threads", ctypes.c_int)
    before = cnorm.get_num_threads()
    set_threads(1)
    try:
        assert cnorm.get_num_threads() == 1
    finally:
        set_threads(0)   # n <= 0: the default again
    assert get_threads() == before
    assert exported("openmp_enabled", ctypes.c_int)() == int(_kernels.openmp_enabled())
    assert exported("simd_path", ctypes.c_char_p)().decode() == _kernels.simd_path()
    assert exported("build_compiler", ctypes.c_char_p)().decode() == _kernels.build_compiler()
