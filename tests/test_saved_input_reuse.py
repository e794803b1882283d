"""A training layer copies x for backward into the previous step's copy when
nothing but the layer holds it (a new large array per step makes glibc hand
memory back and page-fault it in again): never when a backward() is running
on it or a shallow copy of the layer shares it, and a step that raises leaves
no saved batch."""
import copy

import numpy as np
import pytest

import cnorm

SHAPE = (8, 64, 16, 16)   # 512 KiB of float32: above the reuse size
LAYERS = {
    "BatchNorm": lambda: cnorm.BatchNorm(64),
    "BatchRenorm": lambda: cnorm.BatchRenorm(64),
    "GroupNorm": lambda: cnorm.GroupNorm(8, 64),
    "InstanceNorm": lambda: cnorm.InstanceNorm(64, affine=True),
    "LayerNorm": lambda: cnorm.LayerNorm((16, 16)),
    "RMSNorm": lambda: cnorm.RMSNorm(16),
}


def _batches(n, dtype=np.float32):
    rng = np.random.default_rng(6)
    return [rng.standard_normal(SHAPE).astype(dtype) for _ in range(n)]


def _saved_input(layer):
    return layer._saved[0][0]


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS)
def test_second_step_reuses_the_copy_and_backward_is_of_its_batch(make):
    x1, x2, dy = _batches(3)
    layer, reference = make(), make()
    layer(x1)
    first = id(_saved_input(layer))   # an id: a reference would keep it from reuse
    y = layer(x2)
    assert id(_saved_input(layer)) == first           # written into the previous copy
    assert _saved_input(layer).tobytes() == x2.tobytes()
    assert not np.shares_memory(_saved_input(layer), x2)
    reference(x1)
    assert reference(x2).tobytes() == y.tobytes()      # (reference: a copy per step)
    assert layer.backward(dy).tobytes() == reference.backward(dy).tobytes()


def test_no_reuse_while_the_saved_batch_is_referenced():
    # A backward() on another thread holds the saved tuple; a shallow copy of
    # the layer shares it: either way the next step must not overwrite it.
    x1, x2, dy = _batches(3)
    layer = cnorm.BatchNorm(64)
    layer(x1)
    held = layer._saved[0]
    layer(x2)
    assert held[0].tobytes() == x1.tobytes() and _saved_input(layer) is not held[0]
    del held
    twin = copy.copy(layer)
    layer(x1)
    assert _saved_input(twin).tobytes() == x2.tobytes()
    expected = cnorm.BatchNorm(64)
    expected(x2)
    assert twin.backward(dy).tobytes() == expected.backward(dy).tobytes()


@pytest.mark.parametrize("shape", [SHAPE, (2, 64, 3, 3)], ids=["reused", "small"])
def test_a_step_that_raises_leaves_no_saved_batch(shape):
    rng = np.random.default_rng(7)
    layer = cnorm.BatchNorm(64)
    layer(rng.standard_normal(shape, dtype=np.float32))
    layer.running_var = np.ones(3, np.float32)   # the next step cannot update it
    with pytest.raises(ValueError, match="running_var"):
        layer(rng.standard_normal(shape, dtype=np.float32))
    with pytest.raises(RuntimeError, match="training-mode forward"):
        layer.backward(np.ones(shape, np.float32))


def test_other_shapes_dtypes_and_layouts_get_a_new_copy():
    x1, = _batches(1)
    layer = cnorm.BatchNorm(64, dtype=np.float64)
    layer(x1.astype(np.float64))
    for x in (x1[:4].astype(np.float64), x1.astype(np.float32),
              np.asfortranarray(x1.astype(np.float64))):
        # an id only (a reference would itself prevent reuse); the new copy
        # is made while the previous one is alive, so equal ids mean reuse
        previous = id(_saved_input(layer))
        layer(x)
        assert id(_saved_input(layer)) != previous
        assert np.array_equal(_saved_input(layer), x)
        assert _saved_input(layer).dtype == x.dtype
