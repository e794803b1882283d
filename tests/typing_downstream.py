"""Code that uses cnorm as a downstream project would, for the type checker.

tests/test_typing.py runs mypy --strict on this file against the installed
cnorm (its py.typed and stubs, not this checkout's mypy settings) and then
runs it, so that every annotation claimed here is also what the call
returns at run time.  assert_type fails the type check when an annotation
is missing (Any) or differs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import assert_type

import cnorm

Floats = NDArray[np.floating[Any]]

rng = np.random.default_rng(0)
x = rng.standard_normal((4, 3, 5)).astype(np.float32)
dy = np.ones_like(x)
w = np.ones(3, np.float32)
b = np.zeros(3, np.float32)

# ---- batch norm -------------------------------------------------------------
y, mean, invstd = cnorm.batch_norm_train(x, w, b, eps=1e-5, activation="relu")
assert_type(y, NDArray[Any])
assert_type(mean, Floats)
assert_type(invstd, Floats)
dx, dweight, dbias = cnorm.batch_norm_backward(dy, x, mean, invstd, w, activation="relu", bias=b)
assert_type(dx, NDArray[Any])
assert_type(dweight, Floats)
assert_type(dbias, Floats)
_, no_dweight, _ = cnorm.batch_norm_backward(dy, x, mean, invstd)
assert_type(no_dweight, None)
maybe_w = w if rng.random() < 2 else None
_, some_dweight, _ = cnorm.batch_norm_backward(dy, x, mean, invstd, maybe_w)
assert_type(some_dweight, "Floats | None")
y = cnorm.batch_norm_infer(x, mean, 1 / invstd**2, w, b, out=y)
assert_type(y, NDArray[Any])

# ---- row family -------------------------------------------------------------
y, mean, rstd = cnorm.layer_norm(x, 5)
assert_type(rstd, Floats)
dx, dw5, db5 = cnorm.layer_norm_backward(dy, x, mean, rstd, (5,), np.ones(5, np.float32))
assert_type(dw5, Floats)
y, mean, rstd = cnorm.group_norm(x, 3, w, b, activation="silu")
dx, dw, db = cnorm.group_norm_backward(dy, x, mean, rstd, 3, w, activation="silu", bias=b)
y, mean, rstd = cnorm.instance_norm(x)
dx, no_dw, db = cnorm.instance_norm_backward(dy, x, mean, rstd)
assert_type(no_dw, None)
y, rstd = cnorm.rms_norm(x, 5)
dx, no_dw = cnorm.rms_norm_backward(dy, x, rstd, 5)
assert_type(no_dw, None)
y, s, mean, rstd = cnorm.add_layer_norm(x, dy, 5)
assert_type(s, NDArray[Any])
y, s, rstd = cnorm.add_rms_norm(x, dy, 5)

# ---- layers -----------------------------------------------------------------
bn = cnorm.BatchNorm(3, momentum=None)
assert_type(bn.train(), cnorm.BatchNorm)
assert_type(bn(x), NDArray[Any])
assert_type(bn.backward(dy), NDArray[Any])
assert_type(bn.grad_weight, "Floats | None")
assert_type(bn.running_mean, "Floats | None")
state: dict[str, NDArray[Any]] = bn.state_dict()
bn.eval().load_state_dict(state)
w2, b2 = bn.fold_into(np.ones((3, 7), np.float32))
assert_type(w2, Floats)
layers: list[cnorm.BatchNorm | cnorm.LayerNorm | cnorm.GroupNorm | cnorm.InstanceNorm
             | cnorm.RMSNorm] = [
    cnorm.BatchRenorm(3, rmax=2.0), cnorm.LayerNorm((3, 5), dtype=np.float64),
    cnorm.GroupNorm(3, 3, activation="relu"), cnorm.InstanceNorm(3, affine=True),
    cnorm.RMSNorm(5, eps=None)]
for layer in layers:
    assert_type(layer(x), NDArray[Any])

# ---- statistics, scaler, folding, configuration --------------------------------
m = cnorm.Moments.of(x, axis=1)
assert_type(m.mean, NDArray[np.float64])
assert_type(m + cnorm.Moments.empty(3), cnorm.Moments)
assert_type(m.var(ddof=1), NDArray[np.float64])
table = rng.standard_normal((20, 3))
scaler = cnorm.StandardScaler(with_std=False).fit(table)
assert_type(scaler, cnorm.StandardScaler)
assert_type(scaler.transform(table), Floats)
assert_type(scaler.mean_, "NDArray[np.float64] | None")
fw, fb = cnorm.fold_batch_norm(np.ones((3, 7)), None, np.zeros(3), np.ones(3))
assert_type(fb, Floats)
cnorm.set_num_threads(None)
assert_type(cnorm.get_num_threads(), int)
assert_type(cnorm.get_include(), str)
