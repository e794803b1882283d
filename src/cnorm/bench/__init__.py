"""The benchmark behind ``python -m cnorm bench`` and benchmarks/.

Kept apart from the kernels and the API: nothing in cnorm imports it.

engine   cases, contenders (cnorm, copy, plain NumPy, PyTorch, ONNX Runtime),
         interleaved timing, the table and its JSON
threads  throughput of cnorm called from several Python threads at once
"""
from cnorm.bench.engine import (
    CONTENDERS,
    PEERS,
    Case,
    bench,
    build_contender,
    cases_for_shapes,
    default_cases,
    make_data,
    parse_shape,
)

__all__ = ["CONTENDERS", "PEERS", "Case", "bench", "build_contender", "cases_for_shapes",
           "default_cases", "make_data", "parse_shape"]
