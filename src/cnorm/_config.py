"""Library-wide settings and build facts: threads, configuration, headers."""
from __future__ import annotations

import os
import platform
import warnings
from collections.abc import Mapping
from typing import Any, SupportsIndex

import numpy as np

from cnorm import _kernels
from cnorm._validate import check_positive_int

__all__ = ["get_include", "get_num_threads", "set_num_threads", "show_config"]

SIMD_PATHS = ("baseline", "avx2", "avx512")


def check_simd_request(environ: Mapping[str, str] = os.environ) -> None:
    """Warn when CNORM_SIMD asks for a path that does not exist (the kernels
    then ignore it and pick the best the CPU supports)."""
    wanted = environ.get("CNORM_SIMD")
    if wanted is not None and wanted not in SIMD_PATHS:
        warnings.warn(f"CNORM_SIMD={wanted!r} is not one of {', '.join(SIMD_PATHS)} "
                      "(lower case); it is ignored", RuntimeWarning, stacklevel=2)


check_simd_request()


def set_num_threads(n: SupportsIndex | None) -> None:
    """Threads the kernels use (a positive int); None restores the default,
    which follows OpenMP's own setting (OMP_NUM_THREADS, threadpoolctl)."""
    _kernels.set_num_threads(0 if n is None else check_positive_int(n, "n", 2**31 - 1))


def get_num_threads() -> int:
    """Threads the kernels use for large inputs (small inputs stay on one)."""
    return _kernels.get_num_threads()


def get_include() -> str:
    """Directory holding cnorm.h, for C/Cython extensions built against cnorm."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")


def config() -> dict[str, Any]:
    """The facts show_config prints, as a dict."""
    from cnorm import __version__

    return {
        "version": __version__,
        "openmp": _kernels.openmp_enabled(),
        "threads": get_num_threads(),
        "simd": _kernels.simd_path(),
        "compiler": _kernels.build_compiler(),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def show_config() -> None:
    """Print version, OpenMP, threads, SIMD path in use and compiler."""
    c = config()
    print(f"cnorm {c['version']}")
    print(f"  OpenMP:   {'yes' if c['openmp'] else 'no (kernels run serially)'}")
    print(f"  threads:  {c['threads']}")
    print(f"  SIMD:     {c['simd']}")
    print(f"  compiler: {c['compiler']}")
    print(f"  numpy:    {c['numpy']}, python {c['python']}")
