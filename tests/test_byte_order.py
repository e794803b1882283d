"""Non-native byte order (big-endian data from FITS, HDF5, network formats):
every public function computes on the values, never on swapped bytes, and
an out= of swapped byte order is refused before anything is written."""
import numpy as np
import pytest

import cnorm

from public_calls import calls, flatten

SWAPPED = {np.float32: np.dtype(">f4") if np.little_endian else np.dtype("<f4"),
           np.float64: np.dtype(">f8") if np.little_endian else np.dtype("<f8")}
SWAPPED_LOW = np.dtype(">f2") if np.little_endian else np.dtype("<f2")


NAMES = list(calls(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_swapped_inputs_give_native_results(name, dtype):
    fn = calls(dtype)[name]
    native = flatten(fn(lambda a: a))
    swapped = flatten(fn(lambda a: np.asarray(a).astype(SWAPPED[dtype])))
    assert len(native) == len(swapped)
    for a, b in zip(native, swapped):
        assert b.dtype.isnative
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_swapped_out_is_refused_untouched(dtype):
    x = np.random.default_rng(1).standard_normal((4, 6, 5)).astype(dtype)
    outs = {
        "batch_norm_train": lambda o: cnorm.batch_norm_train(x, out=o),
        "batch_norm_infer": lambda o: cnorm.batch_norm_infer(
            x, np.zeros(6, dtype), np.ones(6, dtype), out=o),
        "layer_norm": lambda o: cnorm.layer_norm(x, 5, out=o),
        "group_norm": lambda o: cnorm.group_norm(x, 2, out=o),
        "instance_norm": lambda o: cnorm.instance_norm(x, out=o),
        "rms_norm": lambda o: cnorm.rms_norm(x, 5, out=o),
    }
    for name, call in outs.items():
        out = np.full(x.shape, 7.0, SWAPPED[dtype])
        with pytest.raises(ValueError, match="out"):
            call(out)
        assert np.all(out == 7.0), name


def test_swapped_two_byte_parameters_are_their_values():
    """A float16 weight or bias of either byte order is x's dtype."""
    x = np.random.default_rng(2).standard_normal((4, 6, 5)).astype(np.float16)
    w = np.linspace(0.5, 1.5, 6).astype(np.float16)
    k = np.linspace(0.5, 1.5, 5).astype(np.float16)
    for call in (lambda a: cnorm.batch_norm_train(x, a(w), a(w))[0],
                 lambda a: cnorm.layer_norm(x, 5, a(k), a(k))[0],
                 lambda a: cnorm.group_norm(x, 2, a(w), a(w))[0]):
        np.testing.assert_array_equal(call(lambda a: a.astype(SWAPPED_LOW)).view(np.uint16),
                                      call(lambda a: a).view(np.uint16))
