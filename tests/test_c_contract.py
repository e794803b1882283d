"""The C API's error contract, called through the exported function pointers
(the capsules of cnorm.kernels, what a C or Cython caller gets): every
kernel returns CNORM_EINVAL for negative sizes, an unknown activation and a
NULL required pointer, before touching any pointer."""
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


# Pointers the header says may be NULL, per kernel (by name without prefix
# and element suffix); every other pointer is required.
OPTIONAL_POINTERS = {
    "channel_moments": set(),
    "channel_affine": set(),
    "channel_standardize": {"center"},
    "bn_forward_train": {"weight", "bias", "renorm"},
    "bn_forward_infer": {"weight", "bias"},
    "bn_backward": {"weight", "dx"},
    "bn_backward_dx": {"weight"},
    "row_forward": {"weight", "bias", "mean", "rstd"},
    "row_add_forward": {"weight", "bias", "mean", "rstd"},
    "row_backward": {"weight", "dweight", "dbias"},   # center = 1: mean required
}


def _base(name):
    return re.sub(r"^cnorm_|_(f32|f64|f16|bf16)$", "", name)


def _valid_call(name, null=None, null_renorm_field=None):
    """fn's result with sizes 4 (K = S = 4), every pointer a zeroed buffer
    large enough (renorm a struct of such) except `null`, which is NULL (and
    renorm's pointer field of index null_renorm_field)."""
    fn, parsed = _kernel(name, KERNELS[name])
    keep = []

    def buffer():
        b = (ctypes.c_double * 256)()   # 2 KB: every array here has <= 64 elements
        keep.append(b)
        return ctypes.addressof(b)

    args = []
    for t, n in parsed:
        if "*" not in t:
            args.append(4 if t == "int64_t" else 0 if n == "activation" else
                        1 if t == "int" else 1e-5 if n == "eps" else 1.0)
        elif n == null:
            args.append(None)
        elif n == "renorm":   # {running_mean, running_var, rmax, dmax, r, d}
            fields = (ctypes.c_void_p * 6)(buffer(), buffer(), None, None, buffer(), buffer())
            struct = (ctypes.c_double * 6).from_buffer(fields)
            struct[2] = struct[3] = 3.0
            if null_renorm_field is not None:
                fields[null_renorm_field] = None
            keep.append(fields)
            args.append(ctypes.addressof(fields))
        else:
            args.append(buffer())
    return fn(*args)


def _pointers(name):
    return [n for t, n in _kernel(name, KERNELS[name])[1] if "*" in t]


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_required_pointers_are_einval_when_null(name):
    optional = OPTIONAL_POINTERS[_base(name)]
    assert _valid_call(name) == 0, name   # the control: all pointers given
    for pointer in _pointers(name):
        expected = 0 if pointer in optional else CNORM_EINVAL
        assert _valid_call(name, null=pointer) == expected, (name, pointer)


def test_optional_pointer_table_names_real_parameters():
    for name in KERNELS:
        assert OPTIONAL_POINTERS[_base(name)] <= set(_pointers(name)), name


@pytest.mark.parametrize("field", [0, 1, 4, 5], ids=["running_mean", "running_var", "r", "d"])
@pytest.mark.parametrize("suffix", ["f32", "f64"])
def test_renorm_fields_are_required(field, suffix):
    assert _valid_call(f"cnorm_bn_forward_train_{suffix}", null_renorm_field=field) == \
        CNORM_EINVAL


@pytest.mark.parametrize("name", sorted(n for n in KERNELS if "_row_" in n))
def test_row_kernels_check_sizes_with_no_rows(name):
    """M == 0 lets every pointer be NULL, not the other sizes be wrong."""
    fn, parsed = _kernel(name, KERNELS[name])
    names = [n for _, n in parsed]
    for bad in ({"K": -10}, {"K": 0}, {"S": 0}, {"G": 0}, {"K": 10, "S": 3}):
        if not set(bad) <= set(names):
            continue
        args = _arguments(parsed, None)
        for key, value in {"M": 0, **bad}.items():
            args[names.index(key)] = value
        assert fn(*args) == CNORM_EINVAL, (name, bad)
    args = _arguments(parsed, None)
    args[names.index("M")] = 0
    assert fn(*args) == 0, name   # K = 4 (G = S = 4 where present: K % S == 0)
