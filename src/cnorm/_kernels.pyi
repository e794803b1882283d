# Stub of the compiled module cnorm._kernels (src/cnorm/_kernels.pyx): the
# private Python entry points to the C kernels.  Arrays are what the .pyx
# checks (C-contiguous, aligned, native byte order); sizes are int64_t,
# eps and count double, flags bint.  Checked against the built module by
# `python -m mypy.stubtest cnorm._kernels` (.ci/typing).
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import NDArray

_Array = NDArray[Any]
_F64 = NDArray[np.float64]
_Floats = NDArray[np.floating[Any]]

# ---- runtime switches and build facts ----------------------------------------

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def openmp_enabled() -> bool: ...
def set_serial_only(on: bool) -> None: ...
def build_compiler() -> str: ...
def simd_path() -> str: ...
def same_buffer(a: _Array, b: _Array) -> bool: ...

# |mean| * invstd above which batch-norm backwards recover the saved mean's
# rounding from x (functional.channel_mean_residual).
OFF_CENTRE: float

# ---- checked kernel calls (write into the arrays they are given) -------------

def bn_forward_train(
    x: _Array,
    N: int,
    C: int,
    S: int,
    weight: _Array | None,
    bias: _Array | None,
    eps: float,
    y: _Array,
    mean: _F64,
    var: _F64,
    renorm: tuple[_F64, _F64, float, float, _F64, _F64] | None = None,
    activation: int = 0,
) -> None: ...
def bn_forward_train_low(
    x: NDArray[np.uint16],
    N: int,
    C: int,
    S: int,
    weight: NDArray[np.float32] | None,
    bias: NDArray[np.float32] | None,
    eps: float,
    y: NDArray[np.uint16],
    mean: _F64,
    var: _F64,
    renorm: tuple[_F64, _F64, float, float, _F64, _F64] | None,
    bfloat16: bool,
    activation: int = 0,
) -> None: ...
def bn_backward_low(
    dy: NDArray[np.uint16],
    x: NDArray[np.uint16],
    N: int,
    C: int,
    S: int,
    mean: NDArray[np.float32],
    invstd: NDArray[np.float32],
    weight: NDArray[np.float32] | None,
    dx: NDArray[np.uint16] | None,
    sum_dy: _F64,
    sum_dy_xhat: _F64,
    bfloat16: bool,
) -> None: ...
def row_backward_low(
    dy: NDArray[np.uint16],
    x: NDArray[np.uint16],
    M: int,
    K: int,
    G: int,
    S: int,
    center: bool,
    mean: NDArray[np.float32] | None,
    rstd: NDArray[np.float32],
    weight: NDArray[np.float32] | None,
    dx: NDArray[np.uint16],
    dweight: _F64 | None,
    dbias: _F64 | None,
    bfloat16: bool,
) -> None: ...
def low_to_float32(src: NDArray[np.uint16], dst: NDArray[np.float32], bfloat16: bool) -> None: ...
def float32_to_low(src: NDArray[np.float32], dst: NDArray[np.uint16], bfloat16: bool) -> None: ...
def row_forward_low(
    x: NDArray[np.uint16],
    M: int,
    K: int,
    G: int,
    S: int,
    center: bool,
    eps: float,
    weight: NDArray[np.float32] | None,
    bias: NDArray[np.float32] | None,
    y: NDArray[np.uint16],
    mean: NDArray[np.float32] | None,
    rstd: NDArray[np.float32],
    bfloat16: bool,
    activation: int = 0,
) -> None: ...
def bn_forward_infer_low(
    x: NDArray[np.uint16],
    N: int,
    C: int,
    S: int,
    running_mean: NDArray[np.float32],
    running_var: NDArray[np.float32],
    weight: NDArray[np.float32] | None,
    bias: NDArray[np.float32] | None,
    eps: float,
    y: NDArray[np.uint16],
    bfloat16: bool,
    activation: int = 0,
) -> None: ...
def channel_moments(x: _Array, N: int, C: int, S: int, mean: _F64, m2: _F64) -> None: ...
def channel_standardize(
    x: _Array,
    N: int,
    C: int,
    S: int,
    center: _Array,
    scale: _Array,
    shift: _Array,
    y: _Array,
    activation: int = 0,
) -> None: ...
def bn_forward_infer(
    x: _Array,
    N: int,
    C: int,
    S: int,
    running_mean: _Array,
    running_var: _Array,
    weight: _Array | None,
    bias: _Array | None,
    eps: float,
    y: _Array,
    activation: int = 0,
) -> None: ...
def bn_backward(
    dy: _Array,
    x: _Array,
    N: int,
    C: int,
    S: int,
    mean: _Array,
    invstd: _Array,
    weight: _Array | None,
    dx: _Array | None,
    sum_dy: _F64,
    sum_dy_xhat: _F64,
) -> None: ...
def bn_backward_dx(
    dy: _Array,
    x: _Array,
    N: int,
    C: int,
    S: int,
    mean: _Array,
    invstd: _Array,
    weight: _Array | None,
    sum_dy: _F64,
    sum_dy_xhat: _F64,
    count: float,
    dx: _Array,
) -> None: ...
def row_forward(
    x: _Array,
    M: int,
    K: int,
    G: int,
    S: int,
    center: bool,
    eps: float,
    weight: _Array | None,
    bias: _Array | None,
    y: _Array,
    mean: _Array | None,
    rstd: _Array,
    activation: int = 0,
) -> None: ...
def row_add_forward(
    x: _Array,
    residual: _Array,
    M: int,
    K: int,
    center: bool,
    eps: float,
    weight: _Array | None,
    bias: _Array | None,
    y: _Array,
    sum_out: _Array,
    mean: _Array | None,
    rstd: _Array,
) -> None: ...
def row_backward(
    dy: _Array,
    x: _Array,
    M: int,
    K: int,
    G: int,
    S: int,
    center: bool,
    mean: _Array | None,
    rstd: _Array,
    weight: _Array | None,
    dx: _Array,
    dweight: _F64 | None,
    dbias: _F64 | None,
) -> None: ...

