"""pytest-benchmark suite: one benchmark group per case, holding cnorm, the
copy reference, NumPy and each installed peer.

Not part of the default test run (testpaths = ["tests"]); run it with
    pytest benchmarks/ --benchmark-only
"""
import pytest

from cnorm import bench as _bench


# The case is the outer loop, so each case's inputs are built once.
@pytest.mark.parametrize("contender", _bench.CONTENDERS)
@pytest.mark.parametrize("case", _bench.default_cases(), ids=lambda c: c.name.replace(" ", "-"))
def test_norm(benchmark, case, contender, case_data, bench_threads):
    fn = _bench.build_contender(contender, case, case_data(case), bench_threads)
    if fn is None:
        pytest.skip(f"{contender}: not installed, or no {case.op} for this input")
    benchmark.group = case.name
    benchmark.name = contender
    benchmark(fn)
