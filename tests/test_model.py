"""The numpy-only Naive Bayes scorer equals scikit-learn's MultinomialNB."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.naive_bayes import MultinomialNB

from spamcli.model import NaiveBayesModel, fit_platt
from spamcli.text import SparseRows


def _random_counts(rng: np.random.Generator, rows: int, n_features: int) -> sp.csr_matrix:
    matrix = sp.random(rows, n_features, density=0.05, format="csr", random_state=rng, dtype=np.float64)
    matrix.data = np.ceil(matrix.data * 3)
    return matrix


def _fit_nb(X, y, alpha: float = 0.1) -> NaiveBayesModel:
    """Plain Naive Bayes (``kind="nb"`` where the model offers other kinds)."""
    kind = {"kind": "nb"} if "kind" in inspect.signature(NaiveBayesModel.fit).parameters else {}
    return NaiveBayesModel.fit(X, y, alpha=alpha, **kind)


def _rows(matrix: sp.csr_matrix) -> SparseRows:
    return SparseRows(matrix.indptr, matrix.indices, matrix.data, matrix.shape[1])


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_numpy_decision_function_equals_sklearn_joint_log_likelihood_difference(alpha):
    rng = np.random.default_rng(7)
    n_features = 512
    X = _random_counts(rng, 60, n_features)
    y = np.array([0, 1] * 30)
    model = _fit_nb(X, y, alpha=alpha)
    assert len(model.columns) < n_features  # some columns unseen: they use default_weight
    reference = MultinomialNB(alpha=alpha, fit_prior=False).fit(X, y)

    X_test = _random_counts(rng, 40, n_features)  # includes columns never seen in training
    jll = reference.predict_joint_log_proba(X_test)
    np.testing.assert_allclose(model.decision_function(_rows(X_test)), jll[:, 1] - jll[:, 0], rtol=0, atol=1e-9)


def test_predict_proba_is_platt_calibrated_decision():
    # Two features, alpha 1, one ham with feature 0 and one spam with feature 1. By hand, as
    # docs/FORMAT.md defines them: r_0 = log(1/3) - log(2/3) = -log 2 and r_1 = log 2, so the rows
    # below have z = -log 2, log 2, 0 and 0; with a = 2, b = -1 their scores are 1/(1 + 4e),
    # 4/(4 + e), 1/(1 + e) and 1/(1 + e), evaluated with `bc -l` (scale=20).
    model = NaiveBayesModel.from_counts(2, 1.0, np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 1.0]))
    model.calib_a, model.calib_b = 2.0, -1.0
    rows = _rows(sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])))
    np.testing.assert_allclose(model.decision_function(rows), [-np.log(2), np.log(2), 0.0, 0.0], rtol=0, atol=1e-12)
    expected = [0.08422380840089739014, 0.59539032480831033517, 0.26894142136999512074, 0.26894142136999512074]
    np.testing.assert_allclose(model.predict_proba(rows), expected, rtol=0, atol=1e-12)


def test_fit_platt_gives_a_positive_slope_to_a_decision_that_ranks_spam_higher():
    rng = np.random.default_rng(3)
    X = _random_counts(rng, 40, 128)
    y = np.array([0, 1] * 20)
    model = _fit_nb(X, y)
    a, _b = fit_platt(model.decision_function(_rows(X)), y)
    assert a > 0


def test_fit_with_one_class_raises():
    X = sp.csr_matrix(np.ones((4, 8)))
    with pytest.raises(ValueError, match="both classes"):
        _fit_nb(X, np.zeros(4, dtype=int))
