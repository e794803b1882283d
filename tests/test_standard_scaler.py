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
    with pytest.raises(cnorm.scaler.NotFittedError, match="not fitted"):
        StandardScaler().get_feature_names_out()


def test_not_fitted_error_without_scikit_learn():
    # scikit-learn made unimportable: the class is ValueError and AttributeError
    # only, and it is what the scaler raises.
    import subprocess
    import sys

    code = """if True:
        import sys
        sys.modules["sklearn"] = None          # import sklearn raises ImportError
        import numpy as np
        import cnorm
        from cnorm.scaler import NotFittedError
        assert NotFittedError.__bases__ == (ValueError, AttributeError), NotFittedError.__mro__
        assert NotFittedError.__module__ == "cnorm.scaler"
        for method in ("transform", "inverse_transform"):
            try:
                getattr(cnorm.StandardScaler(), method)(np.ones((2, 2)))
            except NotFittedError as e:
                assert type(e) is NotFittedError and "not fitted" in str(e)
            else:
                raise AssertionError(method)
        assert cnorm.scaler.NotFittedError is NotFittedError
        """
    subprocess.run([sys.executable, "-c", code], check=True)


PARAMS = [{}, {"with_mean": False}, {"with_std": False}, {"with_mean": False, "with_std": False}]


def _with_infinity(value, dtype=np.float64):
    X = _data(dtype, nan=True)
    X[5, 1] = value
    return X


# Every call that reads X: (name, call(scaler, X)).  The transforming ones
# run on a scaler fitted on finite data.
_CALLS = [
    ("fit", lambda s, X: s.fit(X)),
    ("fit sample_weight", lambda s, X: s.fit(X, sample_weight=np.ones(len(X)))),
    ("partial_fit", lambda s, X: s.partial_fit(X)),
    ("partial_fit again", lambda s, X: s.fit(_data()).partial_fit(X)),
    ("fit_transform", lambda s, X: s.fit_transform(X)),
    ("transform", lambda s, X: s.fit(_data()).transform(X)),
    ("transform copy=False", lambda s, X: s.fit(_data()).transform(X, copy=False)),
    ("inverse_transform", lambda s, X: s.fit(_data()).inverse_transform(X)),
    ("inverse_transform copy=False",
     lambda s, X: s.fit(_data()).inverse_transform(X, copy=False)),
]


@pytest.mark.parametrize("params", PARAMS, ids=str)
@pytest.mark.parametrize("name, call", _CALLS, ids=[n for n, _ in _CALLS])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_infinity_is_rejected_by_every_call(params, name, call, value, dtype):
    X = _with_infinity(value, dtype)
    before = X.copy()
    with pytest.raises(ValueError, match="infinity"):
        call(StandardScaler(**params), X)
    np.testing.assert_array_equal(X, before)   # checked before anything is written


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_nan_is_ignored_by_fit_and_kept_by_transform(params):
    X = _data(nan=True)
    finite = ~np.isnan(X)
    s = StandardScaler(**params).fit(X)
    np.testing.assert_array_equal(s.n_samples_seen_, finite.sum(axis=0))
    if s.mean_ is not None:
        assert np.isfinite(s.mean_[finite.any(axis=0)]).all()
    for Z in (s.transform(X), s.inverse_transform(X), s.fit_transform(X)):
        np.testing.assert_array_equal(np.isnan(Z), ~finite)
    s.partial_fit(X)
    np.testing.assert_array_equal(s.n_samples_seen_, 2 * finite.sum(axis=0))


class _Frame:
    """The part of a DataFrame the scaler reads: columns and the values."""

    def __init__(self, values, columns):
        self.values, self.columns = np.asarray(values), list(columns)

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)


def test_feature_names_out_checks_names_seen_in_fit():
    X = _data(f=3)
    s = StandardScaler().fit(_Frame(X, ["a", "b", "c"]))
    assert list(s.feature_names_in_) == ["a", "b", "c"]
    assert list(s.get_feature_names_out()) == ["a", "b", "c"]
    assert list(s.get_feature_names_out(["a", "b", "c"])) == ["a", "b", "c"]
    for wrong in (["a", "c", "b"], ["a", "b", "x"], ["a", "b"], ["a", "b", "c", "d"]):
        with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
            s.get_feature_names_out(wrong)
    plain = StandardScaler().fit(X)   # no names: any names of the right length
    assert list(plain.get_feature_names_out()) == ["x0", "x1", "x2"]
    assert list(plain.get_feature_names_out(["p", "q", "r"])) == ["p", "q", "r"]
    with pytest.raises(ValueError, match="length equal to number of features"):
        plain.get_feature_names_out(["p", "q"])


