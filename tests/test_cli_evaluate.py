"""``spamcli evaluate``: metrics as JSON and as a table, cross-validation, threshold advice."""

from __future__ import annotations

import json

from helpers import SAMPLES, assert_one_line_error, run_cli

METRICS = {"precision", "recall", "f1", "fpr", "auc", "confusion"}


def _evaluate_json(*args) -> dict:
    result = run_cli("evaluate", *args, "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def test_evaluate_json_reports_overall_and_per_language_metrics(trained_model):
    report = _evaluate_json(SAMPLES / "messages.csv", "--model", trained_model)
    assert report["overall"]["n"] == 64
    assert {"en", "es", "de"} <= set(report["by_language"])
    for group in [report["overall"], *report["by_language"].values()]:
        assert set(group) >= METRICS
        assert set(group["confusion"]) == {"tp", "fp", "tn", "fn"}
        assert sum(group["confusion"].values()) == group["n"]
        for name in ("precision", "recall", "f1", "fpr", "auc"):
            assert group[name] is None or 0.0 <= group[name] <= 1.0
        for name in ("recall", "fpr"):  # the 95% interval brackets the measured rate
            low, high = group[name + "_ci95"]
            assert 0.0 <= low <= group[name] <= high <= 1.0
    assert report["overall"]["auc"] > 0.9  # scored on its own training data


def test_evaluate_recommends_a_threshold_for_the_target_precision(trained_model):
    report = _evaluate_json(SAMPLES / "messages.jsonl", "--model", trained_model, "--target-precision", "0.8")
    assert report["target_precision"] == 0.8
    recommended = report["recommended_spam_threshold"]
    assert recommended is not None
    assert recommended["precision"] >= 0.8
    assert 0.0 <= recommended["threshold"] <= 1.0


def test_evaluate_without_json_prints_a_table(trained_model):
    result = run_cli("evaluate", SAMPLES / "messages.csv", "--model", trained_model)
    assert result.code == 0, result.stderr
    for word in ("precision", "recall", "F1", "FP rate", "AUC", "recommended spam threshold", "95% intervals"):
        assert word in result.stdout
    for line in result.stdout.splitlines():
        assert not line.startswith("{")


def test_evaluate_cv_3_cross_validates_on_the_file(tmp_path):
    report = _evaluate_json(SAMPLES / "messages.csv", "--cv", "3")
    assert report["overall"]["n"] == 64
    assert set(report["overall"]) >= METRICS
    assert report["overall"]["auc"] is not None


def test_evaluate_unlabeled_file_exits_3(trained_model, tmp_path):
    path = tmp_path / "unlabeled.txt"
    path.write_text("hello\nfree money\n", encoding="utf-8")
    result = run_cli("evaluate", path, "--model", trained_model)
    assert_one_line_error(result, 3)


def test_evaluate_cv_below_2_is_a_usage_error():
    result = run_cli("evaluate", SAMPLES / "messages.csv", "--cv", "1")
    assert_one_line_error(result, 2)
