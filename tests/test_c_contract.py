"""The C API's error contract, called through the exported function pointers
(the capsules of cnorm.kernels, what a C or Cython caller gets): every
kernel returns CNORM_EINVAL for negative sizes and an unknown activation,
and returns before touching any pointer (all NULL here)."""
import ctypes
import re
import shutil

import pytest
from test_abi import CC, header_declarations

import cnorm.kernels

if shutil.which(CC) is None:   # the declarations come from the preprocessed header
    pytest.skip("no C compiler", allow_module_level=True)

CNORM_EINVAL = -2
CTYPES = {"int64_t": ctypes.c_int64, "int": ctypes.c_int, "double": ctypes.c_double}


def _kernel(name, decl):
    """(ctypes function, [parameter (type, name)]) of an exported kernel."""
    params = re.search(r"\((.*)\)", decl).group(1).split(",")
    parsed = []
    for p in params:
        m = re.fullmatch(r"\s*(.*?)\s*(\w+)\s*", p)
        parsed.append((m.group(1), m.group(2)))
    argtypes = [ctypes.c_void_p if "*" in t else CTYPES[t] for t, _ in parsed]
    capsule = cnorm.kernels.__pyx_capi__[name.removeprefix("cnorm_")]
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    address = get(capsule, get_name(capsule))
    return ctypes.CFUNCTYPE(ctypes.c_int, *argtypes)(address), parsed


KERNELS = {name: decl for name, decl in header_declarations().items()
           if decl.startswith("int ") and re.search(r"_(f32|f64|f16|bf16)\(", decl)}


def _arguments(parsed, negative, activation=0):
    args = []
    for t, n in parsed:
        if "*" in t:
            args.append(None)
        elif t == "int64_t":
            args.append(-1 if n == negative else 4)
        elif n == "activation":
            args.append(activation)
        elif t == "int":
            args.append(1)
        else:
            args.append(1e-5 if n == "eps" else 1.0)
    return args


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_negative_sizes_are_einval(name):
    fn, parsed = _kernel(name, KERNELS[name])
    sizes = [n for t, n in parsed if t == "int64_t"]
    assert sizes, name
    for negative in sizes:
        assert fn(*_arguments(parsed, negative)) == CNORM_EINVAL, (name, negative)


@pytest.mark.parametrize("name", sorted(n for n, d in KERNELS.items() if "activation" in d))
def test_unknown_activation_is_einval(name):
    fn, parsed = _kernel(name, KERNELS[name])
    for bad in (-1, 3, 1 << 20):
        assert fn(*_arguments(parsed, None, activation=bad)) == CNORM_EINVAL, (name, bad)