def test_feature_names_out_refuses_names_other_than_feature_names_in():
    s = StandardScaler().fit(_data(f=3))
    s.feature_names_in_ = np.array(["a", "b", "c"], dtype=object)   # as a DataFrame fit sets
    assert list(s.get_feature_names_out(["a", "b", "c"])) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        s.get_feature_names_out(["p", "q", "r"])


def _bfloat16():
    return pytest.importorskip("ml_dtypes").bfloat16


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
def test_low_precision_fits_in_float32_and_transforms_in_its_dtype(low):
    dtype = np.dtype(np.float16 if low == "float16" else _bfloat16())
    X = _data(nan=True).astype(dtype)
    X32 = X.astype(np.float32)                     # exact
    s = StandardScaler().fit(X)
    ref = StandardScaler().fit(X32)
    for name in ("mean_", "var_", "scale_"):
        np.testing.assert_array_equal(getattr(s, name), getattr(ref, name), err_msg=name)
    np.testing.assert_array_equal(s.n_samples_seen_, ref.n_samples_seen_)
    for method in ("transform", "inverse_transform"):
        Z = getattr(s, method)(X)
        assert Z.dtype == dtype
        expected = getattr(ref, method)(X32).astype(dtype)   # float32, rounded once
        np.testing.assert_array_equal(Z.astype(np.float32), expected.astype(np.float32),
                                      err_msg=method)
        Y = X.copy()
        assert getattr(s, method)(Y, copy=False) is Y
        np.testing.assert_array_equal(Y.astype(np.float32), expected.astype(np.float32))
    weighted = StandardScaler().fit(X, sample_weight=np.arange(len(X)) % 3)
    weighted32 = StandardScaler().fit(X32, sample_weight=np.arange(len(X)) % 3)
    np.testing.assert_allclose(weighted.mean_, weighted32.mean_, rtol=1e-12)
    counts = StandardScaler(with_mean=False, with_std=False).fit(X)
    np.testing.assert_array_equal(counts.n_samples_seen_, (~np.isnan(X32)).sum(axis=0))
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        s.transform(X)


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

# Without scikit-learn the tests above still run; those below are skipped.


@pytest.fixture
def sklearn():
    return pytest.importorskip("sklearn", reason="scikit-learn is an optional oracle")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_equals_scikit_learn(dtype, nan, weighted, params, sklearn):
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


def test_estimator_protocol(sklearn):
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


def test_not_fitted_error_is_scikit_learns(sklearn):
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    from sklearn.utils.validation import check_is_fitted

    error = cnorm.scaler.NotFittedError
    assert issubclass(error, SklearnNotFittedError)
    assert issubclass(error, ValueError) and issubclass(error, AttributeError)
    assert error is cnorm.scaler.NotFittedError and error.__module__ == "cnorm.scaler"
    assert "NotFittedError" in dir(cnorm.scaler)
    calls = [lambda s: s.transform(np.ones((2, 2))),
             lambda s: s.inverse_transform(np.ones((2, 2))),
             lambda s: s.get_feature_names_out()]
    for call in calls:
        for catch in (error, SklearnNotFittedError, ValueError, AttributeError):
            try:
                call(StandardScaler())
            except catch as e:
                assert type(e) is error and "not fitted" in str(e)
            else:
                raise AssertionError("no error")
    twin = pickle.loads(pickle.dumps(error("message")))
    assert type(twin) is error and str(twin) == "message"
    # check_is_fitted still sees fitted and unfitted scalers as scikit-learn's do.
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(StandardScaler())
    check_is_fitted(StandardScaler().fit(np.ones((2, 2))))
    assert not hasattr(StandardScaler(), "mean_")


