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


def _views_by_scipy(model: NaiveBayesModel, X: sp.csr_matrix) -> sp.csr_matrix:
    """The regression's training matrix as the module docstring defines it, built with scipy's
    slicing and stacking (the way it was built before the direct construction)."""
    sub = X[:, model.columns].astype(np.float64)
    weighted = sub.multiply(model.sparse_weights()).tocsr()

    def scaled(matrix, floor):
        norms = np.sqrt(np.maximum(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel(), floor))
        return sp.diags(np.where(norms > 0, 1 / np.where(norms > 0, norms, 1), 0)) @ matrix

    return sp.hstack([scaled(sub, model.floor_plain), scaled(weighted, model.floor_nb)]).tocsr()


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_regression_views_equal_the_scipy_definition_with_unseen_columns_and_empty_rows(backend, monkeypatch):
    import spamcli.text as text

    if backend == "c" and text._C is None:
        pytest.skip("C extension not built")
    if backend == "numpy":
        monkeypatch.setattr(text, "_C", None)
    rng = np.random.default_rng(3)
    X = sp.random(80, 400, density=0.04, format="csr", random_state=rng, dtype=np.float32)
    X.data[:] = 1.0
    X = sp.vstack([X, sp.csr_matrix((2, 400), dtype=np.float32)]).tocsr()  # two empty rows
    y = np.array([0, 1] * 41)
    model = _fit_nb(X[:50], y[:50])  # fitted on part of the rows: the rest holds unseen columns
    model.floor_plain, model.floor_nb = 100.0, 3.0
    assert len(model.columns) < 400
    got = model._regression_views(X)
    want = _views_by_scipy(model, X)
    assert got.shape == want.shape == (82, 2 * len(model.columns))
    assert got.nnz == want.nnz
    np.testing.assert_allclose(got.toarray(), want.toarray(), rtol=1e-12, atol=1e-15)


def test_nblr_fit_leaves_the_warning_filters_as_they_were_when_fitted_from_threads():
    """Fits on several threads at once are each the same as alone (the C solver's generator is its
    own; scikit-learn's liblinear shares one per process), and leave the warning filters alone."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    import spamcli.text as text

    if text._C is None:
        pytest.skip("C extension not built: scikit-learn's liblinear shares its generator between threads")

    rng = np.random.default_rng(5)
    X = _random_counts(rng, 300, 256)
    y = np.array([0, 1] * 150)
    before = list(warnings.filters)
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: NaiveBayesModel.fit(X, y, kind="nblr"), range(8)))
    assert list(warnings.filters) == before
    assert all(np.array_equal(m.coef_nb, models[0].coef_nb) for m in models)


def test_the_c_regression_matches_scikit_learns_liblinear_on_the_same_problem(monkeypatch):
    """The C solver is liblinear's algorithm with another generator: on the same data the two fits
    give the same ranking and nearly the same weights."""
    import spamcli.text as text

    if text._C is None:
        pytest.skip("C extension not built")
    rng = np.random.default_rng(11)
    X = _random_counts(rng, 400, 300)
    X.data[:] = 1.0
    signal = np.asarray(X[:, :20].sum(axis=1)).ravel() - np.asarray(X[:, 20:40].sum(axis=1)).ravel()
    y = (signal + rng.normal(0, 0.5, 400) > 0).astype(int)
    in_c = NaiveBayesModel.fit(X, y, kind="nblr")
    monkeypatch.setattr(text, "_C", None)
    in_sklearn = NaiveBayesModel.fit(X, y, kind="nblr")
    rows = _rows(X)
    z_c, z_sk = in_c.decision_function(rows), in_sklearn.decision_function(rows)
    assert np.corrcoef(z_c, z_sk)[0, 1] > 0.999
    assert abs(in_c.intercept - in_sklearn.intercept) < 0.05 * max(1.0, abs(in_sklearn.intercept))


@pytest.mark.parametrize("kind", ["nb", "nblr"])
def test_a_fit_on_some_rows_in_place_equals_a_fit_on_a_copy_of_them(kind):
    rng = np.random.default_rng(17)
    X = _random_counts(rng, 240, 200)
    y_all = rng.integers(0, 2, 240)
    rows = np.flatnonzero(rng.random(240) < 0.6)
    in_place = NaiveBayesModel.fit(X, y_all[rows], kind=kind, rows=rows)
    copied = NaiveBayesModel.fit(X[rows], y_all[rows], kind=kind)
    np.testing.assert_array_equal(in_place.columns, copied.columns)
    np.testing.assert_array_equal(in_place.counts, copied.counts)
    z = _rows(X)
    np.testing.assert_array_equal(in_place.decision_function(z), copied.decision_function(z))


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
