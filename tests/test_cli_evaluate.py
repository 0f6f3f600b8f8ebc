"""``spamcli evaluate``: metrics as JSON and as a table, cross-validation, threshold advice."""

from __future__ import annotations

import json

from helpers import SAMPLES, assert_one_line_error, cli_env, run_cli, run_cli_process

METRICS = {"precision", "recall", "f1", "fpr", "auc", "confusion"}


def _evaluate_json(*args, run=run_cli) -> dict:
    result = run("evaluate", *args, "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def test_evaluate_json_reports_overall_and_per_language_metrics(trained_model):
    report = _evaluate_json(SAMPLES / "messages.csv", "--model", trained_model, run=run_cli_process)  # end to end
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


def test_languages_with_as_many_records_come_in_the_order_of_their_codes_whatever_the_hash_seed(trained_model):
    """de and es have 12 records each: before, their order followed the iteration of a set of
    strings, which changes with the process's hash seed (seeds 1 and 3 gave both orders)."""
    args = ("evaluate", SAMPLES / "messages.csv", "--model", trained_model, "--json")
    for seed in ("1", "3"):
        result = run_cli_process(*args, env=cli_env(PYTHONHASHSEED=seed))
        assert result.code == 0, result.stderr
        assert list(json.loads(result.stdout)["by_language"]) == ["en", "de", "es"], seed


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


def _with_stray_languages(tmp_path):
    """The sample file plus three records in languages of one message each (misdetections)."""
    rows = (SAMPLES / "messages.csv").read_text(encoding="utf-8").splitlines()
    lines = [rows[0] + ",lang"] + [row + "," for row in rows[1:]]
    lines += ['"ok see you",ham,xx', '"free prize click",spam,yy', '"thanks",ham,zz']
    path = tmp_path / "stray.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_evaluate_table_is_readable_at_80_columns_with_stray_languages_in_one_other_row(trained_model, tmp_path):
    env = cli_env()
    env["COLUMNS"] = "80"
    result = run_cli("evaluate", _with_stray_languages(tmp_path), "--model", trained_model, env=env)
    assert result.code == 0, result.stderr
    assert "…" not in result.stdout  # Rich truncates a number to "0.…" when the table is too wide
    rows: dict[str, list[str]] = {}  # first table's rows by group
    for line in result.stdout.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line.split())
    assert rows["all"][1] == "67"
    assert "other" in rows and rows["other"][1] == "(3)" and rows["other"][2] == "3"
    for lang in ("xx", "yy", "zz"):
        assert lang not in rows
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    report = _evaluate_json(_with_stray_languages(tmp_path), "--model", trained_model)
    assert {"xx", "yy", "zz"} <= set(report["by_language"])  # JSON keeps every language
    assert sorted(report["other_languages"]) == ["xx", "yy", "zz"]


def test_evaluate_keeps_only_the_worst_errors_not_every_text():
    from spamcli.api import SpamFilter
    from spamcli.evaluation import evaluate_model
    from spamcli.records import ReadOptions, read_records

    records = list(read_records(SAMPLES / "messages.csv", ReadOptions(need_label=True)))
    result = evaluate_model(SpamFilter.load(), records, errors=2)
    all_errors = evaluate_model(SpamFilter.load(), records, errors=1000)
    assert len(result.false_negatives) == 2
    assert result.false_negatives == all_errors.false_negatives[:2]  # the worst two, lowest scores first
    assert [e.score for e in all_errors.false_negatives] == sorted(e.score for e in all_errors.false_negatives)
    assert result.overall == all_errors.overall


def test_evaluate_does_not_hold_the_input_in_memory():
    import tracemalloc

    from spamcli.api import SpamFilter
    from spamcli.evaluation import evaluate_model
    from spamcli.records import Record

    spam_filter = SpamFilter.load()

    def records():  # 3,000 distinct 8 kB records: 24 MB of text that evaluation must not keep
        for i in range(3000):
            yield Record(id=i, text=f"message {i} " + "lorem ipsum dolor " * 450, label=i % 2)

    spam_filter.score(["warm up the lazily built parts"])
    tracemalloc.start()
    result = evaluate_model(spam_filter, records(), errors=3, batch_size=64)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.overall.n == 3000
    assert peak < 8_000_000, peak
