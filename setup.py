"""Build of cnorm's C kernels and Cython layer.

OpenMP is found by compiling a probe with the real compiler; without it the
kernels build serially.  Environment overrides:
  CNORM_OPENMP=0|1     force OpenMP off / on (on fails loudly if it cannot build)
  CNORM_SANITIZE=1     AddressSanitizer + UndefinedBehaviorSanitizer build
No -march=native: SIMD paths are chosen at run time.  The Cython
declarations and exports are generated first from include/cnorm_kernels.def
(tools/gen_bindings.py).
"""
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent.resolve()
PKG = Path("src") / "cnorm"
C_SOURCES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / PKG / "_csrc").glob("*.c"))
# Every .c includes some of these: an edited header must rebuild the kernels.
C_HEADERS = sorted(
    str(p.relative_to(ROOT))
    for p in [*(ROOT / PKG / "_csrc").glob("*.h"), *(ROOT / "include").glob("cnorm*")]
)
OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
    """
)


def ship_public_header():
    """The public header and its kernel list live in include/; the package
    carries a copy."""
    target = ROOT / PKG / "include"
    target.mkdir(exist_ok=True)
    for name in ("cnorm.h", "cnorm_kernels.def"):
        shutil.copy2(ROOT / "include" / name, target / name)


def openmp_flags(compiler):
    """(compile_args, link_args) for OpenMP, or None when it does not build."""
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    flags = ["-fopenmp"]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags)
        except Exception:  # any compile or link failure means: no OpenMP
            return None
    return flags, flags


class BuildExt(build_ext):
    def build_extensions(self):
        wanted = os.environ.get("CNORM_OPENMP", "").strip()
        flags = None if wanted == "0" else openmp_flags(self.compiler)
        if wanted == "1" and flags is None:
            sys.exit("CNORM_OPENMP=1 but the compiler cannot build OpenMP code")
        print(f"cnorm: building {'with' if flags else 'without'} OpenMP")
        sanitize = os.environ.get("CNORM_SANITIZE", "") == "1"
        for ext in self.extensions:
            if self.compiler.compiler_type != "msvc":
                ext.extra_compile_args += ["-O3"]
            if flags:
                ext.extra_compile_args += flags[0]
                ext.extra_link_args += flags[1]
            if sys.platform.startswith("linux") and not sanitize:
                ext.extra_link_args += ["-Wl,--strip-debug"]   # names stay (perf, objdump)
            if sanitize:
                san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                       "-fno-omit-frame-pointer", "-g"]
                ext.extra_compile_args += san
                ext.extra_link_args += san
            # show_config() reports the flags cnorm added (config.c); a new
            # list, as the extensions share their macro list
            added = " ".join(ext.extra_compile_args).replace('"', "")
            ext.define_macros = [*ext.define_macros, ("CNORM_BUILD_FLAGS", f'"{added}"')]
        super().build_extensions()


ship_public_header()
sys.path.insert(0, str(ROOT / "tools"))
import gen_bindings  # noqa: E402  (tools/ is not a package)

gen_bindings.generate()
include_dirs = ["include", str(PKG / "_csrc"), numpy.get_include()]
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
extensions = [
    Extension(
        "cnorm.kernels",
        [str(PKG / "kernels.pyx"), *C_SOURCES],
        depends=C_HEADERS,
        include_dirs=include_dirs,
        define_macros=macros,
    ),
    Extension(
        "cnorm._kernels",
        [str(PKG / "_kernels.pyx")],
        include_dirs=include_dirs,
        define_macros=macros,
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False},
    ),
    cmdclass={"build_ext": BuildExt},
)
