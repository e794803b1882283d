"""Benchmark engine behind ``python -m cnorm bench`` and benchmarks/.

Cases are the ops and shapes cnorm is tuned for; contenders are cnorm (the
functional API writing into out=), "copy" (np.copyto of x's bytes: the
physical reference of docs/design.md section 3), a plain NumPy implementation
and the peers that are installed (PyTorch, ONNX Runtime).  The contenders of one
case run interleaved, round-robin in rotating order, and every figure is a
median, so the drifts of a noisy machine hit all contenders alike.
"""
import gc
import importlib
import json
import math
import os
import platform
import statistics
import sys
import textwrap
import time
from dataclasses import dataclass
from functools import cache

import numpy as np

import cnorm
from cnorm._config import config
from cnorm.bench.threads import python_threads_report

EPS = 1e-5
CONTENDERS = ("cnorm", "copy", "numpy", "torch", "onnxruntime")
PEERS = ("numpy", "torch", "onnxruntime")

# Per-case time budget (seconds of measuring, all contenders together); the
# default keeps `python -m cnorm` (2 thread settings, ~50 rows) under a minute.
BUDGET_S = 0.3
QUICK_BUDGET_S = 0.1
MIN_ROUNDS, MAX_ROUNDS = 3, 200
CACHE_FLUSH_BYTES = 256 << 20   # beyond any last-level cache these machines have
# A sample lasts at least this long: µs-sized calls are timed in batches.
SAMPLE_NS = 1_000_000
MAX_CALLS_PER_SAMPLE = 1000
CALIBRATE_NS = 200_000  # long enough that a timer tick or a stray stall is noise


# ---- cases ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One benchmarked call: a cnorm function and the input it gets."""

    op: str  # name of the cnorm function, e.g. "batch_norm_train"
    shape: tuple
    axis: int = 1  # channel axis (batch norm)
    norm_dims: int = 1  # trailing dims normalized (layer and RMS norm)
    groups: int = 1  # group norm
    big: bool = False  # far larger than the L3 cache; left out by --quick

    @property
    def family(self):
        for suffix in ("_backward", "_infer", "_train"):
            if self.op.endswith(suffix):
                return self.op[: -len(suffix)]
        return self.op

    @property
    def backward(self):
        return self.op.endswith("_backward")

    @property
    def norm_shape(self):
        return self.shape[len(self.shape) - self.norm_dims:]

    @property
    def param_shape(self):
        if self.family in ("layer_norm", "rms_norm"):
            return self.norm_shape
        return (self.shape[self.axis if self.family == "batch_norm" else 1],)

    def essential_bytes(self, itemsize):
        """Bytes a call cannot avoid moving, read + written (oneDNN benchdnn's
        GB/s convention): x and y (forwards), x, dy and dx (backwards), x
        alone (moments); the per-channel parameters are negligible."""
        arrays = 1 if self.op == "moments" else 3 if self.backward else 2
        return arrays * math.prod(self.shape) * itemsize

    @property
    def name(self):
        label = f"{self.op} {'x'.join(map(str, self.shape))}"
        if self.family == "batch_norm" and self.axis != 1:
            label += f" axis={self.axis}"
        if self.family in ("layer_norm", "rms_norm") and self.norm_dims != 1:
            label += f" dims={self.norm_dims}"
        if self.family == "group_norm":
            label += f" g={self.groups}"
        return label


def default_cases():
    bn_ops = ("batch_norm_infer", "batch_norm_train", "batch_norm_backward")
    cases = [Case(op, shape) for shape in ((32, 64, 56, 56), (8, 256, 14, 14), (1, 64, 7, 7))
             for op in bn_ops]
    cases += [Case(op, (32, 56, 56, 64), axis=-1) for op in bn_ops[:2]]
    # 2-D (N, C), the same bytes as the channels-last case
    cases += [Case(op, (32 * 56 * 56, 64)) for op in bn_ops[:2]]
    for suffix in ("", "_backward"):
        cases += [
            Case("layer_norm" + suffix, (32, 128, 768)),
            Case("layer_norm" + suffix, (8, 256, 14, 14), norm_dims=3),
            Case("group_norm" + suffix, (32, 64, 56, 56), groups=32),
            Case("instance_norm" + suffix, (8, 64, 56, 56)),
            Case("rms_norm" + suffix, (32, 128, 768)),
        ]
    cases.append(Case("layer_norm", (1, 768)))
    # Per-feature statistics (Moments, StandardScaler.fit) of the 2-D case's bytes.
    cases.append(Case("moments", (32 * 56 * 56, 64)))
    # 154 MB of float32, 4.6 times a 32 MiB L3: every pass streams from DRAM.
    cases.append(Case("batch_norm_train", (48, 64, 112, 112), big=True))
    return cases


