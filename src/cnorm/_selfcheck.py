"""Self-check: cnorm against the independent float64 NumPy reference.

The reference is cnorm.reference: the formulas written out in float64 with
plain NumPy reductions, never calling cnorm's kernels.  Shapes are small but
cover planar and channels-last batch norm, few channels with many values
(split reductions), inputs big enough for the parallel paths, and an input
whose mean dwarfs its spread (where E[x^2] - E[x]^2 fails).  Runs in well
under a second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import cnorm
from cnorm import reference as ref

EPS = 1e-5
# max |cnorm - reference| / max(1, max |reference|), per dtype
TOLERANCE: dict[np.dtype[Any], float] = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


def tolerance(dtype, offset):
    """Data shifted by `offset` standard deviations carries offset times
    more rounding into y = x*scale + shift; E[x^2] - E[x]^2 would still miss
    this bound by far (its error grows with offset squared)."""
    return TOLERANCE[dtype] * (1.0 + offset / 100.0)


# ---- checks -----------------------------------------------------------------
# Each check runs cnorm (forwards into a preallocated out=, as the benchmark
# does) and returns [(what, cnorm's array, reference array)].


def check_batch_norm_train(d, axis=1):
    y, mean, invstd = cnorm.batch_norm_train(d.x, d.w, d.b, eps=EPS, axis=axis,
                                             out=np.empty_like(d.x))
    ry, rmean, rinvstd = ref.bn_train(d.x, d.w, d.b, eps=EPS, axis=axis)
    return [("y", y, ry), ("mean", mean, rmean), ("invstd", invstd, rinvstd)]


def check_batch_norm_infer(d, axis=1):
    rm, rv = d.w - 1.0, d.w * 2.0  # any mean, any positive variance
    y = cnorm.batch_norm_infer(d.x, rm, rv, d.w, d.b, eps=EPS, axis=axis, out=np.empty_like(d.x))
    return [("y", y, ref.bn_infer(d.x, rm, rv, d.w, d.b, eps=EPS, axis=axis))]


def check_batch_norm_backward(d, axis=1):
    _, mean, invstd = cnorm.batch_norm_train(d.x, d.w, d.b, eps=EPS, axis=axis)
    got = cnorm.batch_norm_backward(d.dy, d.x, mean, invstd, d.w, axis=axis)
    _, rmean, rinvstd = ref.bn_train(d.x, eps=EPS, axis=axis)
    want = ref.bn_backward(d.dy, d.x, rmean, rinvstd, d.w, axis=axis)
    return list(zip(("dx", "dweight", "dbias"), got, want))


def check_layer_norm(d, dims=1):
    shape = d.x.shape[-dims:]
    y, mean, rstd = cnorm.layer_norm(d.x, shape, d.w, d.b, eps=EPS, out=np.empty_like(d.x))
    ry, rmean, rrstd = ref.layer_norm(d.x, shape, d.w, d.b, eps=EPS)
    return [("y", y, ry), ("mean", mean, rmean), ("rstd", rstd, rrstd)]


def check_layer_norm_backward(d, dims=1):
    shape = d.x.shape[-dims:]
    _, mean, rstd = cnorm.layer_norm(d.x, shape, d.w, d.b, eps=EPS)
    got = cnorm.layer_norm_backward(d.dy, d.x, mean, rstd, shape, d.w)
    want = ref.layer_norm_backward(d.dy, d.x, shape, d.w, eps=EPS)
    return list(zip(("dx", "dweight", "dbias"), got, want))


def check_group_norm(d, groups):
    y, mean, rstd = cnorm.group_norm(d.x, groups, d.w, d.b, eps=EPS, out=np.empty_like(d.x))
    ry, rmean, rrstd = ref.group_norm(d.x, groups, d.w, d.b, eps=EPS)
    return [("y", y, ry), ("mean", mean, rmean), ("rstd", rstd, rrstd)]


def check_group_norm_backward(d, groups):
    _, mean, rstd = cnorm.group_norm(d.x, groups, d.w, d.b, eps=EPS)
    got = cnorm.group_norm_backward(d.dy, d.x, mean, rstd, groups, d.w)
    want = ref.group_norm_backward(d.dy, d.x, groups, d.w, eps=EPS)
    return list(zip(("dx", "dweight", "dbias"), got, want))


def check_instance_norm(d):
    y, mean, rstd = cnorm.instance_norm(d.x, d.w, d.b, eps=EPS, out=np.empty_like(d.x))
    ry, rmean, rrstd = ref.instance_norm(d.x, d.w, d.b, eps=EPS)
    return [("y", y, ry), ("mean", mean, rmean), ("rstd", rstd, rrstd)]


def check_instance_norm_backward(d):
    _, mean, rstd = cnorm.instance_norm(d.x, d.w, d.b, eps=EPS)
    got = cnorm.instance_norm_backward(d.dy, d.x, mean, rstd, d.w)
    want = ref.instance_norm_backward(d.dy, d.x, d.w, eps=EPS)
    return list(zip(("dx", "dweight", "dbias"), got, want))


def check_rms_norm(d):
    shape = d.x.shape[-1:]
    y, rstd = cnorm.rms_norm(d.x, shape, d.w, eps=EPS, out=np.empty_like(d.x))
    ry, rrstd = ref.rms_norm(d.x, shape, d.w, eps=EPS)
    return [("y", y, ry), ("rstd", rstd, rrstd)]


def check_rms_norm_backward(d):
    shape = d.x.shape[-1:]
    _, rstd = cnorm.rms_norm(d.x, shape, d.w, eps=EPS)
    got = cnorm.rms_norm_backward(d.dy, d.x, rstd, shape, d.w)
    return list(zip(("dx", "dweight"), got, ref.rms_norm_backward(d.dy, d.x, shape, d.w, eps=EPS)))


def _sample_mask(d, axis):
    """Whole positions (all channels) masked out, about a third of them."""
    shape = list(d.x.shape)
    shape[axis] = 1
    mask = np.random.default_rng(7).random(shape) > 0.35
    mask.flat[:2] = True
    return mask


def check_masked_batch_norm(d, axis=1):
    mask = _sample_mask(d, axis)
    y, mean, invstd = cnorm.batch_norm_train(d.x, d.w, d.b, eps=EPS, axis=axis, mask=mask)
    ry, rmean, rinvstd, _ = ref.masked_bn_train(d.x, mask, d.w, d.b, eps=EPS, axis=axis)
    got = cnorm.batch_norm_backward(d.dy, d.x, mean, invstd, d.w, axis=axis, mask=mask)
    want = ref.masked_bn_backward(d.dy, d.x, mask, d.w, eps=EPS, axis=axis)
    return [("y", y, ry), ("mean", mean, rmean), ("invstd", invstd, rinvstd),
            *zip(("dx", "dweight", "dbias"), got, want)]


def check_moments_and_scaler(d, axis=-1):
    m = cnorm.Moments.of(d.x, axis=axis)
    count, mean, m2 = ref.moments(d.x, axis)
    z = cnorm.StandardScaler().fit(d.x).transform(d.x)
    rz = (ref.f64(d.x) - mean) / np.sqrt(m2 / count)
    return [("count", m.count, np.full_like(mean, count)), ("mean", m.mean, mean),
            ("m2", m.m2 / count, m2 / count), ("transform", z, rz)]


def check_fold_batch_norm(d):
    C = d.w.shape[0]
    weight = np.linspace(-1, 1, C * 6).reshape(C, 2, 3).astype(d.x.dtype)
    args = (weight, d.b, d.b * 0.5, d.w * 2.0, d.w, d.b)
    got = cnorm.fold_batch_norm(*args, eps=EPS)
    return list(zip(("weight", "bias"), got, ref.fold_batch_norm(*args, eps=EPS)))


def check_fused_activation(d, activation):
    y, mean, invstd = cnorm.batch_norm_train(d.x, d.w, d.b, eps=EPS, activation=activation)
    ry, rmean, rinvstd = ref.bn_train(d.x, d.w, d.b, eps=EPS)
    got = cnorm.batch_norm_backward(d.dy, d.x, mean, invstd, d.w, activation=activation,
                                    bias=d.b)
    dz = ref.f64(d.dy) * ref.activation_slope(ry, activation)
    want = ref.bn_backward(dz, d.x, rmean, rinvstd, d.w)
    return [("y", y, ref.activation(ry, activation)), *zip(("dx", "dweight", "dbias"), got, want)]


def check_add_layer_norm(d):
    residual = d.dy
    y, s, mean, rstd = cnorm.add_layer_norm(d.x, residual, d.x.shape[-1], d.w, d.b, eps=EPS)
    total = d.x + residual   # in x's dtype, as the kernel rounds it
    ry, rmean, rrstd = ref.layer_norm(total, d.x.shape[-1:], d.w, d.b, eps=EPS)
    return [("y", y, ry), ("s", s, total), ("mean", mean, rmean), ("rstd", rstd, rrstd)]


def check_low_precision(d, dtype_name):
    """float16 / bfloat16 x against the float64 reference of the same
    low-precision values; the tolerance is the low dtype's epsilon."""
    x = d.x.astype(_low_dtype(dtype_name))
    y, mean, invstd = cnorm.batch_norm_train(x, d.w, d.b, eps=EPS)
    ry, rmean, rinvstd = ref.bn_train(x, d.w, d.b, eps=EPS)
    h, _, rstd = cnorm.layer_norm(x, x.shape[-1], eps=EPS)
    rh, _, rrstd = ref.layer_norm(x, x.shape[-1:], eps=EPS)
    return [("y", y, ry), ("mean", mean, rmean), ("invstd", invstd, rinvstd),
            ("layer_norm y", h, rh), ("rstd", rstd, rrstd)]


