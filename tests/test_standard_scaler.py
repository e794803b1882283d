"""cnorm.StandardScaler against float64 formulas and, when installed,
scikit-learn's StandardScaler (attributes, transform, estimator protocol)."""
import pickle
import warnings

import numpy as np
import pytest

import cnorm
from cnorm import StandardScaler


def _data(dtype=np.float64, n=400, f=6, nan=False, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(rng.uniform(-50, 50, f), rng.uniform(0.1, 10, f), (n, f)).astype(dtype)
    X[:, 2] = 4.25                    # a constant feature: scale 1
    if nan:
        X[rng.random((n, f)) < 0.1] = np.nan
        X[:, 3] = np.nan              # a feature with no values at all
    return X


def _expected(X):
    """(mean, var, scale, count) per column with NaN ignored, in float64."""
    X = X.astype(np.float64)
    count = np.sum(~np.isnan(X), axis=0).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(X, axis=0)
        var = np.nanvar(X, axis=0)
    scale = np.sqrt(var)
    scale[var <= count * 2.2e-16 * var + (count * mean * 2.2e-16) ** 2] = 1.0
    return mean, var, scale, count


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("nan", [False, True])
def test_fit_and_transform_equal_formulas(dtype, nan):
    X = _data(dtype, nan=nan)
    s = StandardScaler().fit(X)
    mean, var, scale, count = _expected(X)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(s.mean_, mean, rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(s.var_, var, rtol=rtol * 10, atol=1e-9)
    np.testing.assert_allclose(s.scale_, scale, rtol=rtol * 10)
    assert s.scale_[2] == 1.0 and s.var_[2] == 0.0
    np.testing.assert_array_equal(s.n_samples_seen_, count if nan else count[0])
    assert s.n_features_in_ == X.shape[1]
    Z = s.transform(X)
    assert Z.dtype == X.dtype and Z.shape == X.shape
    zref = (X.astype(np.float64) - mean) / scale
    np.testing.assert_array_equal(np.isnan(Z), np.isnan(zref))
    tol = {np.float64: 1e-12, np.float32: 1e-5, np.float16: 4e-3}[dtype]
    np.testing.assert_allclose(Z.astype(np.float64), zref, rtol=tol, atol=tol * 4)
    back = s.inverse_transform(Z)
    ok = ~np.isnan(X)
    np.testing.assert_allclose(back[ok].astype(np.float64), X[ok].astype(np.float64),
                               rtol=tol * 10, atol=tol * 50)


def test_partial_fit_over_chunks_equals_fit_and_survives_long_streams():
    X = _data(n=3000, nan=True)
    whole = StandardScaler().fit(X)
    parts = StandardScaler()
    for i in range(0, 3000, 128):
        parts.partial_fit(X[i:i + 128])
    np.testing.assert_allclose(parts.mean_, whole.mean_, rtol=1e-12)
    np.testing.assert_allclose(parts.var_, whole.var_, rtol=1e-10)
    np.testing.assert_array_equal(parts.n_samples_seen_, whole.n_samples_seen_)
    # scikit-learn issue 5602: many partial fits of large-mean data lose var.
    rng = np.random.default_rng(1)
    stream = StandardScaler()
    for _ in range(300):
        stream.partial_fit(1e9 + rng.normal(0, 1.0, (100, 2)))
    np.testing.assert_allclose(stream.var_, 1.0, rtol=0.05)


def test_options_copy_and_layouts():
    X = _data()
    s = StandardScaler(with_mean=False).fit(X)
    np.testing.assert_allclose(s.transform(X), X / s.scale_, rtol=1e-14)
    assert s.mean_ is not None
    s = StandardScaler(with_std=False).fit(X)
    assert s.var_ is None and s.scale_ is None
    np.testing.assert_allclose(s.transform(X), X - s.mean_, rtol=1e-14, atol=1e-12)
    s = StandardScaler(with_mean=False, with_std=False).fit(X)
    assert s.mean_ is None and s.var_ is None
    np.testing.assert_array_equal(s.transform(X), X)
    s = StandardScaler().fit(X)
    expected = s.transform(X)
    for layout in (np.asfortranarray(X), X[:, ::-1][:, ::-1].copy(), np.array(X)[::1]):
        Y = layout.copy(order="K")
        out = s.transform(Y, copy=False)
        assert out is Y
        np.testing.assert_array_equal(out, expected)
    strided = np.zeros((X.shape[0] * 2, X.shape[1]))[::2]
    strided[...] = X
    out = StandardScaler(copy=False).fit(X).transform(strided)
    assert out is strided
    np.testing.assert_array_equal(out, expected)
    untouched = X.copy()
    s.transform(untouched)
    np.testing.assert_array_equal(untouched, X)
    ints = np.arange(12).reshape(4, 3)
    assert StandardScaler().fit(ints).transform(ints).dtype == np.float64


def test_sample_weight_equals_repetition():
    X = _data(n=60)
    reps = np.random.default_rng(2).integers(0, 4, 60)
    a = StandardScaler().fit(X, sample_weight=reps)
    b = StandardScaler().fit(np.repeat(X, reps, axis=0))
    np.testing.assert_allclose(a.mean_, b.mean_, rtol=1e-12)
    np.testing.assert_allclose(a.var_, b.var_, rtol=1e-10)
    assert float(a.n_samples_seen_) == reps.sum()


def test_bad_input_leaves_fit_unchanged():
    X = _data()
    s = StandardScaler().fit(X)
    before = (s.mean_.copy(), s.var_.copy(), s.n_samples_seen_)
    bad = [
        (lambda: s.partial_fit(X[:, :3]), ValueError, "features"),
        (lambda: s.fit(X, sample_weight=np.ones(3)), ValueError, "sample_weight"),
        (lambda: s.fit(X, sample_weight=-np.ones(len(X))), ValueError, "sample_weight"),
        (lambda: s.fit(np.where(X > 40, np.inf, X)), ValueError, "infinity"),
        (lambda: s.fit(X[:, 0]), ValueError, "2D"),
        (lambda: s.fit(X[:0]), ValueError, "sample"),
        (lambda: s.fit(X.astype(complex)), ValueError, "real"),
        (lambda: s.transform(X[:, :2]), ValueError, "features"),
    ]
    for call, error, match in bad:
        with pytest.raises(error, match=match):
            call()
        np.testing.assert_array_equal(s.mean_, before[0])
        np.testing.assert_array_equal(s.var_, before[1])
        assert s.n_samples_seen_ == before[2]


def test_not_fitted():
    with pytest.raises(ValueError, match="not fitted"):
        StandardScaler().transform(np.ones((2, 2)))
    with pytest.raises(AttributeError):
        StandardScaler().inverse_transform(np.ones((2, 2)))


def test_params_repr_pickle():
    s = StandardScaler(copy=False)
    assert s.get_params() == {"copy": False, "with_mean": True, "with_std": True}
    assert repr(s) == "StandardScaler(copy=False)"
    assert s.set_params(with_std=False) is s and s.with_std is False
    with pytest.raises(ValueError, match="Invalid parameter"):
        s.set_params(bogus=1)
    X = _data()
    fitted = StandardScaler().fit(X)
    twin = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(twin.transform(X), fitted.transform(X))


# ---- scikit-learn as the oracle ----------------------------------------------

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is an optional oracle")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("params", [{}, {"with_mean": False}, {"with_std": False},
                                    {"with_mean": False, "with_std": False}])
