"""pytest-benchmark suite: one benchmark group per case and regime, holding
cnorm, the copy reference, NumPy and each installed peer.

Regimes: "warm" repeats each call on its own buffers, so a tensor that fits
in cache stays there for the kernel and the copy alike; "cold" evicts the
caches before every call (cnorm.bench.flush_caches).  Each result's
extra_info holds the bytes a call must move and the GB/s at its median, so
`--benchmark-compare` shows bandwidth beside time.

Not part of the default test run (testpaths = ["tests"]); run it with
    pytest benchmarks/ --benchmark-only [--bench-regime warm|cold|both]
"""
import pytest

from cnorm import bench as _bench


# The case is the outer loop, so each case's inputs are built once.
@pytest.mark.parametrize("contender", _bench.CONTENDERS)
@pytest.mark.parametrize("case", _bench.default_cases(), ids=lambda c: c.name.replace(" ", "-"))
def test_norm(benchmark, case, contender, case_data, bench_threads, bench_regime):
    data = case_data(case)
    fn = _bench.build_contender(contender, case, data, bench_threads)
    if fn is None:
        pytest.skip(f"{contender}: not installed, or no {case.op} for this input")
    benchmark.group = f"{case.name} {bench_regime}"
    benchmark.name = contender
    if bench_regime == "cold":
        benchmark.pedantic(fn, setup=_bench.flush_caches, rounds=15, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)
    moved = case.essential_bytes(data.x.itemsize)
    benchmark.extra_info["bytes"] = moved
    stats = getattr(benchmark, "stats", None)
    if stats is not None:   # None under --benchmark-disable
        benchmark.extra_info["GB/s"] = round(moved / stats.stats.median / 1e9, 2)
