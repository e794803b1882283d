"""The benchmark behind ``python -m cnorm bench`` and benchmarks/.

Kept apart from the kernels and the API: nothing in cnorm imports it.

engine   cases, contenders (cnorm, copy, plain NumPy, PyTorch, ONNX Runtime),
         interleaved timing in the warm and cold regimes, the table and its JSON
plot     the --plot chart (matplotlib)
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
    flush_caches,
    make_data,
    parse_shape,
)

__all__ = ["CONTENDERS", "PEERS", "Case", "bench", "build_contender", "cases_for_shapes",
           "default_cases", "flush_caches", "make_data", "parse_shape"]
