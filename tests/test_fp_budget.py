"""False-positive budgets: spam thresholds stored per held-out FP rate at training, picked with
``classify --max-fpr`` / ``SpamFilter.with_fp_budget`` without retraining."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error, run_cli

from spamcli import SpamFilter
from spamcli.router import FP_BUDGETS, SPAM, fpr_key


def _budget_tables(model_dir) -> dict[str, dict[str, float]]:
    ctx = json.loads((model_dir / "manifest.json").read_text())["contexts"]["content"]
    tables = {"": ctx["spam_at_fpr"]}
    tables.update({name: entry["spam_at_fpr"] for name, entry in ctx["models"].items() if "spam_at_fpr" in entry})
    return tables


def test_training_stores_a_spam_threshold_per_budget_the_default_one_among_them(trained_model):
    manifest = json.loads((trained_model / "manifest.json").read_text())["contexts"]["content"]
    tables = _budget_tables(trained_model)
    assert set(tables[""]) == {fpr_key(b) for b in FP_BUDGETS}
    # trained with the default --max-fpr 0.005: that entry is the default spam threshold
    assert tables[""]["0.005"] == manifest["thresholds"]["spam"]
    for name, table in tables.items():
        cuts = [table[fpr_key(b)] for b in FP_BUDGETS]
        assert cuts == sorted(cuts, reverse=True), name  # a larger budget never asks for a higher score
        assert all(0.5 <= c <= 0.99 for c in cuts)
        if name:
            assert table["0.005"] == manifest["models"][name]["thresholds"]["spam"]


def test_a_budget_replaces_each_models_spam_threshold_and_labels_follow(trained_model):
    base = SpamFilter.load(trained_model)
    loose = base.with_fp_budget(0.05)
    tables = _budget_tables(trained_model)
    for name in base.model.models:
        key = name if name in base.model.model_thresholds else ""
        assert loose.model.thresholds_for(name).spam == tables[key]["0.05"]
        assert loose.model.thresholds_for(name).ham <= loose.model.thresholds_for(name).spam
    assert base.model.thresholds.spam == tables[""]["0.005"]  # the original is untouched
    texts = ["WIN a FREE iPhone now, click http://x.example", "see you at lunch tomorrow", "call me later"]
    for strict, lenient in zip(base.score(texts), loose.score(texts)):
        assert strict.score == lenient.score
        if lenient.score >= loose.model.thresholds_for(lenient.model).spam:
            assert lenient.label == SPAM
        if strict.label == SPAM:
            assert lenient.label == SPAM


def test_classify_max_fpr_labels_by_the_routed_models_stored_threshold(trained_model):
    tables = _budget_tables(trained_model)
    texts = "WIN cash now, text WIN to 80082\nhello, lunch at noon?\nFree entry: call 0900 now\n"
    out = run_cli("classify", "--model", trained_model, "--max-fpr", "0.03", "--jobs", "1", stdin=texts)
    assert out.code == 0, out.stderr
    items = out.json_lines()
    assert len(items) == 3
    for item in items:
        cut = tables.get(item["model"], tables[""])["0.03"]
        assert (item["label"] == SPAM) == (item["score"] >= cut), (item, cut)


@pytest.mark.parametrize("value", ["0.04", "0", "1"])
def test_a_budget_that_was_not_stored_is_a_usage_error(trained_model, value):
    assert_one_line_error(run_cli("classify", "--model", trained_model, "--max-fpr", value, stdin="hi\n"), 2)


def test_a_model_trained_before_budgets_existed_says_so(model_copy):
    path = model_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    ctx = manifest["contexts"]["content"]
    ctx.pop("spam_at_fpr")
    for entry in ctx["models"].values():
        entry.pop("spam_at_fpr", None)
    path.write_text(json.dumps(manifest))
    assert run_cli("classify", "--model", model_copy, stdin="hi\n").code == 0  # still loads and scores
    result = run_cli("classify", "--model", model_copy, "--max-fpr", "0.03", stdin="hi\n")
    assert_one_line_error(result, 2)
    assert "retrain" in result.stderr


def test_evaluate_at_a_larger_budget_catches_at_least_as_much_spam(trained_model):
    from helpers import SAMPLES

    runs = [
        run_cli("evaluate", "--model", trained_model, SAMPLES / "messages.csv", *extra, "--json")
        for extra in ([], ["--max-fpr", "0.05"])
    ]
    assert all(r.code == 0 for r in runs), runs[0].stderr
    default, loose = (json.loads(r.stdout)["overall"] for r in runs)
    assert loose["recall"] >= default["recall"]
    assert loose["fpr"] >= default["fpr"]