def cases_for_shapes(shapes):
    """Every op that accepts each shape: batch norm on axis 1, layer and RMS
    norm over the last dim, group (gcd(C, 32) groups) and instance norm on
    inputs with spatial dims."""
    cases = []
    for shape in shapes:
        ops = ["batch_norm_infer", "layer_norm", "rms_norm"]
        if math.prod(shape) // shape[1] >= 2:
            ops += ["batch_norm_train", "batch_norm_backward"]
        ops += ["layer_norm_backward", "rms_norm_backward"]
        spatial = len(shape) >= 3 and math.prod(shape[2:]) >= 2
        if spatial:
            ops += ["group_norm", "group_norm_backward", "instance_norm",
                    "instance_norm_backward"]
        cases += [Case(op, shape, groups=math.gcd(shape[1], 32) if "group" in op else 1)
                  for op in ops]
    return cases


def parse_shape(text):
    """'32x64x56x56' -> (32, 64, 56, 56)."""
    dims = text.lower().split("x")
    if len(dims) < 2 or not all(d.isdigit() and int(d) > 0 for d in dims):
        raise ValueError(f"a shape is two or more positive dims joined by 'x', e.g. "
                         f"32x64x56x56; got {text!r}")
    shape = tuple(int(d) for d in dims)
    if math.prod(shape) > 2**40:   # 8 TB of float64: beyond any machine's memory
        raise ValueError(f"shape {text!r} has more than 2**40 elements")
    return shape


# ---- data -----------------------------------------------------------------


@dataclass
class CaseData:
    x: np.ndarray
    dy: np.ndarray = None
    weight: np.ndarray = None
    bias: np.ndarray = None
    running_mean: np.ndarray = None
    running_var: np.ndarray = None


