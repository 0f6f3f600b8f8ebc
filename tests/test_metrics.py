"""Metrics on numpy alone agree with scikit-learn; threshold helpers pick the documented cut."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from spamcli.metrics import (
    confusion,
    recall_at_fpr,
    report,
    roc_auc,
    spam_threshold_for_fpr,
    threshold_for_precision,
    wilson_interval,
)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("decimals", [1, 2, 6])  # 1 decimal: many ties
def test_roc_auc_equals_sklearn_including_ties(seed, decimals):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    scores = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.25), 0, 1), decimals)
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_roc_auc_of_one_class_is_none():
    assert roc_auc(np.ones(5), np.linspace(0, 1, 5)) is None


def test_spam_threshold_for_fpr_is_the_lowest_cut_within_the_rate():
    y = np.zeros(10, dtype=int)
    scores = np.linspace(0.1, 1.0, 10)  # ham scored 0.1 ... 1.0
    threshold = spam_threshold_for_fpr(y, scores, max_fpr=0.1, floor=0.0)
    assert 0.9 < threshold <= 1.0
    assert np.mean(scores >= threshold) <= 0.1
    assert np.mean(scores >= 0.9) > 0.1  # any lower cut flags more ham than allowed


def test_spam_threshold_for_fpr_respects_the_floor():
    y = np.array([0, 0, 1, 1])
    scores = np.array([0.01, 0.02, 0.9, 0.95])
    assert spam_threshold_for_fpr(y, scores, max_fpr=0.0, floor=0.5) == 0.5


def test_threshold_for_precision_maximises_recall_at_target():
    y = np.array([1, 1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    best = threshold_for_precision(y, scores, target=0.75)
    assert best == {"threshold": 0.6, "precision": 0.75, "recall": 1.0, "fpr": pytest.approx(1 / 3)}
    assert threshold_for_precision(y, scores, target=1.0)["threshold"] == 0.8
    assert threshold_for_precision(np.array([0, 1]), np.array([0.9, 0.1]), target=0.99) is None


def test_threshold_for_precision_never_cuts_between_tied_scores():
    y = np.array([1, 0, 1])
    scores = np.array([0.8, 0.8, 0.1])
    assert threshold_for_precision(y, scores, target=1.0) is None


def test_recall_at_fpr_counts_spam_above_the_strict_cut():
    y = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 0.5])
    assert recall_at_fpr(y, scores, 0.0) == 0.5


def test_confusion_and_report_treat_unsure_as_not_flagged():
    y = np.array([1, 1, 0, 0])
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    rep = report(y, scores, ["spam", "unsure", "unsure", "ham"])
    assert rep.confusion == {"tp": 1, "fp": 0, "tn": 2, "fn": 1}
    assert (rep.precision, rep.recall, rep.fpr, rep.unsure_rate) == (1.0, 0.5, 0.0, 0.5)
    assert rep.f1 == pytest.approx(2 / 3)
    c = confusion(y, np.zeros(4, dtype=bool))
    assert c.precision is None and c.f1 is None


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson, no correction)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # 0 false positives on 196 genuine comments: a true rate up to 1.9% fits
        (0, 196, 0.0, 0.0192),
    ],
)
def test_wilson_interval_matches_published_values(successes, n, low, high):
    got = wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_edges_are_exact_and_empty_is_none():
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    low, high = wilson_interval(50, 100)
    assert low < 0.5 < high and high - 0.5 == pytest.approx(0.5 - low)


def test_report_carries_intervals_around_recall_and_fp_rate():
    y = np.array([1] * 40 + [0] * 60)
    labels = ["spam"] * 30 + ["ham"] * 10 + ["spam"] * 3 + ["ham"] * 57
    rep = report(y, np.linspace(0, 1, 100), labels)
    assert rep.recall == 0.75 and rep.fpr == 0.05
    assert rep.recall_ci95 == wilson_interval(30, 40) and rep.fpr_ci95 == wilson_interval(3, 60)
    assert rep.recall_ci95[0] < 0.75 < rep.recall_ci95[1]
    assert rep.to_dict()["fpr_ci95"] == [round(x, 4) for x in wilson_interval(3, 60)]
    assert report(np.array([0, 0]), np.array([0.1, 0.2]), ["ham", "ham"]).recall_ci95 is None
