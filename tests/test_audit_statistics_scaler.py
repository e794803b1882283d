"""Audit findings fixed in statistics.py, scaler.py and _validate.py."""
import warnings
from decimal import Decimal

import numpy as np
import pytest

import cnorm

sklearn = pytest.importorskip("sklearn.preprocessing")


# ---- Moments: float64 data near the top of its range ----------------------

def test_dense_moments_of_huge_float64_are_finite():
    # The kernel's Welford update overflowed: mean -inf, m2 NaN for finite data.
    m = cnorm.Moments.of(np.array([[1.7e308], [-1.7e308]]), axis=1)
    assert m.mean[0] == 0.0
    assert m.m2[0] == np.inf   # 5.78e616 is beyond float64: inf, not NaN


def test_dense_moments_keep_nan_and_other_features():
    x = np.array([[1.7e308, np.nan, 1.0], [-1.7e308, 2.0, 3.0]])
    m = cnorm.Moments.of(x)
    assert m.mean[0] == 0.0 and np.isnan(m.mean[1]) and np.isnan(m.m2[1])
    assert m.mean[2] == 2.0 and m.m2[2] == 2.0


@pytest.mark.parametrize("kind", ["mask", "sample_weight"])
def test_weighted_moments_of_huge_float64_do_not_overflow(kind):
    x = np.full((4, 1), 1e308)
    kw = ({"mask": np.ones(x.shape, bool)} if kind == "mask"
          else {"sample_weight": np.ones(4)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no overflow warnings either
        m = cnorm.Moments.of(x, **kw)
    assert m.mean[0] == 1e308 and m.m2[0] == 0.0   # was inf, inf


def test_weighted_moments_are_unchanged_for_ordinary_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 5)) * 1e3 + 7
    w = rng.uniform(0, 2, 300)
    m = cnorm.Moments.of(x, sample_weight=w)
    mean = (w[:, None] * x).sum(0) / w.sum()
    np.testing.assert_allclose(m.mean, mean, rtol=1e-13)
    np.testing.assert_allclose(m.m2, (w[:, None] * (x - mean) ** 2).sum(0), rtol=1e-12)


def test_merge_into_empty_does_not_warn_on_huge_means():
    part = cnorm.Moments([2.0], [1e300], [0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = cnorm.Moments.empty(1) + part
    assert whole.mean[0] == 1e300 and whole.m2[0] == 0.0


def test_scaler_huge_float64_matches_sklearn():
    X = np.array([[1.7e308, 1.0], [-1.7e308, 2.0]])
    ours = cnorm.StandardScaler().fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sklearn.StandardScaler().fit(X)
    np.testing.assert_array_equal(ours.mean_, ref.mean_)   # [0, 1.5], was [-inf, 1.5]
    np.testing.assert_array_equal(ours.var_, ref.var_)     # [inf, .25], was [nan, .25]
    np.testing.assert_array_equal(ours.scale_, ref.scale_)
    np.testing.assert_array_equal(ours.transform(X), ref.transform(X))


def test_scaler_nan_column_with_huge_values_gives_finite_mean():
    X = np.array([[1e308, 1.0], [1e308, np.nan], [1e308, 3.0], [np.nan, 5.0]])
    s = cnorm.StandardScaler().fit(X)
    assert s.mean_[0] == 1e308 and s.var_[0] == 0.0 and s.scale_[0] == 1.0


# ---- StandardScaler: sample_weight and X as scikit-learn takes them -------

@pytest.mark.parametrize("kw", [{}, {"with_mean": False, "with_std": False}])
def test_all_zero_sample_weight_is_refused_as_sklearn(kw):
    X = np.random.default_rng(0).standard_normal((4, 2))
    with pytest.raises(ValueError, match="at least one non-zero"):
        sklearn.StandardScaler(**kw).fit(X, sample_weight=np.zeros(4))
    scaler = cnorm.StandardScaler(**kw)
    with pytest.raises(ValueError, match="at least one non-zero"):
        scaler.fit(X, sample_weight=np.zeros(4))   # was NaN statistics, silently
    assert not hasattr(scaler, "n_samples_seen_")


def test_all_zero_sample_weight_in_partial_fit_leaves_the_scaler():
    X = np.random.default_rng(0).standard_normal((4, 2))
    scaler = cnorm.StandardScaler().partial_fit(X)
    mean = scaler.mean_.copy()
    with pytest.raises(ValueError, match="at least one non-zero"):
        scaler.partial_fit(X, sample_weight=[0, 0, 0, 0])
    np.testing.assert_array_equal(scaler.mean_, mean)


@pytest.mark.parametrize("weight", [2.0, 3, np.float32(0.5)])
def test_scalar_sample_weight_as_sklearn(weight):
    X = np.random.default_rng(1).standard_normal((5, 3))
    ours = cnorm.StandardScaler().fit(X, sample_weight=weight)
    ref = sklearn.StandardScaler().fit(X, sample_weight=weight)
    np.testing.assert_allclose(ours.mean_, ref.mean_)
    np.testing.assert_allclose(ours.var_, ref.var_)
    assert ours.n_samples_seen_ == ref.n_samples_seen_


def test_scalar_zero_sample_weight_is_refused():
    with pytest.raises(ValueError, match="at least one non-zero"):
        cnorm.StandardScaler().fit(np.eye(3), sample_weight=0.0)


def test_object_dtype_numbers_are_fitted_as_sklearn():
    X = np.array([[Decimal(1), 2], [3, 4.5], [5, 7]], dtype=object)
    ours = cnorm.StandardScaler().fit(X)
    ref = sklearn.StandardScaler().fit(X)
    np.testing.assert_allclose(ours.mean_, ref.mean_)
    np.testing.assert_allclose(ours.transform(X), ref.transform(X))
    assert ours.transform(X).dtype == np.float64


def test_object_dtype_strings_are_a_value_error():
    with pytest.raises(ValueError, match="real numbers"):
        cnorm.StandardScaler().fit(np.array([["a", 1], [2, 3]], dtype=object))


# ---- axis=True is not an axis ----------------------------------------------

def test_bool_axis_is_a_type_error():
    x = np.ones((4, 3), np.float32)
    with pytest.raises(TypeError, match="axis"):
        cnorm.Moments.of(x, axis=True)
    with pytest.raises(TypeError, match="axis"):
        cnorm.batch_norm_train(x, axis=True)
    with pytest.raises(TypeError, match="axis"):
        cnorm.fold_batch_norm(np.ones((3, 4)), None, np.zeros(4), np.ones(4), axis=np.True_)
