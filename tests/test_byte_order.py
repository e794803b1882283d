"""Non-native byte order (big-endian data from FITS, HDF5, network formats):
every public function computes on the values, never on swapped bytes, and
an out= of swapped byte order is refused before anything is written."""
import numpy as np
import pytest

import cnorm

SWAPPED = {np.float32: np.dtype(">f4") if np.little_endian else np.dtype("<f4"),
           np.float64: np.dtype(">f8") if np.little_endian else np.dtype("<f8")}


def calls(dtype):
    """(name, f(convert)) where convert(a) gives a (possibly byte-swapped) copy."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6, 3, 5)).astype(dtype) * 2 + 1
    dy = rng.standard_normal(x.shape).astype(dtype)
    c = rng.uniform(0.5, 1.5, 6).astype(dtype)
    k = rng.uniform(0.5, 1.5, 5).astype(dtype)
    ch = rng.uniform(-0.5, 0.5, 6).astype(dtype)
    chw = rng.uniform(0.5, 1.5, (6, 3, 5)).astype(dtype)

    def bn_backward(v):
        _, mean, invstd = cnorm.batch_norm_train(x, c, ch)
        return cnorm.batch_norm_backward(v(dy), v(x), v(mean), v(invstd), v(c))

    def row_backward(fn, forward, *args, **kw):
        def call(v):
            saved = forward(x, *args[:1], **kw)[1:]
            return fn(v(dy), v(x), *map(v, saved), *args)
        return call

    return {
        "batch_norm_train": lambda v: cnorm.batch_norm_train(v(x), v(c), v(ch)),
        "batch_norm_train_last": lambda v: cnorm.batch_norm_train(v(x), v(k), v(k), axis=-1),
        "batch_norm_infer": lambda v: cnorm.batch_norm_infer(v(x), v(ch), v(c), v(c), v(ch)),
        "batch_norm_backward": bn_backward,
        "layer_norm": lambda v: cnorm.layer_norm(v(x), 5, v(k), v(k)),
        "layer_norm_3d": lambda v: cnorm.layer_norm(v(x), (6, 3, 5), v(chw), v(chw)),
        "layer_norm_backward": row_backward(cnorm.layer_norm_backward, cnorm.layer_norm, 5),
        "group_norm": lambda v: cnorm.group_norm(v(x), 3, v(c), v(ch)),
        "group_norm_backward": row_backward(cnorm.group_norm_backward, cnorm.group_norm, 3),
        "instance_norm": lambda v: cnorm.instance_norm(v(x), v(c), v(ch)),
        "instance_norm_backward": row_backward(cnorm.instance_norm_backward,
                                               cnorm.instance_norm),
        "rms_norm": lambda v: cnorm.rms_norm(v(x), 5, v(k)),
        "rms_norm_backward": row_backward(cnorm.rms_norm_backward, cnorm.rms_norm, 5),
    }


NAMES = list(calls(np.float32))


def flatten(result):
    return [r for r in (result if isinstance(result, tuple) else (result,)) if r is not None]


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
