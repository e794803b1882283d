"""Options and fixtures of the pytest-benchmark suite (see README.md here).

The cases and contenders come from cnorm.bench, the engine behind
`python -m cnorm bench`, so both measure exactly the same calls.
"""
import pytest

import cnorm
from cnorm import bench as _bench


def pytest_addoption(parser):
    group = parser.getgroup("cnorm benchmarks")
    group.addoption("--bench-threads", type=int, default=1,
                    help="threads for cnorm and the peers (default: 1)")
    group.addoption("--bench-dtype", choices=("float32", "float64"), default="float32",
                    help="dtype of the inputs (default: float32)")
    group.addoption("--bench-regime", choices=("warm", "cold", "both"), default="both",
                    help="warm: repeated on the same buffers; cold: caches flushed before "
                         "every call (default: both)")


def pytest_generate_tests(metafunc):
    if "bench_regime" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--bench-regime")
        metafunc.parametrize("bench_regime", ["warm", "cold"] if chosen == "both" else [chosen])


@pytest.fixture(scope="session")
def bench_threads(request):
    threads = request.config.getoption("--bench-threads")
    yield threads
    cnorm.set_num_threads(None)


@pytest.fixture(scope="session")
def case_data(request):
    """case -> its inputs.  Tests run case by case, so only the current
    case's arrays are kept (the largest is hundreds of MB)."""
    dtype = request.config.getoption("--bench-dtype")
    current = {}

    def get(case):
        if case not in current:
            current.clear()
            current[case] = _bench.make_data(case, dtype)
        return current[case]

    return get