check_low_precision.tolerance = lambda dtype_name: float(np.finfo(_low_dtype(dtype_name)).eps)  # type: ignore[attr-defined]


def _low_dtype(name):
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(np.float16)


def _bfloat16_available():
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return False
    return True


# (check, shape, keyword arguments, offset added to x)
CASES: list[tuple[Any, tuple[int, ...], dict[str, Any], float]] = [
    *[(check, shape, kw, 0.0)
      for check in (check_batch_norm_train, check_batch_norm_infer, check_batch_norm_backward)
      for shape, kw in (((4, 3, 5, 5), {}), ((16, 7), {}), ((2, 4, 4, 6), {"axis": -1}),
                        ((8, 16, 32, 32), {}), ((32, 2, 32, 32), {}),
                        ((32, 16, 16, 16), {"axis": -1}))],
    (check_batch_norm_train, (4, 3, 5, 5), {}, 1e3),
    *[(check, shape, kw, 0.0)
      for check in (check_layer_norm, check_layer_norm_backward)
      for shape, kw in (((4, 10), {}), ((2, 3, 4, 5), {"dims": 2}), ((8, 64, 300), {}))],
    (check_layer_norm, (4, 10), {}, 1e3),
    *[(check, shape, {"groups": g}, 0.0)
      for check in (check_group_norm, check_group_norm_backward)
      for shape, g in (((2, 6, 3, 3), 3), ((4, 32, 32, 32), 8))],
    *[(check, shape, {}, 0.0)
      for check in (check_instance_norm, check_instance_norm_backward,
                    check_rms_norm, check_rms_norm_backward)
      for shape in ((2, 3, 4, 4), (4, 32, 32, 32))],
    (check_masked_batch_norm, (6, 3, 5, 5), {}, 0.0),
    (check_masked_batch_norm, (16, 20, 8), {"axis": -1}, 0.0),
    (check_moments_and_scaler, (5000, 12), {}, 0.0),
    (check_moments_and_scaler, (5000, 12), {}, 1e3),
    (check_fold_batch_norm, (4, 5, 3), {}, 0.0),
    (check_fused_activation, (8, 4, 6, 6), {"activation": "relu"}, 0.0),
    (check_fused_activation, (8, 4, 6, 6), {"activation": "silu"}, 0.0),
    (check_add_layer_norm, (16, 300), {}, 0.0),
    (check_low_precision, (8, 4, 6, 6), {"dtype_name": "float16"}, 0.0),
    *[(check_low_precision, (8, 4, 6, 6), {"dtype_name": "bfloat16"}, 0.0)
      for _ in range(_bfloat16_available())],
]


