"""Misaligned buffers (an array view at an odd byte offset of a bytes
buffer): every public function gives the result of aligned input, out= of
that kind is written correctly, and no misaligned pointer reaches a kernel
(the sanitizer build runs this file and would abort on one)."""
import numpy as np
import pytest

import cnorm
from cnorm import _kernels

from public_calls import calls, flatten

try:
    import ml_dtypes
    DTYPES = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]
except ImportError:   # bfloat16 needs ml_dtypes
    DTYPES = [np.float32, np.float64, np.float16]


def misaligned(a):
    """A copy of a whose data starts one byte past an aligned address."""
    a = np.asarray(a)
    raw = np.zeros(a.nbytes + a.itemsize + 1, np.uint8)
    start = -raw.ctypes.data % a.itemsize + 1   # aligned + 1: never aligned
    view = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert not view.flags.aligned or a.itemsize == 1
    return view


def _name(dtype):
    return np.dtype(dtype).name


@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
@pytest.mark.parametrize("name", list(calls(np.float32)))
def test_misaligned_inputs_give_aligned_results(name, dtype):
    call = calls(dtype)[name]
    aligned = flatten(call(lambda a: a))
    shifted = flatten(call(misaligned))
    assert len(aligned) == len(shifted)
    for a, b in zip(aligned, shifted):
        np.testing.assert_array_equal(a, b)


def _forwards(dtype):
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 2.0, (4, 6, 10)).astype(dtype)
    residual = rng.normal(size=x.shape).astype(dtype)
    m, v = np.zeros(6, np.float32), np.ones(6, np.float32)
    return x, {
        "batch_norm_train": lambda out: cnorm.batch_norm_train(x, out=out),
        "batch_norm_infer": lambda out: cnorm.batch_norm_infer(x, m, v, out=out),
        "layer_norm": lambda out: cnorm.layer_norm(x, 10, out=out),
        "group_norm": lambda out: cnorm.group_norm(x, 2, out=out),
        "instance_norm": lambda out: cnorm.instance_norm(x, out=out),
        "rms_norm": lambda out: cnorm.rms_norm(x, 10, out=out),
        "add_layer_norm": lambda out: cnorm.add_layer_norm(x, residual, 10, out=out),
        "add_rms_norm": lambda out: cnorm.add_rms_norm(x, residual, 10, out=out),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
@pytest.mark.parametrize("name", list(_forwards(np.float32)[1]))
def test_misaligned_out_is_written(name, dtype):
    x, forwards = _forwards(dtype)
    expected = flatten(forwards[name](None))[0]
    out = misaligned(np.full(x.shape, 7, dtype))
    assert flatten(forwards[name](out))[0] is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
def test_misaligned_statistics_and_scaler(dtype):
    x = np.random.default_rng(4).normal(3.0, 2.0, (50, 7)).astype(dtype)
    expected = cnorm.Moments.of(x, axis=0)
    got = cnorm.Moments.of(misaligned(x), axis=0)
    np.testing.assert_array_equal(got.mean, expected.mean)
    np.testing.assert_array_equal(got.m2, expected.m2)
    if np.dtype(dtype).name == "bfloat16":   # StandardScaler keeps float16/32/64 only
        return

    scaler = cnorm.StandardScaler().fit(x)
    assert np.array_equal(cnorm.StandardScaler().fit(misaligned(x)).scale_, scaler.scale_)
    for layout in (x, np.asfortranarray(x)):
        in_place = misaligned(layout)
        transformed = scaler.transform(layout)
        assert cnorm.StandardScaler(copy=False).fit(x).transform(in_place) is in_place
        np.testing.assert_array_equal(in_place, transformed)


@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
@pytest.mark.parametrize("make", [lambda: cnorm.BatchNorm(6), lambda: cnorm.LayerNorm(10),
                                  lambda: cnorm.GroupNorm(2, 6), lambda: cnorm.RMSNorm(10)],
                         ids=["BatchNorm", "LayerNorm", "GroupNorm", "RMSNorm"])
def test_misaligned_layer_step(make, dtype):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6, 10)).astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    plain, shifted = make(), make()
    np.testing.assert_array_equal(shifted(misaligned(x)), plain(x))
    np.testing.assert_array_equal(shifted.backward(misaligned(dy)), plain.backward(dy))


def test_kernel_boundary_refuses_misaligned_arrays():
    """The Cython layer is the last line: a misaligned array that slipped
    past the Python checks is refused, not handed to C."""
    x = misaligned(np.ones((2, 3, 4), np.float32))
    mean, m2 = np.empty(3), np.empty(3)
    with pytest.raises(ValueError, match="aligned"):
        _kernels.channel_moments(x, 2, 3, 4, mean, m2)
    with pytest.raises(ValueError, match="aligned"):
        _kernels.channel_moments(np.ones((2, 3, 4), np.float32), 2, 3, 4, misaligned(mean), m2)