# ---- lean entry points: any arguments, None unless the common case applies ---

def bn_infer_fast(
    x: object,
    running_mean: object,
    running_var: object,
    weight: object,
    bias: object,
    eps: object,
    axis: object,
    out: object,
) -> _Floats | None: ...
@overload
def bn_train_fast(
    x: object,
    weight: object,
    bias: object,
    eps: object,
    axis: object,
    out: object,
    activation: int = 0,
    moments: Literal[False] = False,
) -> tuple[_Floats, _Floats, _Floats] | None: ...
@overload
def bn_train_fast(
    x: object,
    weight: object,
    bias: object,
    eps: object,
    axis: object,
    out: object,
    activation: int,
    moments: Literal[True],
) -> tuple[_Floats, _Floats, _Floats, _F64, _F64] | None: ...
def bn_backward_fast(
    dy: object,
    x: object,
    mean: object,
    invstd: object,
    weight: object,
    bias: object,
    axis: object,
    out: object,
) -> tuple[_Floats, _Floats | None, _Floats] | None: ...
@overload
def row_norm_fast(
    x: object,
    normalized_shape: object,
    weight: object,
    bias: object,
    eps: object,
    out: object,
    center: Literal[True] = True,
    activation: int = 0,
) -> tuple[_Floats, _Floats, _Floats] | None: ...
@overload
def row_norm_fast(
    x: object,
    normalized_shape: object,
    weight: object,
    bias: object,
    eps: object,
    out: object,
    center: Literal[False],
    activation: int = 0,
) -> tuple[_Floats, None, _Floats] | None: ...
@overload
def row_backward_fast(
    dy: object,
    x: object,
    mean: object,
    rstd: object,
    normalized_shape: object,
    weight: object,
    bias: object,
    out: object,
    center: Literal[True] = True,
) -> tuple[_Floats, _Floats | None, _Floats] | None: ...
@overload
def row_backward_fast(
    dy: object,
    x: object,
    mean: object,
    rstd: object,
    normalized_shape: object,
    weight: object,
    bias: object,
    out: object,
    center: Literal[False],
) -> tuple[_Floats, _Floats | None, None] | None: ...

# ---- running statistics ------------------------------------------------------

def running_average(
    running_mean: object,
    running_var: object,
    mean: object,
    var: object,
    f: object,
    var_scale: float,
) -> tuple[_F64, _F64] | None: ...
