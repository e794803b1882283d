"""Property tests: hostile inputs across every public function.

Shapes with zeros and ones anywhere, any valid axis, both dtypes, strided /
transposed / Fortran / negative-stride views, NaN and +-Inf anywhere, and
magnitudes from subnormal to 1e30.  Each call either matches the float64
reference (non-finite values exactly where the reference has them) or raises
ValueError where the input is predicted to be invalid; inputs are never
mutated.
"""
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnorm

import reference as ref
import reference_rows as rref

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
SCALES = [1e-42, 1e-20, 1e-3, 1.0, 1e4, 1e30]


def layouts(a, how):
    """A view with a's values in another memory layout."""
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "strided":
        buf = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        view = buf[..., ::2]
    elif how == "reversed":
        buf = np.zeros_like(a)
        view = buf[::-1]
    elif how == "transposed":
        view = np.zeros(a.shape[::-1], a.dtype).T
    else:
        return a.copy()
    view[...] = a
    return view


@st.composite
def hostile_arrays(draw, min_dims=2, max_dims=4, specials=True):
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from(SCALES))
    a = (rng.standard_normal(shape) * scale).astype(dtype)
    if specials and a.size:
        for _ in range(draw(st.integers(0, 2))):
            a.flat[draw(st.integers(0, a.size - 1))] = draw(
                st.sampled_from([np.nan, np.inf, -np.inf]))
    how = draw(st.sampled_from(["c", "fortran", "strided", "reversed", "transposed"]))
    return layouts(a, how), rng


