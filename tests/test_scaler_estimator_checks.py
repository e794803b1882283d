"""cnorm.StandardScaler passes scikit-learn's own estimator checks (the
API contract Pipelines, clone and model selection rely on)."""
import pytest

import cnorm

estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")


@pytest.mark.filterwarnings("ignore::UserWarning")   # "does not inherit from BaseEstimator"
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_scikit_learn_estimator_checks():
    try:
        results = estimator_checks.check_estimator(cnorm.StandardScaler(), on_fail=None)
    except TypeError:   # scikit-learn < 1.6: no on_fail, the first failure raises
        estimator_checks.check_estimator(cnorm.StandardScaler())
        return
    failed = {r["check_name"]: str(r["exception"])[:200] for r in results
              if r["status"] == "failed"}
    assert not failed, failed
