"""Compile a C file against the installed cnorm and link it with the kernels.

    python examples/c/build.py [SOURCE] [-o OUTPUT] [--print]

SOURCE defaults to cnorm_example.c beside this script.  The command printed
(and run, unless --print) uses:

  -I cnorm.get_include()        cnorm.h and cnorm_kernels.def
  -L<dir> -l:kernels*.so        the extension module cnorm/kernels*.so, which
                                holds the kernels: they are exported C symbols
                                (nm -D shows the cnorm_* functions), so the
                                program links against the module file itself
  -Wl,-rpath,<dir>              so the program finds it at run time
  -lpython3.x (+ its -L, rpath) the module's Cython glue refers to CPython
                                symbols, which the dynamic loader must resolve
                                when it loads the module; the program never
                                calls them and never starts an interpreter
  -lm

Linux (ELF) only.  The compiler is $CC, or cc.
"""
import argparse
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import cnorm
import cnorm.kernels

HERE = Path(__file__).resolve().parent
NO_LIBPYTHON = 3  # exit status when this Python has no libpython to link against


def libpython_flags():
    """Linker flags for this interpreter's libpython (what python3-config
    --embed --ldflags prints), or None when there is no library file."""
    var = sysconfig.get_config_var
    name = f"python{var('LDVERSION')}"
    if var("Py_ENABLE_SHARED"):
        libdir = var("LIBDIR")
        if not (Path(libdir) / var("LDLIBRARY")).exists():
            return None
        return [f"-L{libdir}", f"-l{name}", f"-Wl,-rpath,{libdir}"]
    libpl = var("LIBPL")  # a static interpreter: link its archive, with its own libraries
    if not libpl or not (Path(libpl) / var("LIBRARY")).exists():
        return None
    return [f"-L{libpl}", f"-l{name}", *(var("LIBS") or "").split(),
            *(var("SYSLIBS") or "").split()]


def command(source, output):
    kernels = Path(cnorm.kernels.__file__).resolve()
    python = libpython_flags()
    if python is None:
        return None
    cc = shlex.split(os.environ.get("CC", "cc"))
    return [*cc, "-std=c99", "-O2", "-Wall", str(source), "-I", cnorm.get_include(),
            f"-L{kernels.parent}", f"-l:{kernels.name}", f"-Wl,-rpath,{kernels.parent}",
            *python, "-lm", "-o", str(output)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(HERE / "cnorm_example.c"))
    parser.add_argument("-o", "--output", default="cnorm_example")
    parser.add_argument("--print", action="store_true", help="print the command, run nothing")
    args = parser.parse_args(argv)
    cmd = command(args.source, args.output)
    if cmd is None:
        print(f"{sys.executable} has no libpython library file to link against "
              f"(LIBDIR {sysconfig.get_config_var('LIBDIR')}); cnorm's kernels live in a Python "
              "extension module, which needs it", file=sys.stderr)
        return NO_LIBPYTHON
    print(shlex.join(cmd))
    if args.print:
        return 0
    return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