def assert_matches(actual, expected, dtype, what, scale=None):
    """Finite where the reference is finite and within tolerance there;
    non-finite where the reference is.  The absolute tolerance is relative to
    `scale`, the magnitude of the terms that make up the result (gradients
    cancel: dx can be far smaller than dy * weight * rstd), by default the
    result's own largest magnitude."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    finite = np.isfinite(expected)
    assert np.array_equal(np.isfinite(actual), finite), f"{what}: non-finite pattern differs"
    if finite.any():
        e, a = expected[finite], actual[finite]
        rtol = 2e-4 if dtype == np.float32 else 1e-9
        if scale is None or not np.isfinite(scale):
            scale = np.abs(e).max()
        atol = rtol * max(scale, np.abs(e).max(), np.finfo(dtype).tiny)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what)


def term_scale(dy, w, rstd):
    """Largest |dy * weight * rstd|: the size of the terms a gradient cancels."""
    finite = [np.abs(a[np.isfinite(a)]).max(initial=0.0) for a in (dy, w, rstd)]
    return float(np.prod(finite))


def unchanged(before, after):
    return np.array_equal(before, after, equal_nan=True)


def params(rng, n, dtype):
    return (rng.uniform(0.5, 2, n).astype(dtype), rng.uniform(-1, 1, n).astype(dtype))


@SETTINGS
@given(data=hostile_arrays(), axis_pick=st.integers(0, 3), neg=st.booleans())
def test_batch_norm_functions(data, axis_pick, neg):
    x, rng = data
    x0 = x.copy()
    axis = axis_pick % x.ndim - (x.ndim if neg else 0)
    C = x.shape[axis]
    count = x.size // C if C else math.prod(s for i, s in enumerate(x.shape) if i != axis % x.ndim)
    w, b = params(rng, C, x.dtype)
    if count == 1:
        with pytest.raises(ValueError):
            cnorm.batch_norm_train(x, w, b, axis=axis)
    elif C == 0 or count == 0:   # empty: as PyTorch, an empty y (mean 0, var 0)
        y, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis)
        assert y.shape == x.shape and mean.shape == invstd.shape == (C,)
        assert not mean.any()
        dx, dw, db = cnorm.batch_norm_backward(x, x, mean, invstd, w, axis=axis)
        assert dx.shape == x.shape and db.shape == (C,) and not db.any()
    else:
        y, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis)
        ey, emean, einvstd = ref.bn_train(x, w, b, axis=axis)
        assert_matches(y, ey, x.dtype, "y")
        assert_matches(mean, emean, x.dtype, "mean")
        dy = rng.standard_normal(x.shape).astype(x.dtype)
        dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis)
        edx, edw, edb = ref.bn_backward(dy, x, mean, invstd, w, axis=axis)
        assert_matches(dx, edx, x.dtype, "dx", term_scale(dy, w, invstd))
        assert_matches(db, edb, x.dtype, "dbias")
    rm = rng.standard_normal(C).astype(x.dtype)
    rv = rng.uniform(0.1, 3, C).astype(x.dtype)
    y = cnorm.batch_norm_infer(x, rm, rv, w, b, axis=axis)
    assert_matches(y, ref.bn_infer(x, rm, rv, w, b, axis=axis), x.dtype, "infer")
    assert unchanged(x0, x)


@SETTINGS
@given(data=hostile_arrays(min_dims=1), dims=st.integers(1, 4))
def test_layer_and_rms_norm(data, dims):
    x, rng = data
    x0 = x.copy()
    norm = x.shape[x.ndim - min(dims, x.ndim):]
    w, b = params(rng, norm, x.dtype)
    if math.prod(norm) == 0:
        with pytest.raises(ValueError):
            cnorm.layer_norm(x, norm, w, b)
        with pytest.raises(ValueError):
            cnorm.rms_norm(x, norm, w)
        return
    y, mean, rstd = cnorm.layer_norm(x, norm, w, b)
    ey, emean, erstd = rref.layer_norm(x, norm, w, b)
    assert_matches(y, ey, x.dtype, "layer y")
    assert_matches(mean, emean, x.dtype, "layer mean")
    dy = rng.standard_normal(x.shape).astype(x.dtype)
    dx, dw, db = cnorm.layer_norm_backward(dy, x, mean, rstd, norm, w)
    assert_matches(dx, rref.layer_norm_backward(dy, x, norm, w)[0], x.dtype, "layer dx",
                   term_scale(dy, w, rstd))
    y, rstd = cnorm.rms_norm(x, norm, w, eps=1e-6)
    assert_matches(y, rref.rms_norm(x, norm, w, eps=1e-6)[0], x.dtype, "rms y")
    dx, dw = cnorm.rms_norm_backward(dy, x, rstd, norm, w)
    assert_matches(dx, rref.rms_norm_backward(dy, x, norm, w, eps=1e-6)[0], x.dtype, "rms dx",
                   term_scale(dy, w, rstd))
    assert unchanged(x0, x)


@SETTINGS
@given(data=hostile_arrays(min_dims=2), group_pick=st.integers(0, 5))
def test_group_and_instance_norm(data, group_pick):
    x, rng = data
    x0 = x.copy()
    N, C = x.shape[:2]
    S = math.prod(x.shape[2:])
    w, b = params(rng, C, x.dtype)
    divisors = [g for g in range(1, C + 1) if C % g == 0] or [1]
    G = divisors[group_pick % len(divisors)]
    if N * G > 0 and (C // G) * S == 0:
        with pytest.raises(ValueError):
            cnorm.group_norm(x, G, w, b)
    else:
        y, mean, rstd = cnorm.group_norm(x, G, w, b)
        assert_matches(y, rref.group_norm(x, G, w, b)[0], x.dtype, "group y")
        dy = rng.standard_normal(x.shape).astype(x.dtype)
        dx, dw, db = cnorm.group_norm_backward(dy, x, mean, rstd, G, w)
        assert_matches(dx, rref.group_norm_backward(dy, x, G, w)[0], x.dtype, "group dx",
                       term_scale(dy, w, rstd))
    if x.ndim < 3 or S < 2:
        with pytest.raises(ValueError):
            cnorm.instance_norm(x, w, b)
    else:
        y, mean, rstd = cnorm.instance_norm(x, w, b)
        assert_matches(y, rref.instance_norm(x, w, b)[0], x.dtype, "instance y")
    assert unchanged(x0, x)


@SETTINGS
@given(data=hostile_arrays(min_dims=3, max_dims=4, specials=False))
def test_running_stats_never_become_nan(data):
    x, _ = data
    C = x.shape[1]
    if C == 0 or x.size // C < 2:
        return
    bn = cnorm.BatchNorm(C, dtype=x.dtype)
    renorm = cnorm.BatchRenorm(C, dtype=x.dtype)
    for layer in (bn, renorm):
        layer(x)
        layer(x * 0.5)
        # float32 cannot hold the variance of data near 1e30: inf, never NaN
        assert not np.isnan(layer.running_mean).any()
        assert not np.isnan(layer.running_var).any()
