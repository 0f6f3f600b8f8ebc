"""The site regression fitted on a moderation export's decisions (spamcli/site_regression.py)."""

from __future__ import annotations

import numpy as np
import pytest

from spamcli import site, site_regression


def _decisions(n: int, seed: int = 3) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` decisions: spam hold columns from 1-40, ham from 30-70 (a shared middle), 8 each."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(np.float64)
    columns = [np.unique(rng.integers(1, 41, 8) if label else rng.integers(30, 71, 8)) for label in y]
    return columns, y


def test_each_held_out_score_comes_from_a_fit_that_did_not_see_that_decision():
    columns, y = _decisions(60)
    (keys, weights), held_out = site_regression.fit(columns, y)
    x = site_regression._matrix(columns, keys)
    folds = np.arange(60) % site_regression.FOLDS
    for fold in (0, 3):
        train = folds != fold
        fold_weights = site_regression._weights(x[train], y[train])
        assert held_out[~train] == pytest.approx(x[~train] @ fold_weights, abs=1e-12)
    assert np.array_equal(keys, np.unique(np.concatenate(columns)))
    assert (held_out[y == 1] > 0).mean() > 0.9 and (held_out[y == 0] < 0).mean() > 0.9  # it learned the split
    again = site_regression.fit(columns, y)  # deterministic: forgetting an export restores scores bit for bit
    assert np.array_equal(again[0][1], weights) and np.array_equal(again[1], held_out)


def test_above_the_cap_the_fit_sees_a_sample_and_scores_the_rest(monkeypatch):
    columns, y = _decisions(90)
    monkeypatch.setattr(site_regression, "MAX_DECISIONS", 60)
    (keys, weights), held_out = site_regression.fit(columns, y)
    (sample_keys, sample_weights), sample_held_out = site_regression.fit(columns[:60], y[:60])
    assert np.array_equal(keys, sample_keys) and np.array_equal(weights, sample_weights)
    assert np.array_equal(held_out[:60], sample_held_out)
    assert held_out[60:] == pytest.approx(site_regression._matrix(columns[60:], keys) @ weights, abs=1e-12)


def test_a_fold_of_one_class_fits_nothing():
    columns, _ = _decisions(10)
    y = np.zeros(10)
    y[0] = 1.0  # one spam: the folds without it hold ham only
    assert site_regression.fit(columns, y) == (None, pytest.approx(np.zeros(10)))


def test_the_regression_adds_to_the_layer_and_explain_names_its_words():
    regression = site.SiteRegression(np.array([2, 5]), np.array([1.5, -0.5]), 2.0)
    layer = site.SiteLayer(np.array([1, 2]), np.array([1.0, 0.0]), np.array([0.0, 2.0]), 10, 0.8, 0.3, regression)
    assert layer.is_calibrated
    deltas = layer.deltas((np.array([0.01, 0.01]), np.array([0.01, 0.01])))
    row = np.array([1, 2, 5, 9])
    plain = site.SiteLayer(layer.columns, layer.spam, layer.ham, 10, 0.8, 0.3)
    expected = plain.shift(np.array([0, 4]), row, deltas)[0] + 2.0 * (1.5 - 0.5) / np.sqrt(4)
    assert layer.shift(np.array([0, 4]), row, deltas)[0] == pytest.approx(expected, abs=1e-12)
    contributions = layer.contributions(row, deltas)
    assert contributions.sum() == pytest.approx(expected - 0.3, abs=1e-12)  # all but the offset
    assert contributions[2] == pytest.approx(-0.5, abs=1e-12) and contributions[3] == 0.0


_REFIT = """
import hashlib, sys
from spamcli import site, site_calibration
from spamcli.bundle import load_bundle
ctx = load_bundle(sys.argv[1], with_site=False).context("content")
fitted = site_calibration.refit(site.connect(sys.argv[1]), ctx, "content")
regression = site.regression_of(site.connect(sys.argv[1]), "content")
weights = hashlib.sha256(regression.weights).hexdigest() if regression else None
print(repr(fitted["gain"]), repr(fitted["offset"]), repr(fitted["regression_gain"]), weights)
"""


@pytest.mark.slow
def test_a_refit_repeats_bit_for_bit_whatever_the_threads(tmp_path, datasets_dir):
    """Summed by two threads, the fits of an export of real messages differed in their last bits from
    one process to the next (a synthetic export is too small to be summed in parallel), and forgetting
    a later export would not have returned the earlier calibration exactly."""
    import random

    from helpers import outputs_by_thread_count

    from spamcli.datasets import load
    from spamcli.learning import Teacher, ensure_site_model

    records = [
        r
        for name in ("sms_multilingual", "telegram_tgspam", "youtube_spam_collection", "indonesian_sms")
        for r in load(name, datasets_dir)
        if r.label is not None and r.text.strip()
    ]
    random.Random(1).shuffle(records)  # a site's mixed traffic, some of it new to the shipped model
    records = records[:2000]
    model = tmp_path / "site"
    ensure_site_model(model)
    teacher = Teacher(model)
    try:
        teacher.teach_decisions([r.text for r in records], [r.label for r in records])
    finally:
        teacher.close()
    runs = outputs_by_thread_count(_REFIT, model)
    assert len(runs) == 1, runs


def test_a_layer_looks_each_column_up_once_for_itself_and_its_regression():
    rng = np.random.default_rng(5)
    columns = np.unique(rng.integers(0, 5_000, 800))
    spam, ham = rng.integers(0, 3, len(columns)).astype(float), rng.integers(0, 3, len(columns)).astype(float)
    regression = site.SiteRegression(columns[::3].copy(), rng.normal(0, 1, len(columns[::3])), 1.7)  # the layer's
    layer = site.SiteLayer(columns, spam, ham, 40, 0.6, -0.4, regression)
    plain = site.SiteLayer(columns, spam, ham, 40, 0.6, -0.4)
    deltas = layer.deltas((np.full(len(columns), 0.02), np.full(len(columns), 0.03)))
    rows = [np.unique(rng.integers(0, 6_000, int(k))) for k in rng.integers(1, 300, 50)]
    indptr, indices = np.concatenate([[0], np.cumsum([len(r) for r in rows])]), np.concatenate(rows)
    assert layer._regression_weights is not None  # the one-lookup path
    expected = plain.shift(indptr, indices, deltas) + regression.shift(indptr, indices)
    assert np.array_equal(layer.shift(indptr, indices, deltas), expected)
