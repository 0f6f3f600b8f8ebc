"""False-positive budgets: spam thresholds stored per held-out FP rate at training, picked with
``classify --max-fpr`` / ``SpamFilter.with_fp_budget`` without retraining."""

from __future__ import annotations

import json

import pytest
from helpers import DEFAULT_MODEL, SAMPLES, assert_one_line_error, run_cli

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


# Sample texts (and pairs of them) that the shipped model (models/default, created
# 2026-12-02T10:58:30) scores between the default spam cut of their routed model and its cut at a
# 5% false-positive budget: labelled spam only with --max-fpr 0.05. Found once by scoring every text
# of datasets/samples/messages.csv and every pair of neighbours; scores as classify printed them,
# all routed to "multi" (cuts 0.9265 and 0.5 in the manifest). The small test model scores the
# samples 0 or 1: nothing falls between its cuts.
BETWEEN_THE_CUTS = {
    "URGENT: your account is suspended. Verify at http://secure-login.example now": 0.8748,
    "Earn $5000 a week working from home, no experience, sign up free": 0.8018,
    "Hot singles in your area are waiting for you, click here": 0.6569,
    "I agree with the previous comment about the park renovation.": 0.6072,
    "Let me know when you are free to talk about the project.": 0.8888,
    "Casino bonus 200% on your first deposit, play now and win big "
    "Hey, are we still meeting for lunch tomorrow?": 0.8278,
    "Schnelle Kredite ohne Schufa, Geld noch heute auf Ihrem Konto "
    "Exklusives Angebot: 90% Rabatt auf Luxusuhren, jetzt kaufen": 0.8896,
}


def _manifest_cuts(item: dict) -> tuple[float, float]:
    """The default spam cut and the 5% one of the model that scored ``item``, from the manifest."""
    ctx = json.loads((DEFAULT_MODEL / "manifest.json").read_text())["contexts"]["content"]
    entry = ctx["models"][item["model"]]
    return entry["thresholds"]["spam"], entry.get("spam_at_fpr", ctx["spam_at_fpr"])["0.05"]


def test_classify_max_fpr_flags_what_the_default_does_not():
    stdin = "\n".join(BETWEEN_THE_CUTS) + "\n"
    default = run_cli("classify", "--jobs", "1", stdin=stdin)
    loose = run_cli("classify", "--jobs", "1", "--max-fpr", "0.05", stdin=stdin)
    assert default.code == loose.code == 0, loose.stderr
    assert [i["score"] for i in default.json_lines()] == list(BETWEEN_THE_CUTS.values())
    for item in default.json_lines():
        default_cut, loose_cut = _manifest_cuts(item)
        assert loose_cut <= item["score"] < default_cut, (item, "the shipped model changed: find such texts again")
    assert all(item["label"] != SPAM for item in default.json_lines())
    assert all(item["label"] == SPAM for item in loose.json_lines())
    assert [i["score"] for i in default.json_lines()] == [i["score"] for i in loose.json_lines()]


def test_evaluate_max_fpr_counts_those_as_caught(tmp_path):
    path = tmp_path / "spam.csv"
    path.write_text("text,label\n" + "".join(f'"{t}",spam\n' for t in BETWEEN_THE_CUTS), encoding="utf-8")
    runs = [run_cli("evaluate", path, *extra, "--json") for extra in ([], ["--max-fpr", "0.05"])]
    assert all(r.code == 0 for r in runs), runs[0].stderr
    default, loose = (json.loads(r.stdout)["overall"] for r in runs)
    assert default["recall"] == 0.0 and loose["recall"] == 1.0


@pytest.mark.parametrize(
    "extra",
    [["--max-fpr", "0.03", "--spam-threshold", "0.9"], ["--max-fpr", "0.03", "--ham-threshold", "0.2"]],
)
def test_a_budget_and_explicit_thresholds_together_are_a_usage_error(trained_model, extra):
    assert_one_line_error(run_cli("classify", "--model", trained_model, *extra, stdin="hi\n"), 2)


def test_evaluate_cv_takes_no_budget_or_thresholds(trained_model):
    for extra in (["--max-fpr", "0.03"], ["--spam-threshold", "0.9"]):
        result = run_cli("evaluate", SAMPLES / "messages.csv", "--cv", "3", *extra)
        assert_one_line_error(result, 2)


def test_the_api_refuses_a_budget_on_explicit_thresholds(trained_model):
    with pytest.raises(ValueError, match="explicitly"):
        SpamFilter.load(trained_model).with_thresholds(ham=0.3).with_fp_budget(0.05)


def test_max_bytes_below_one_is_a_usage_error(trained_model):
    assert_one_line_error(run_cli("classify", "--model", trained_model, "--max-bytes", "0", stdin="hi\n"), 2)


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
