"""Pins the quality levers: calibration, thresholds, explanation, class/domain balance, unseen languages."""

from __future__ import annotations

import random

import numpy as np
import pytest

from spamcli.metrics import brier, reliability
from spamcli.model import fit_platt
from spamcli.records import Record
from spamcli.router import SPAM, UNSURE, Thresholds
from spamcli.training import TrainOptions, balanced_weights, train_context

SPAM_WORDS = ["win", "free", "prize", "claim", "cash", "urgent", "offer", "click", "bonus", "casino", "loan", "now"]
HAM_WORDS = ["lunch", "meeting", "tomorrow", "thanks", "see", "you", "later", "dinner", "project", "mum", "call"]


def _records(n: int, spam_share: float = 0.5, seed: int = 1, lang: str = "en") -> list[Record]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = int(rng.random() < spam_share)
        words = rng.sample(SPAM_WORDS if label else HAM_WORDS, 5) + rng.sample(SPAM_WORDS + HAM_WORDS, 2)
        out.append(Record(id=i, text=" ".join(words) + f" n{i}", lang=lang, label=label))
    return out


@pytest.fixture(scope="module")
def trained():
    return train_context(_records(400), TrainOptions(min_per_class=5, dedupe=False))


def test_platt_scaling_recovers_the_log_likelihood_ratio_of_balanced_gaussians():
    rng = np.random.default_rng(0)
    z = np.r_[rng.normal(-2, 1, 4000), rng.normal(2, 1, 4000)]
    y = np.r_[np.zeros(4000), np.ones(4000)]
    a, b = fit_platt(z, y)
    assert a == pytest.approx(4.0, rel=0.1)  # LLR of N(+-2, 1) is 4z
    assert abs(b) < 0.1


def test_platt_scaling_weighs_classes_equally_so_imbalance_does_not_shift_the_score():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    z = np.r_[rng.normal(-2, 1, 500), rng.normal(2, 1, 4500)]  # 90% spam, the platform-trap mix
    y = np.r_[np.zeros(500), np.ones(4500)]
    a, b = fit_platt(z, y)
    reference = LogisticRegression(C=1e6, class_weight="balanced").fit(z[:, None], y)
    assert a == pytest.approx(reference.coef_[0, 0], rel=0.05)
    assert b == pytest.approx(reference.intercept_[0], abs=0.05)
    unbalanced = LogisticRegression(C=1e6).fit(z[:, None], y)
    assert unbalanced.intercept_[0] - b > 1.5  # what ignoring the imbalance would have added


def test_platt_scaling_never_inverts_a_model_that_ranks_worse_than_chance():
    z = np.array([3.0, 2.0, 1.0, -1.0, -2.0, -3.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    a, _b = fit_platt(z, y)
    assert a > 0


def test_calibrated_scores_are_reliable_on_held_out_synthetic_data(trained):
    ctx, _ = trained
    test = _records(400, seed=9)
    scores = np.array([v.score for v in ctx.score([r.text for r in test], [r.lang for r in test])])
    y = np.array([r.label for r in test])
    assert brier(y, scores) < 0.05
    for row in reliability(y, scores):
        if row["count"] >= 50:
            assert abs(row["mean_score"] - row["spam_fraction"]) < 0.15


def test_ninety_percent_spam_training_data_does_not_flag_genuine_messages():
    ctx, report = train_context(_records(600, spam_share=0.9, seed=3), TrainOptions(min_per_class=5, dedupe=False))
    assert any("imbalanced" in w for w in report.warnings)
    ham = [r for r in _records(300, spam_share=0.0, seed=4)]
    labels = [v.label for v in ctx.score([r.text for r in ham], [r.lang for r in ham])]
    assert labels.count(SPAM) / len(labels) <= 0.02


def test_thresholds_leave_an_unsure_band_between_ham_and_spam(trained):
    ctx, report = trained
    t = report.thresholds
    assert 0 < t.ham <= 0.5 <= t.spam < 1
    assert Thresholds(0.3, 0.7).label(0.5) == UNSURE


def test_explanation_names_the_spam_words_with_positive_weights_first(trained):
    ctx, _ = trained
    verdict = ctx.score(["win free cash prize claim now"], ["en"], explain=3)[0]
    assert verdict.label == SPAM
    tokens = [tok for tok, _ in verdict.reasons]
    weights = [w for _, w in verdict.reasons]
    assert weights == sorted(weights, key=lambda w: -abs(w))
    assert all(w > 0 for w in weights)
    assert set(tokens) & {"win", "free", "cash", "prize", "claim", "now", "free cash", "win free"}


def test_explanation_of_a_genuine_message_points_to_ham_words(trained):
    ctx, _ = trained
    verdict = ctx.score(["thanks see you at dinner tomorrow"], ["en"], explain=2)[0]
    assert all(w < 0 for _, w in verdict.reasons)


def test_domain_weights_give_each_domain_and_class_the_same_total_weight():
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    domains = np.array(["sms"] * 4 + ["comments"] * 6, dtype=object)
    w = balanced_weights(y, domains)
    assert w.mean() == pytest.approx(1.0)
    totals = {(d, c): w[(domains == d) & (y == c)].sum() for d in ("sms", "comments") for c in (0, 1)}
    assert max(totals.values()) == pytest.approx(min(totals.values()))
    assert balanced_weights(y, None) is None


def test_a_language_without_genuine_training_examples_is_only_unsure_below_the_strict_threshold(trained):
    ctx, _ = trained
    assert ctx.known_languages == ["en"]
    text = "win free cash prize claim now"
    known = ctx.score([text], ["en"])[0]
    unseen = ctx.score([text], ["tr"])[0]
    assert known.label == SPAM
    expected = SPAM if unseen.score >= ctx.unseen_language_threshold else UNSURE
    assert unseen.label == expected
    ctx_strict = ctx.__class__(**{**ctx.__dict__, "unseen_language_threshold": 1.01, "_pipeline": None})
    assert ctx_strict.score([text], ["tr"])[0].label == UNSURE


def test_langdetect_backend_is_seeded_and_deterministic():
    from spamcli.langid import new_detector

    texts = ["Das ist ein Test der Spracherkennung", "Hola amigo, como estas hoy?", "Call me", ""]
    detector = new_detector("langdetect")
    first = detector.detect(texts)
    assert first == detector.detect(texts)
    assert first[0][0] == "de" and first[1][0] == "es"
    assert first[3] == ("und", 0.0)


def test_the_shipped_model_does_not_flag_short_genuine_greetings():
    from spamcli import SpamFilter
    from spamcli.bundle import default_model_dir

    if not (default_model_dir() / "manifest.json").exists():
        pytest.skip("no shipped default model")
    spam_filter = SpamFilter.load()
    greetings = ["hello", "hi", "yes", "ok", "thanks", "good morning", "see you tomorrow", "lol", "no"]
    verdicts = spam_filter.score(greetings)
    assert [v.label for v in verdicts if v.label == SPAM] == []
    spam = spam_filter.score(["WIN a FREE iPhone, claim at http://x.example"])[0]
    assert spam.label == SPAM
