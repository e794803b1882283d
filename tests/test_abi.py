"""The exported C/Cython ABI: the public header, the capsule table of
cnorm.kernels and the committed snapshot tests/abi_snapshot.txt agree.

A change to an exported signature fails here until the snapshot is updated
on purpose (and CNORM_VERSION_* bumped, see docs/design.md); a kernel added
to the header but not exported to Cython (or the reverse) fails too."""
import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cnorm
import cnorm.kernels

SNAPSHOT = Path(__file__).with_name("abi_snapshot.txt")
CC = os.environ.get("CC", "cc")
pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason="no C compiler")


def preprocess(*flags):
    header = Path(cnorm.get_include()) / "cnorm.h"
    return subprocess.run([CC, "-E", *flags, "-I", cnorm.get_include(), str(header)],
                          check=True, capture_output=True, text=True).stdout


def normalized(decl):
    """decl in one spelling: 'const char *f(int n, double *x);' (macro
    expansion leaves other spaces)."""
    decl = re.sub(r"\s*([(),;])\s*", r"\1", " ".join(decl.split()))
    return re.sub(r"\s*\*\s*", " *", decl).replace(",", ", ").replace("( *", "(*")


def header_declarations():
    """{name: 'ret name(params);'} for every cnorm_ function, normalized."""
    text = " ".join(preprocess("-P").split())
    decls = {}
    for stmt in text.split(";"):
        m = re.fullmatch(r"\s*([\w\s\*]+?)\s*\**\s*(cnorm_\w+)\s*\((.*)\)\s*", stmt)
        if m:
            decls[m.group(2)] = normalized(stmt + ";")
    return decls


def type_of(param):
    """'const float *x' -> 'float const *' (Cython's capsule spelling)."""
    param = re.sub(r"\b[A-Za-z_]\w*\s*$", "", param.strip())
    const = re.match(r"const\s+", param)
    base = param[const.end():] if const else param
    stars = base.count("*")
    base = base.replace("*", "").strip()
    return (base + (" const" if const else "") + (" " + "*" * stars if stars else "")).strip()


def signature(decl):
    m = re.fullmatch(r"(.+?)\s*(\**)\s*cnorm_\w+\((.*)\);", decl)
    ret = (m.group(1) + (" " + m.group(2) if m.group(2) else "")).strip()
    params = [] if m.group(3).strip() == "void" else m.group(3).split(",")
    return type_of(ret + " r"), ", ".join(type_of(p) for p in params) or "void"


def capsule_signatures():
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    return {name: get_name(cap).decode() for name, cap in cnorm.kernels.__pyx_capi__.items()}


def test_header_matches_snapshot():
    got = sorted(header_declarations().values())
    want = [normalized(line) for line in SNAPSHOT.read_text().splitlines() if line.strip()]
    assert got == want, (
        "the exported C API changed; if on purpose, regenerate tests/abi_snapshot.txt "
        "and bump CNORM_VERSION_*:\n" + "\n".join(sorted(set(got) ^ set(want))))


def test_capsule_table_matches_header():
    decls = header_declarations()
    capsules = capsule_signatures()
    assert sorted(capsules) == sorted(n.removeprefix("cnorm_") for n in decls)
    for name, decl in decls.items():
        ret, params = signature(decl)
        got = capsules[name.removeprefix("cnorm_")]
        assert got.replace(" ", "") == f"{ret}({params})".replace(" ", ""), (name, got)


def test_version_macros_match_package():
    macros = dict(re.findall(r"#define (CNORM_VERSION_\w+) (\S+)", preprocess("-dM")))
    version = ".".join(macros[f"CNORM_VERSION_{p}"] for p in ("MAJOR", "MINOR", "PATCH"))
    assert version == cnorm.__version__


def test_generated_bindings_are_current():
    """The Cython files generated from include/cnorm_kernels.def match it
    (a stale checkout would export an old table)."""
    root = Path(__file__).resolve().parents[1]
    tools = root / "tools"
    built = (root / "src" / "cnorm" / "_capi.pxd").exists()
    if not (tools / "gen_bindings.py").exists() or not built:
        pytest.skip("not run from a built source checkout")
    sys.path.insert(0, str(tools))
    try:
        import gen_bindings
    finally:
        sys.path.remove(str(tools))
    assert gen_bindings.generate(check=True) == []
