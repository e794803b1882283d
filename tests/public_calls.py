"""Every public function called with each of its array arguments passed
through a converter (a byte-swapped copy, a misaligned copy, ...): the tests
of an input class compare such calls with the plain ones."""
import numpy as np

import cnorm


def calls(dtype):
    """name -> f(convert): a call of that public function whose array
    arguments (data, parameters, saved statistics) all pass through convert."""
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
        "add_layer_norm": lambda v: cnorm.add_layer_norm(v(x), v(dy), 5, v(k), v(k)),
        "add_rms_norm": lambda v: cnorm.add_rms_norm(v(x), v(dy), 5, v(k)),
    }


def flatten(result):
    """The arrays of a call's result (a tuple, possibly holding None)."""
    return [r for r in (result if isinstance(result, tuple) else (result,)) if r is not None]
