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
    rng = np.random.default_rng(3)
    X = _random_counts(rng, 40, 128)
    y = np.array([0, 1] * 20)
    model = _fit_nb(X, y)
    z = model.decision_function(_rows(X))
    model.calib_a, model.calib_b = fit_platt(z, y)
    expected = 1.0 / (1.0 + np.exp(-(model.calib_a * z + model.calib_b)))
    np.testing.assert_allclose(model.predict_proba(_rows(X)), expected, rtol=0, atol=1e-12)
    assert model.calib_a > 0


def test_fit_with_one_class_raises():
    X = sp.csr_matrix(np.ones((4, 8)))
    with pytest.raises(ValueError, match="both classes"):
        _fit_nb(X, np.zeros(4, dtype=int))


def test_a_small_batch_scores_without_the_lookup_tables_and_exactly_as_with_them():
    """A few messages are scored from tables of their own columns (no ~20 ms build of the tables
    over every feature): the very same scores, bit for bit, as once the tables are built."""
    from helpers import DEFAULT_MODEL, SAMPLES

    from spamcli.bundle import load_bundle

    if not (DEFAULT_MODEL / "manifest.json").is_file():
        pytest.skip("models/default not built yet")
    ctx = load_bundle(DEFAULT_MODEL).contexts["content"]
    texts = (SAMPLES / "ham.txt").read_text().splitlines() + (SAMPLES / "spam.txt").read_text().splitlines()
    texts += ["สวัสดีครับ รับเงินฟรี คลิกเลย", "Привет, как дела? Выиграй приз сейчас", "नमस्ते, आज शाम मिलते हैं", "hi"]
    alone = [ctx.score([text])[0] for text in texts]
    assert {v.model for v in alone} >= {"multi", "th", "ru", "hi"}
    assert not any("slot" in model._dense for model in ctx.models.values())  # no tables were built
    ctx.prepare()
    assert all("slot" in model._dense for model in ctx.models.values())
    assert [ctx.score([text])[0].score for text in texts] == [v.score for v in alone]
    assert [v.score for v in ctx.score(texts)] == [v.score for v in alone]