def make_data(case, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    data = CaseData(x=rng.standard_normal(case.shape, dtype=dtype))
    if case.backward:
        data.dy = rng.standard_normal(case.shape, dtype=dtype)
    p = case.param_shape
    data.weight = rng.uniform(0.5, 1.5, p).astype(dtype)
    if case.family != "rms_norm":
        data.bias = rng.uniform(-0.5, 0.5, p).astype(dtype)
    if case.family == "batch_norm":
        data.running_mean = rng.uniform(-0.5, 0.5, p).astype(dtype)
        data.running_var = rng.uniform(0.5, 2.0, p).astype(dtype)
    return data


# ---- contenders -----------------------------------------------------------
# Each builder returns a zero-argument callable running the case once, or
# None when the contender is not installed or lacks the op.  Outputs are
# preallocated wherever the contender's API takes them.


def build_contender(name, case, data, threads):
    """A callable that has run once (warm: outputs touched, lazy setup done),
    or None when the contender cannot run the case."""
    builders = {"cnorm": _cnorm, "copy": _copy, "numpy": _numpy, "torch": _torch,
                "onnxruntime": _onnxruntime}
    fn = builders[name](case, data, threads)
    if fn is not None:
        try:
            fn()
        except Exception:  # e.g. NotImplementedError: an op this peer's build lacks
            if name in ("cnorm", "copy", "numpy"):  # our own code: let errors surface
                raise
            return None
    return fn


def _cnorm(case, d, threads):
    cnorm.set_num_threads(threads)
    x, dy, w, b, out = d.x, d.dy, d.weight, d.bias, np.empty_like(d.x)
    if case.op == "moments":
        return lambda: cnorm.Moments.of(x, axis=-1)
    if case.op == "batch_norm_infer":
        return lambda: cnorm.batch_norm_infer(x, d.running_mean, d.running_var, w, b, eps=EPS,
                                              axis=case.axis, out=out)
    shape, groups = case.norm_shape, case.groups
    forwards = {
        "batch_norm": lambda y=None: cnorm.batch_norm_train(x, w, b, eps=EPS, axis=case.axis,
                                                            out=y),
        "layer_norm": lambda y=None: cnorm.layer_norm(x, shape, w, b, eps=EPS, out=y),
        "group_norm": lambda y=None: cnorm.group_norm(x, groups, w, b, eps=EPS, out=y),
        "instance_norm": lambda y=None: cnorm.instance_norm(x, w, b, eps=EPS, out=y),
        "rms_norm": lambda y=None: cnorm.rms_norm(x, shape, w, eps=EPS, out=y),
    }
    forward = forwards[case.family]
    if not case.backward:
        return lambda: forward(out)
    saved = forward()[1:]  # (mean, invstd or rstd); (rstd,) for RMS norm
    backwards = {
        "batch_norm": lambda: cnorm.batch_norm_backward(dy, x, *saved, w, axis=case.axis,
                                                        out=out),
        "layer_norm": lambda: cnorm.layer_norm_backward(dy, x, *saved, shape, w, out=out),
        "group_norm": lambda: cnorm.group_norm_backward(dy, x, *saved, groups, w, out=out),
        "instance_norm": lambda: cnorm.instance_norm_backward(dy, x, *saved, w, out=out),
        "rms_norm": lambda: cnorm.rms_norm_backward(dy, x, *saved, shape, w, out=out),
    }
    return backwards[case.family]


def _copy(case, d, threads):
    dst = np.empty_like(d.x)
    return lambda: np.copyto(dst, d.x)


def _layout(case):
    """x as a NumPy view: (view shape, axes the statistics reduce over,
    shape the per-channel or per-column parameters broadcast as)."""
    s = case.shape
    if case.family == "batch_norm":
        a = case.axis % len(s)
        C = s[a]
        return (math.prod(s[:a]), C, math.prod(s[a + 1:])), (0, 2), (1, C, 1)
    if case.family in ("layer_norm", "rms_norm"):
        K = math.prod(case.norm_shape)
        return (math.prod(s) // K, K), (1,), (1, K)
    # group norm, and instance norm as group norm with one channel per group
    N, C, S = s[0], s[1], math.prod(s[2:])
    G = case.groups if case.family == "group_norm" else C
    return (N, G, C // G, S), (2, 3), (1, G, C // G, 1)


def _numpy(case, d, threads):
    """The op as a NumPy user would vectorize it, in x's dtype, with scratch
    and output buffers allocated once.

    The same formulas as cnorm.reference (see its docstring), but a separate
    implementation on purpose: the reference converts to float64 and
    allocates a fresh array per step, so timing it would measure float64
    conversions and the allocator rather than what NumPy can do in x's dtype.
    tests/test_bench_contenders.py checks it against cnorm.reference."""
    if case.op == "moments":   # per column: (mean, biased var), two passes
        return lambda: (d.x.mean(axis=0), d.x.var(axis=0))
    view, axes, pshape = _layout(case)
    x = d.x.reshape(view)
    w = d.weight.reshape(pshape)
    b = None if d.bias is None else d.bias.reshape(pshape)
    out, tmp = np.empty_like(x), np.empty_like(x)
    center = case.family != "rms_norm"

    if case.op == "batch_norm_infer":
        rm, rv = d.running_mean.reshape(pshape), d.running_var.reshape(pshape)

        def infer():
            scale = w / np.sqrt(rv + EPS)
            np.multiply(x, scale, out=out)
            return np.add(out, b - rm * scale, out=out)

        return infer

    def normalize(xhat):
        """xhat into the given buffer; returns (mean or None, rstd)."""
        mean = x.mean(axis=axes, keepdims=True) if center else None
        centered = np.subtract(x, mean, out=xhat) if center else x
        var = np.square(centered, out=tmp).mean(axis=axes, keepdims=True)
        rstd = 1.0 / np.sqrt(var + EPS)
        np.multiply(centered, rstd, out=xhat)
        return mean, rstd

    if not case.backward:

        def forward():
            normalize(out)
            np.multiply(out, w, out=out)
            if b is not None:
                np.add(out, b, out=out)
            return out

        return forward

    mean, rstd = normalize(out)  # the statistics a forward would have saved
    dy = d.dy.reshape(view)
    param_axes = tuple(i for i, n in enumerate(pshape) if n == 1)
    count = math.prod(view[i] for i in axes)
    xhat, g = np.empty_like(x), out

    def backward():
        np.multiply(np.subtract(x, mean, out=xhat) if center else x, rstd, out=xhat)
        dbias = dy.sum(axis=param_axes, keepdims=True) if center else None
        dweight = np.multiply(dy, xhat, out=tmp).sum(axis=param_axes, keepdims=True)
        # dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), with g = dy * w
        np.multiply(dy, w, out=g)
        if param_axes == axes:  # batch norm: both means follow from dbias and dweight
            mean_g, mean_gx = w * dbias / count, w * dweight / count
        else:
            mean_g = g.mean(axis=axes, keepdims=True) if center else 0.0
            mean_gx = np.multiply(g, xhat, out=tmp).mean(axis=axes, keepdims=True)
        np.subtract(g, np.multiply(xhat, mean_gx, out=tmp), out=g)
        np.subtract(g, mean_g, out=g)
        return np.multiply(g, rstd, out=g), dweight, dbias

    return backward


@cache
def _optional(module):
    """The module, or None when it is not installed (or fails to import)."""
    try:
        return importlib.import_module(module)
    except Exception:  # a broken install counts as absent: its column shows "-"
        return None


def _torch(case, d, threads):
    torch = _optional("torch")
    if torch is None:
        return None
    torch.set_num_threads(threads)
    # Inputs never require grad; disabling autograd once has no_grad()'s
    # effect without its per-call cost, which shows on µs-sized cases.
    torch.set_grad_enabled(False)
    return _torch_op(case, d, torch)


def _manual_rms_norm(x, shape, w, eps):
    """RMS norm for torch < 2.4, which lacks F.rms_norm."""
    dims = tuple(range(-len(shape), 0))
    return x * (x.pow(2).mean(dims, keepdim=True) + eps).rsqrt() * w


def _torch_op(case, d, torch):
    F, aten, mask = torch.nn.functional, torch.ops.aten, [True, True, True]
    x, w = torch.from_numpy(d.x), torch.from_numpy(d.weight)
    b = None if d.bias is None else torch.from_numpy(d.bias)
    dy = None if d.dy is None else torch.from_numpy(d.dy)
    shape, G = list(case.norm_shape), case.groups

    if case.op == "moments":
        return lambda: torch.var_mean(x, dim=0, correction=0)
    if case.family == "batch_norm":
        # torch wants channels in dim 1; moving the axis keeps the memory
        # layout, so axis=-1 runs torch's channels-last kernels
        x = x.movedim(case.axis, 1)
        if case.op == "batch_norm_infer":
            rm, rv = torch.from_numpy(d.running_mean), torch.from_numpy(d.running_var)
            return lambda: F.batch_norm(x, rm, rv, w, b, False, 0.0, EPS)
        if case.op == "batch_norm_train":
            return lambda: F.batch_norm(x, None, None, w, b, True, 0.0, EPS)
        dy = dy.movedim(case.axis, 1)
        _, mean, invstd = aten.native_batch_norm(x, w, b, None, None, True, 0.0, EPS)
        return lambda: aten.native_batch_norm_backward(dy, x, w, None, None, mean, invstd,
                                                       True, EPS, mask)
    if case.family == "layer_norm":
        if not case.backward:
            return lambda: F.layer_norm(x, shape, w, b, EPS)
        _, mean, rstd = aten.native_layer_norm(x, shape, w, b, EPS)
        return lambda: aten.native_layer_norm_backward(dy, x, shape, mean, rstd, w, b, mask)
    if case.family == "rms_norm":
        rms_norm = getattr(F, "rms_norm", _manual_rms_norm)
        if not case.backward:
            return lambda: rms_norm(x, shape, w, EPS)
        # No CPU kernel for aten's fused RMS-norm backward: time autograd's
        # backward of a forward recorded once (retain_graph keeps it).
        xg, wg = x.detach().requires_grad_(), w.detach().requires_grad_()
        with torch.enable_grad():
            y = rms_norm(xg, shape, wg, EPS)
        return lambda: torch.autograd.grad(y, (xg, wg), dy, retain_graph=True)
    N, C, S = case.shape[0], case.shape[1], math.prod(case.shape[2:])
    if case.family == "group_norm":
        if not case.backward:
            return lambda: F.group_norm(x, G, w, b, EPS)
        _, mean, rstd = aten.native_group_norm(x, w, b, N, C, S, G, EPS)
        return lambda: aten.native_group_norm_backward(dy, x, mean, rstd, w, N, C, S, G, mask)
    if not case.backward:
        return lambda: F.instance_norm(x, None, None, w, b, True, 0.0, EPS)
    # F.instance_norm is batch norm on x viewed as (1, N*C, S) with the
    # parameters repeated N times; its backward is that batch norm's backward
    # plus a sum of the parameter gradients over N.
    xr, dyr, wr, br = x.reshape(1, N * C, S), dy.reshape(1, N * C, S), w.repeat(N), b.repeat(N)
    _, mean, invstd = aten.native_batch_norm(xr, wr, br, None, None, True, 0.0, EPS)

    def instance_backward():
        dx, dw, db = aten.native_batch_norm_backward(dyr, xr, wr, None, None, mean, invstd,
                                                     True, EPS, mask)
        return dx, dw.view(N, C).sum(0), db.view(N, C).sum(0)

    return instance_backward


# ONNX operator and opset for each forward op; ONNX has no backward ops, and
# its BatchNormalization takes channels in dim 1 only.
_ONNX_OPS = {
    "batch_norm_infer": ("BatchNormalization", 15),
    "batch_norm_train": ("BatchNormalization", 15),
    "layer_norm": ("LayerNormalization", 17),
    "group_norm": ("GroupNormalization", 21),
    "instance_norm": ("InstanceNormalization", 17),
    "rms_norm": ("RMSNormalization", 23),
}


def _onnx_model(case, d, onnx):
    """(serialized model, {extra output name: preallocated array}), or None."""
    if case.op not in _ONNX_OPS:
        return None
    if case.family == "batch_norm" and case.axis % len(case.shape) != 1:
        return None
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    op_type, opset = _ONNX_OPS[case.op]
    elem = helper.np_dtype_to_tensor_dtype(d.x.dtype)
    params = {"scale": d.weight, "bias": d.bias}
    attrs = {"epsilon": EPS}
    extra = {}
    if case.family == "batch_norm":
        params.update(mean=d.running_mean, var=d.running_var)
    if case.op == "batch_norm_train":
        # training mode must declare its running-statistics outputs
        params.update(mean=np.zeros_like(d.weight), var=np.ones_like(d.weight))
        attrs["training_mode"] = 1
        extra = {"running_mean": np.empty_like(d.weight), "running_var": np.empty_like(d.weight)}
    if case.family in ("layer_norm", "rms_norm"):
        attrs["axis"] = -case.norm_dims
    if case.family == "group_norm":
        attrs["num_groups"] = case.groups
    params = {k: v for k, v in params.items() if v is not None}
    node = helper.make_node(op_type, ["x", *params], ["y", *extra], **attrs)
    outputs = [helper.make_tensor_value_info(n, elem, a.shape)
               for n, a in {"y": d.x, **extra}.items()]
    inputs = [helper.make_tensor_value_info("x", elem, d.x.shape)]
    initializers = [numpy_helper.from_array(v, k) for k, v in params.items()]
    graph = helper.make_graph([node], case.op, inputs, outputs, initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets,
                              ir_version=helper.find_min_ir_version_for(opsets))
    return model.SerializeToString(), extra


def _onnxruntime(case, d, threads):
    ort, onnx = _optional("onnxruntime"), _optional("onnx")
    if ort is None or onnx is None:
        return None
    built = _onnx_model(case, d, onnx)
    if built is None:
        return None
    model, extra = built
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # An idle pool spinning for work would take one of two cores away from
    # the next contender in the round.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    arrays = {"y": np.empty_like(d.x), **extra}
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        binding = session.io_binding()
        inputs = ort.OrtValue.ortvalue_from_numpy(d.x)
        binding.bind_ortvalue_input("x", inputs)
        outputs = [ort.OrtValue.ortvalue_from_numpy(a) for a in arrays.values()]
        for name, value in zip(arrays, outputs):
            binding.bind_ortvalue_output(name, value)
    except Exception:  # ORT raises its own error types for unsupported ops and dtypes
        return None

    def run_bound(bound=(inputs, outputs)):  # bound by address: keep the buffers alive
        session.run_with_iobinding(binding)

    return run_bound


# ---- timing ---------------------------------------------------------------


REGIMES = {
    "warm": "each contender repeated on its own buffers: in-cache tensors stay in cache",
    "cold": f"caches flushed ({CACHE_FLUSH_BYTES >> 20} MB written) before every timed call",
}


@cache
def _flush_buffer():
    return np.empty(CACHE_FLUSH_BYTES, np.uint8)


def flush_caches():
    """Evict the data caches: write more bytes than any last-level cache."""
    _flush_buffer().fill(1)


def measure(fns, budget_s, rounds=None, regime="warm"):
    """Time the callables in fns (name -> fn) interleaved: each round runs
    every one once, in an order rotating by one per round.  warm: samples of
    many calls where calls are short; cold: one call per sample, after
    flush_caches (not timed).  Returns (name -> list of ns per call, one per
    round; name -> calls per sample)."""
    names = list(fns)
    deadline = time.perf_counter_ns() + int(budget_s * 1e9)
    samples = {n: [] for n in names}
    gc_enabled = gc.isenabled()
    gc.disable()  # a collection inside a sample would land on one contender only
    try:
        if regime == "cold":
            calls = dict.fromkeys(names, 1)
        else:
            # A first round sizes the batches; it counts as a round when every
            # contender turns out unbatched (then each ran exactly one call).
            for name in names:
                samples[name].append(_ns_per_call(fns[name]))
            calls = {n: int(min(MAX_CALLS_PER_SAMPLE, max(1, SAMPLE_NS // samples[n][0])))
                     for n in names}
            if max(calls.values()) > 1:
                samples = {n: [] for n in names}
        done = len(samples[names[0]])
        before = flush_caches if regime == "cold" else None
        while _more_rounds(done, rounds, deadline):
            k = done % len(names)
            _round(fns, names[k:] + names[:k], calls, samples, before)
            done += 1
    finally:
        if gc_enabled:
            gc.enable()
    return samples, calls


def _ns_per_call(fn):
    """Calls fn until CALIBRATE_NS have passed (once, for a slow fn)."""
    n, t0 = 0, time.perf_counter_ns()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter_ns() - t0
        if elapsed >= CALIBRATE_NS:
            return elapsed / n


def _round(fns, order, calls, samples, before=None):
    for name in order:
        fn, n = fns[name], calls[name]
        if before is not None:
            before()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        samples[name].append((time.perf_counter_ns() - t0) / n)


def _more_rounds(done, rounds, deadline):
    """A fixed count when given; else until the budget is spent, checked on
    the clock rather than predicted, since calls slow down on a loaded machine."""
    if rounds:
        return done < rounds
    return done < MIN_ROUNDS or (done < MAX_ROUNDS and time.perf_counter_ns() < deadline)


def median_ratio(numerator, denominator):
    """Median of per-round ratios: robust to drifts that span whole rounds."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


# ---- running --------------------------------------------------------------


@dataclass
class Result:
    case: Case
    threads: int
    dtype: str
    median_us: dict  # every contender -> median µs per call; None where absent
    cnorm_per_copy: float  # median of per-round cnorm/copy
    speedup: dict  # peer -> median of per-round peer/cnorm; None where absent
    rounds: int
    calls: dict  # contender -> calls per timed sample
    cnorm_gbps: float  # essential bytes (Case.essential_bytes) per second of cnorm's median
    regime: str = "warm"  # REGIMES

    def as_json(self):
        c = self.case
        return {
            "case": c.name, "op": c.op, "shape": list(c.shape), "axis": c.axis,
            "norm_dims": c.norm_dims, "groups": c.groups, "dtype": self.dtype,
            "threads": self.threads, "rounds": self.rounds, "calls_per_sample": self.calls,
            "median_us": self.median_us, "cnorm_per_copy": self.cnorm_per_copy,
            "speedup_vs_peer": self.speedup, "cnorm_gb_per_s": self.cnorm_gbps,
            "regime": self.regime,
        }


def run(cases, threads_list, dtype=np.float32, budget_s=BUDGET_S, rounds=None,
        on_start=None, regime="warm"):
    """Yield one Result per (case, threads), in that order, measured in
    `regime` (REGIMES); on_start(case, threads, index, total) is called
    before each is measured."""
    dtype = np.dtype(dtype)
    total = len(cases) * len(threads_list)
    # _torch sets torch's threads and turns autograd off for timing: both
    # are given back, so a caller's torch session is as it was.
    torch = sys.modules.get("torch")
    torch_before = (torch.is_grad_enabled(), torch.get_num_threads()) if torch else None
    try:
        for i, case in enumerate(cases):
            data = make_data(case, dtype)
            for j, threads in enumerate(threads_list):
                if on_start is not None:
                    on_start(case, threads, i * len(threads_list) + j, total)
                built = {n: build_contender(n, case, data, threads) for n in CONTENDERS}
                samples, calls = measure({n: fn for n, fn in built.items() if fn is not None},
                                         budget_s, rounds, regime)
                base = samples["cnorm"]
                seconds = statistics.median(base) / 1e9
                yield Result(
                    case, threads, dtype.name,
                    {n: statistics.median(samples[n]) / 1e3 if n in samples else None
                     for n in CONTENDERS},
                    median_ratio(base, samples["copy"]),
                    {p: median_ratio(samples[p], base) if p in samples else None for p in PEERS},
                    len(base), calls, case.essential_bytes(dtype.itemsize) / seconds / 1e9,
                    regime,
                )
    finally:
        cnorm.set_num_threads(None)
        if torch_before is not None:
            torch.set_grad_enabled(torch_before[0])
            torch.set_num_threads(torch_before[1])
        elif "torch" in sys.modules:   # imported by the run: its defaults
            sys.modules["torch"].set_grad_enabled(True)


# ---- environment and output -----------------------------------------------


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module):
    m = _optional(module)
    return None if m is None else m.__version__


def environment():
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    watched = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    return {
        "cnorm": config(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "load_average_1min": load,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "environ": {k: v for k, v in sorted(os.environ.items())
                    if k.startswith("MALLOC_") or k in watched},
    }


def format_environment(env):
    c = env["cnorm"]
    lines = [
        f"cnorm {c['version']}: OpenMP {'yes' if c['openmp'] else 'no'}, SIMD {c['simd']}, "
        f"default threads {c['threads']}, compiler {c['compiler']}",
        f"CPU: {env['cpu']} ({env['usable_cpus'] or env['cpu_count']} usable of "
        f"{env['cpu_count']}, load average {_fmt_load(env)}), {env['platform']}",
        f"python {env['python']}, numpy {env['numpy']}, torch {env['torch'] or '-'}, "
        f"onnxruntime {env['onnxruntime'] or '-'}",
        "environment: " + (" ".join(f"{k}={v}" for k, v in env["environ"].items())
                           or "no MALLOC_*/OMP_* settings"),
    ]
    return "\n".join(textwrap.fill(line, 100, subsequent_indent="  ", break_on_hyphens=False)
                     for line in lines)


def _fmt_load(env):
    load = env["load_average_1min"]
    return "unknown" if load is None else f"{load:.2f}"


_NAME_WIDTH = 38   # the longest default case name; a row fits 100 columns
_PEER_LABELS = {"numpy": "numpy", "torch": "torch", "onnxruntime": "onnxrt"}


def table_header():
    peers = "".join(f" {_PEER_LABELS[p] + ' x':>8}" for p in PEERS)
    return (f"{'case':<{_NAME_WIDTH}} {'thr':>3} {'cnorm µs':>9} {'copy µs':>8} "
            f"{'/copy':>5} {'GB/s':>5}{peers}")


def _fmt_us(us):
    return f"{us:.0f}" if us >= 1000 else f"{us:.1f}"


def table_row(r):
    row = (f"{r.case.name:<{_NAME_WIDTH}} {r.threads:>3} {_fmt_us(r.median_us['cnorm']):>9} "
           f"{_fmt_us(r.median_us['copy']):>8} {r.cnorm_per_copy:>5.2f} {r.cnorm_gbps:>5.1f}")
    for p in PEERS:
        row += f" {'-':>8}" if r.median_us[p] is None else f" {r.speedup[p]:>7.1f}x"
    return row.rstrip()


def notes(env):
    """The table's footnotes, as paragraphs."""
    paragraphs = [
        "Times are medians in µs per call; calls of a few µs are timed in batches of many "
        "calls per sample.  The contenders of a case run interleaved (each round runs every "
        "one once, in rotating order), and ratios are medians of per-round ratios.",
        "/copy: cnorm's time over np.copyto of x's bytes.  Ideal (docs/design.md section 3): "
        "1.0 for inference and row-norm forwards, 1.0-1.5 for training forwards, 1.5-2.5 for "
        "backwards.",
        "GB/s: the bytes a call must read and write (x and y; x, dy and dx in a backward) "
        "per second of cnorm's median.",
        "x after a peer: peer time / cnorm time (4.0x: cnorm is 4 times faster); '-': not "
        "installed, or the op is not supported.  The peers' times are in --json.  numpy and "
        "copy are single-threaded in every row.",
    ]
    cpus = env["usable_cpus"] or env["cpu_count"] or 1
    if cpus <= 2:
        paragraphs.append("With 2 or fewer CPUs timings are noisy: rerun, or raise --repeat, "
                          "before trusting small differences.")
    load = env["load_average_1min"]
    if load is not None and load > 0.5:
        paragraphs.append(f"Load average {load:.1f} on {cpus} CPUs: other processes share the "
                          "cores.  Multi-thread rows suffer most: a descheduled thread stalls "
                          "its whole team.")
    if not any(k.startswith("MALLOC_") for k in env["environ"]):
        paragraphs.append("torch allocates its outputs on every call; for allocator-fair peer "
                          "numbers see the MALLOC_* settings in benchmarks/README.md.")
    return paragraphs


def format_notes(paragraphs):
    return "\n".join(textwrap.fill(p, 98, initial_indent="- ", subsequent_indent="  ")
                     for p in paragraphs)


def _progress(stream):
    """on_start callback of run(): '[3/26] case, threads' on the terminal's
    last line while a row is measured (nothing when output is not a
    terminal: there the rows themselves show the progress)."""
    err = sys.stderr
    if not (err.isatty() and getattr(stream, "isatty", lambda: False)()):
        return None

    def show(case, threads, index, total):
        err.write(f"\r\033[K[{index + 1}/{total}] {case.name}, {threads} thread(s)\r")
        err.flush()

    return show


def write_json(path, results, env, settings):
    doc = {"environment": env, "settings": settings, "notes": notes(env),
           "results": [r.as_json() for r in results]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def bench(cases, threads_list, dtype="float32", quick=False, rounds=None, json_path=None,
          stream=None, regimes=("warm",)):
    """Run the cases in each regime and print a table per regime as rows
    complete (to stream, default the sys.stdout of the call); returns the
    results."""
    stream = sys.stdout if stream is None else stream
    if quick:
        cases = [c for c in cases if not c.big]
    env = environment()
    print(format_environment(env), file=stream)
    budget = QUICK_BUDGET_S if quick else BUDGET_S
    results = []
    for regime in regimes:
        print(file=stream)
        if len(regimes) > 1 or regime != "warm":
            print(f"{regime}: {REGIMES[regime]}", file=stream)
        print(table_header(), file=stream, flush=True)
        for result in run(cases, threads_list, dtype, budget, rounds, _progress(stream),
                          regime):
            results.append(result)
            print(table_row(result), file=stream, flush=True)
    print(file=stream)
    if not quick:
        print("\n".join(python_threads_report()), file=stream)
        print(file=stream)
    print(format_notes(notes(env)), file=stream)
    if json_path:
        settings = {"threads": list(threads_list), "dtype": dtype, "quick": quick,
                    "rounds": rounds, "budget_s": budget, "regimes": list(regimes)}
        write_json(json_path, results, env, settings)
        print(f"wrote {json_path}", file=stream)
    return results