@dataclass
class Inputs:
    x: np.ndarray
    dy: np.ndarray
    w: np.ndarray
    b: np.ndarray


def _inputs(check, shape, kw, offset, dtype, rng):
    x = (rng.standard_normal(shape) + offset).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    if check in (check_layer_norm, check_layer_norm_backward):
        pshape = shape[len(shape) - kw.get("dims", 1):]
    elif check in (check_rms_norm, check_rms_norm_backward, check_moments_and_scaler,
                   check_add_layer_norm):
        pshape = shape[-1:]
    elif check is check_fold_batch_norm:
        pshape = (shape[1],)
    else:
        pshape = (shape[kw.get("axis", 1)],)
    w = rng.uniform(0.5, 1.5, pshape).astype(dtype)
    return Inputs(x, dy, w, rng.uniform(-0.5, 0.5, pshape).astype(dtype))


def _error(got, want):
    got = np.asarray(got, np.float64).ravel()
    want = np.asarray(want, np.float64).ravel()
    if got.shape != want.shape:
        return math.inf
    return float(np.max(np.abs(got - want), initial=0.0) / max(1.0, np.max(np.abs(want))))


def _describe(check, shape, kw, offset):
    # a string value names itself ("relu", "float16"); numbers keep their key
    extra = "".join(f" {v}" if isinstance(v, str) else f" {k}={v}" for k, v in kw.items())
    return f"{check.__name__[len('check_'):]:<24}{str(shape):<18}{extra}" + (
        f" x+{offset:g}" if offset else "")


def run(stream=None):
    """Print PASS/FAIL per case (both dtypes); True when everything passed."""
    print(f"cnorm self-check against a float64 NumPy reference "
          f"({cnorm.get_num_threads()} threads)", file=stream)
    rng = np.random.default_rng(1234)
    failed = 0
    for check, shape, kw, offset in CASES:
        results, ok = [], True
        for dtype in TOLERANCE:
            try:
                pairs = check(_inputs(check, shape, kw, offset, dtype, rng), **kw)
                what, err = max(((w, _error(g, r)) for w, g, r in pairs), key=lambda p: p[1])
            except Exception as e:  # report, and keep checking the other cases
                results.append(f"{dtype.name}: {type(e).__name__}: {e}")
                ok = False
                continue
            limit = (check.tolerance(**kw) if hasattr(check, "tolerance")
                     else tolerance(dtype, offset))
            passed = err <= limit
            ok &= passed
            results.append(f"{dtype.name} {err:.1e}" + ("" if passed else f" ({what})"))
        failed += not ok
        print(f"  {'PASS' if ok else 'FAIL'}  {_describe(check, shape, kw, offset):<52} "
              f"{', '.join(results)}", file=stream)
    print(f"self-check: {len(CASES) - failed} passed, {failed} failed", file=stream)
    return failed == 0