def test_not_fitted_error_is_defined_on_first_use(sklearn):
    # import cnorm does not import scikit-learn; the class, made on first use,
    # still subclasses scikit-learn's.
    import subprocess
    import sys

    code = """if True:
        import sys
        import numpy as np
        import cnorm
        assert "sklearn" not in sys.modules
        try:
            cnorm.StandardScaler().transform(np.ones((2, 2)))
        except cnorm.scaler.NotFittedError as e:
            from sklearn.exceptions import NotFittedError
            assert isinstance(e, NotFittedError)
        from cnorm.scaler import NotFittedError as again
        assert again is cnorm.scaler.NotFittedError
        """
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("params", PARAMS, ids=str)
@pytest.mark.parametrize("name, call", _CALLS, ids=[n for n, _ in _CALLS])
def test_infinity_and_nan_as_scikit_learn(params, name, call, sklearn):
    from sklearn.preprocessing import StandardScaler as Reference

    X = _with_infinity(np.inf)
    for scaler in (StandardScaler(**params), Reference(**params)):
        with pytest.raises(ValueError, match="infinity"):
            call(scaler, X.copy())
    X = _data(nan=True)
    X[:, 3] = 1.0
    with np.errstate(all="ignore"):
        ours, ref = call(StandardScaler(**params), X.copy()), call(Reference(**params), X.copy())
    if isinstance(ref, np.ndarray):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)
    else:
        np.testing.assert_array_equal(ours.n_samples_seen_, ref.n_samples_seen_)
        for attribute in ("mean_", "var_", "scale_"):
            a, b = getattr(ours, attribute), getattr(ref, attribute)
            assert (a is None) == (b is None), attribute
            if b is not None:
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=attribute)


def _outcome(scaler, input_features):
    try:
        return list(scaler.get_feature_names_out(input_features))
    except ValueError as e:
        return ValueError, str(e)


@pytest.mark.parametrize("names", [None, ["a", "b", "c"]])
def test_feature_names_out_as_scikit_learn(names, sklearn):
    from sklearn.preprocessing import StandardScaler as Reference

    X = _data(f=3)
    ours = StandardScaler().fit(X if names is None else _Frame(X, names))
    ref = Reference().fit(X)
    if names is not None:       # (scikit-learn reads names from DataFrames only)
        ref.feature_names_in_ = np.asarray(names, dtype=object)
    for given in (None, ["a", "b", "c"], ("a", "b", "c"), np.array(["a", "b", "c"]),
                  ["c", "b", "a"], ["a", "b", "x"], ["a", "b"], ["x0", "x1", "x2"],
                  ["a", "b", "c", "d"], []):
        assert _outcome(ours, given) == _outcome(ref, given), given


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_low_precision_as_scikit_learn(low, params, sklearn):
    from sklearn.preprocessing import StandardScaler as Reference

    dtype = np.dtype(np.float16 if low == "float16" else _bfloat16())
    X = _data(nan=True).astype(dtype)
    X[:, 3] = 1.0
    ours = StandardScaler(**params).fit(X)
    with np.errstate(all="ignore"):
        ref = Reference(**params).fit(X)    # float16 as it is, bfloat16 as float64
    for name in ("mean_", "var_", "scale_"):
        a, b = getattr(ours, name), getattr(ref, name)
        assert (a is None) == (b is None), name
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(ours.n_samples_seen_, ref.n_samples_seen_)
    with np.errstate(all="ignore"):
        za, zb = ours.transform(X), ref.transform(X)
    assert za.dtype == dtype      # scikit-learn: float16 stays, bfloat16 becomes float64
    np.testing.assert_array_equal(np.isnan(za), np.isnan(zb))
    # scikit-learn's float16 transform rounds (X - mean_) to float16 before
    # dividing (errors up to 0.1 here); ours is within one unit in the last
    # place of X's dtype of the exact result with scikit-learn's statistics.
    exact = X.astype(np.float64)
    if ref.with_mean:
        exact = exact - ref.mean_
    if ref.with_std:
        exact = exact / ref.scale_
    tol = 2.0 ** -10 if low == "float16" else 2.0 ** -7
    np.testing.assert_allclose(za.astype(np.float64), exact, rtol=tol, atol=tol / 8)
    if low == "bfloat16":
        np.testing.assert_allclose(za.astype(np.float64), zb, rtol=tol, atol=tol / 8)
    X[1, 1] = -np.inf
    for scaler in (ours, ref):
        with pytest.raises(ValueError, match="infinity"):
            scaler.transform(X)


def test_numeric_strings_are_read_as_float64_as_scikit_learn():
    X = np.array([["1", "2.5"], ["3", "4"], ["-2", "0"]])
    scaler = cnorm.StandardScaler().fit(X)
    np.testing.assert_allclose(scaler.mean_, X.astype(np.float64).mean(axis=0))
    assert scaler.transform(X).dtype == np.float64
    with pytest.raises(ValueError, match="real numbers"):
        cnorm.StandardScaler().fit(np.array([["a", "1"], ["2", "3"]]))