def test_equals_scikit_learn(dtype, nan, weighted, params):
    from sklearn.preprocessing import StandardScaler as Reference

    X = _data(dtype, nan=nan)
    X[:, 3] = np.where(np.isnan(X[:, 3]), 1.0, X[:, 3]) if nan else X[:, 3]
    sw = np.random.default_rng(3).uniform(0.5, 2, len(X)) if weighted else None
    ours = StandardScaler(**params).fit(X, sample_weight=sw)
    with np.errstate(all="ignore"):
        ref = Reference(**params).fit(X, sample_weight=sw)
    rtol = 1e-10 if dtype == np.float64 else 1e-6
    for name in ("mean_", "var_", "scale_"):
        a, b = getattr(ours, name), getattr(ref, name)
        if b is None:
            assert a is None, name
        else:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(ours.n_samples_seen_, ref.n_samples_seen_)
    assert np.shape(ours.n_samples_seen_) == np.shape(ref.n_samples_seen_)
    za, zb = ours.transform(X), ref.transform(X)
    assert za.dtype == zb.dtype
    tol = 1e-10 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(za, zb, rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.inverse_transform(za), ref.inverse_transform(zb), rtol=tol,
                               atol=tol * 100)


def test_estimator_protocol():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.utils.validation import check_is_fitted

    X = _data()
    y = (X[:, 0] > np.median(X[:, 0])).astype(int)
    twin = clone(StandardScaler(with_mean=False))
    assert isinstance(twin, StandardScaler) and twin.with_mean is False
    with pytest.raises(NotFittedError):
        StandardScaler().transform(X)
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    check_is_fitted(pipe[0])
    assert pipe.score(X, y) > 0.9
    Z = StandardScaler().fit_transform(X)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-12)
    assert list(pipe[0].get_feature_names_out()) == [f"x{i}" for i in range(X.shape[1])]


def test_import_without_scikit_learn_is_plain():
    # cnorm must not import scikit-learn by itself.
    import subprocess
    import sys

    code = ("import sys; import cnorm; cnorm.StandardScaler().fit([[1.0], [2.0]]); "
            "assert 'sklearn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert cnorm.StandardScaler is StandardScaler
