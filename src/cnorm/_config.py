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
    """Set the number of threads the kernels use.

    The setting is process-wide.  Results are bit-identical for any thread
    count; small inputs stay on the calling thread whatever the setting.

    Parameters
    ----------
    n : int or None
        A positive number of threads, used as given; None restores the
        default, which follows OpenMP's own setting (``OMP_NUM_THREADS``,
        threadpoolctl) and, on Linux, uses no more threads than the CPUs
        other processes leave free.

    Raises
    ------
    TypeError
        If `n` is neither None nor an integer.
    ValueError
        If `n` is < 1 or >= 2**31.

    See Also
    --------
    get_num_threads : The current setting.

    Notes
    -----
    Without OpenMP (see `show_config`), and in a process forked from one
    that loaded cnorm, the kernels run on one thread whatever the setting.

    Examples
    --------
    >>> cnorm.set_num_threads(1)
    >>> cnorm.get_num_threads()
    1
    >>> cnorm.set_num_threads(None)   # restore the default (OpenMP's setting)
    >>> cnorm.get_num_threads() >= 1
    True
    """
    _kernels.set_num_threads(0 if n is None else check_positive_int(n, "n", 2**31 - 1))


def get_num_threads() -> int:
    """Get the number of threads the kernels use for large inputs.

    Small inputs stay on the calling thread.  With the default setting this
    is OpenMP's maximum (``OMP_NUM_THREADS``, threadpoolctl); a kernel may
    then use fewer, on Linux, when other processes keep CPUs busy.

    Returns
    -------
    int
        The value given to `set_num_threads`, else OpenMP's maximum number
        of threads; 1 when cnorm was built without OpenMP or runs in a
        process forked from one that loaded it.

    See Also
    --------
    set_num_threads : Change it.

    Examples
    --------
    >>> n = cnorm.get_num_threads()
    >>> n >= 1
    True
    """
    return _kernels.get_num_threads()


def get_include() -> str:
    """Get the directory holding ``cnorm.h``, for extensions built against cnorm.

    Pass it as an include directory to C or Cython extensions that call the
    kernels; Cython code can ``cimport`` them from ``cnorm.kernels``.

    Returns
    -------
    str
        Absolute path of the ``include`` directory of the installed package.

    Examples
    --------
    >>> import os
    >>> os.path.isfile(os.path.join(cnorm.get_include(), "cnorm.h"))
    True
    """
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
    """Print cnorm's version and build and run-time configuration.

    The lines give the version, whether the kernels were built with OpenMP,
    the thread count (`get_num_threads`), the SIMD path in use (``avx512``,
    ``avx2`` or ``baseline``; the environment variable ``CNORM_SIMD`` may
    force a lower one), the compiler and flags that built the kernels, and
    the NumPy and Python versions.

    Examples
    --------
    >>> cnorm.show_config()
    cnorm ...
      OpenMP:   ...
      threads:  ...
      SIMD:     ...
      compiler: ...
      numpy:    ..., python ...
    """
    c = config()
    print(f"cnorm {c['version']}")
    print(f"  OpenMP:   {'yes' if c['openmp'] else 'no (kernels run serially)'}")
    print(f"  threads:  {c['threads']}")
    print(f"  SIMD:     {c['simd']}")
    print(f"  compiler: {c['compiler']}")
    print(f"  numpy:    {c['numpy']}, python {c['python']}")
