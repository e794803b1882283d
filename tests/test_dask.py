"""cnorm.dask.moments and StandardScaler on dask arrays equal the NumPy
results of the same data (dask is optional: skipped without it)."""
import numpy as np
import pytest

import cnorm

da = pytest.importorskip("dask.array")
cdask = pytest.importorskip("cnorm.dask")


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(10.0, 3.0, (1000, 6))


@pytest.mark.parametrize("chunks", [(1000, 6), (128, 6), (100, 2), (7, 5)])
@pytest.mark.parametrize("axis", [-1, 0])
def test_moments_equal_numpy(chunks, axis):
    x = _data()
    m = cdask.moments(da.from_array(x, chunks=chunks), axis=axis)
    ref = cnorm.Moments.of(x, axis=axis)
    np.testing.assert_array_equal(m.count, ref.count)
    np.testing.assert_allclose(m.mean, ref.mean, rtol=1e-13)
    np.testing.assert_allclose(m.m2, ref.m2, rtol=1e-11)


def test_result_does_not_depend_on_scheduler():
    d = da.from_array(_data(), chunks=(64, 3))
    import dask

    with dask.config.set(scheduler="threads"):
        a = cdask.moments(d)
    with dask.config.set(scheduler="synchronous"):
        b = cdask.moments(d)
    assert a.mean.tobytes() == b.mean.tobytes() and a.m2.tobytes() == b.m2.tobytes()


def test_scaler_fit_and_lazy_transform():
    x = _data()
    x[3, 1] = np.nan
    d = da.from_array(x, chunks=(100, 4))
    lazy_fit = cnorm.StandardScaler().fit(d)
    eager = cnorm.StandardScaler().fit(x)
    np.testing.assert_allclose(lazy_fit.mean_, eager.mean_, rtol=1e-13)
    np.testing.assert_allclose(lazy_fit.var_, eager.var_, rtol=1e-11)
    np.testing.assert_array_equal(lazy_fit.n_samples_seen_, eager.n_samples_seen_)
    z = lazy_fit.transform(d)
    assert isinstance(z, da.Array)
    lazy_fit.fit(x * 2)          # refitting does not change a result already built
    np.testing.assert_allclose(z.compute(), eager.transform(x), rtol=1e-12, atol=1e-12)
    back = eager.inverse_transform(eager.transform(d)).compute()
    np.testing.assert_allclose(back, x, rtol=1e-12)


def test_bad_input():
    with pytest.raises(TypeError, match="dask"):
        cdask.moments(np.ones((3, 2)))
    with pytest.raises(ValueError, match="features"):
        cnorm.StandardScaler().fit(_data()).transform(da.ones((4, 3)))
    with pytest.raises(ValueError, match="sample_weight"):
        cnorm.StandardScaler().fit(da.ones((4, 3)), sample_weight=np.ones(4))


def _low(name):
    if name == "float16":
        return np.dtype(np.float16)
    return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_low_precision_moments_equal_moments_of(low, axis):
    # Moments.of takes float16 and bfloat16 (in float32); so does cnorm.dask.moments.
    x = _data().astype(_low(low))
    ref = cnorm.Moments.of(x, axis=axis)
    whole = cdask.moments(da.from_array(x, chunks=x.shape), axis=axis)
    assert whole.to_array().tobytes() == ref.to_array().tobytes()
    blocks = cdask.moments(da.from_array(x, chunks=(128, 6)), axis=axis)
    np.testing.assert_array_equal(blocks.count, ref.count)
    np.testing.assert_allclose(blocks.mean, ref.mean, rtol=1e-6)
    np.testing.assert_allclose(blocks.m2, ref.m2, rtol=1e-5)
    x[3, 1] = np.nan
    masked = cdask.moments(da.from_array(x, chunks=(100, 6)), ignore_nan=True)
    expected = cnorm.Moments.of(x, mask=~np.isnan(x.astype(np.float32)))
    np.testing.assert_array_equal(masked.count, expected.count)
    np.testing.assert_allclose(masked.mean, expected.mean, rtol=1e-6)
    x[4, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        cdask.moments(da.from_array(x, chunks=(100, 6)), ignore_nan=True)


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
def test_scaler_low_precision_dask_equals_numpy(low):
    x = _data().astype(_low(low))
    x[3, 1] = np.nan
    d = da.from_array(x, chunks=(1000, 6))
    lazy_fit = cnorm.StandardScaler().fit(d)
    eager = cnorm.StandardScaler().fit(x)
    np.testing.assert_allclose(lazy_fit.mean_, eager.mean_, rtol=1e-6)
    np.testing.assert_allclose(lazy_fit.var_, eager.var_, rtol=1e-5)
    z = eager.transform(d)
    assert isinstance(z, da.Array) and z.dtype == x.dtype
    computed = z.compute()
    assert computed.dtype == x.dtype
    np.testing.assert_array_equal(computed.astype(np.float32),
                                  eager.transform(x).astype(np.float32))


@pytest.mark.parametrize("params", [{}, {"with_mean": False}, {"with_std": False},
                                    {"with_mean": False, "with_std": False}], ids=str)
def test_scaler_rejects_infinity_in_dask_arrays(params):
    x = _data()
    x[7, 2] = -np.inf
    d = da.from_array(x, chunks=(100, 6))
    with pytest.raises(ValueError, match="infinity"):
        cnorm.StandardScaler(**params).fit(d)
    scaler = cnorm.StandardScaler(**params).fit(_data())
    for method in (scaler.transform, scaler.inverse_transform):
        lazy = method(d)                  # lazy: checked when computed, block by block
        with pytest.raises(ValueError, match="infinity"):
            lazy.compute()
    x[7, 2] = np.nan                      # NaN is kept
    z = scaler.transform(da.from_array(x, chunks=(100, 6))).compute()
    np.testing.assert_array_equal(np.isnan(z), np.isnan(x))


def test_transform_of_empty_blocks():
    """Chunks of no rows (boolean selections make them) transform to no rows."""
    x = _data()
    scaler = cnorm.StandardScaler().fit(x)
    d = da.from_array(x, chunks=(100, 6))
    kept = d[d[:, 0] > 12.0]   # unknown chunk sizes, some of them 0
    np.testing.assert_array_equal(scaler.transform(kept).compute(),
                                  scaler.transform(x[x[:, 0] > 12.0]))
    np.testing.assert_array_equal(scaler.inverse_transform(kept).compute(),
                                  scaler.inverse_transform(x[x[:, 0] > 12.0]))
    explicit = da.from_array(x[:3], chunks=((1, 0, 2), (6,)))
    np.testing.assert_array_equal(scaler.transform(explicit).compute(), scaler.transform(x[:3]))
    assert scaler.transform(d[d[:, 0] > 1e9]).compute().shape == (0, 6)
