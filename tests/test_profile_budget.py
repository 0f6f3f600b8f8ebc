"""False-positive budgets for profiles: ``classify/evaluate --context profile --max-fpr`` label at
the profile score's spam threshold stored per budget in the model's profile scoring
(``spam_at_fpr``), not at the bio text model's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_cli

from spamcli.classifying import load_scorer
from spamcli.errors import UsageError
from spamcli.router import FP_BUDGETS, Thresholds, fpr_key

# The text weight is 0, so a profile's score depends on its signals alone: a filled bio with a link
# scores sigmoid(1.0) = 0.7311, one without any signal sigmoid(0) = 0.5.
FIXED_SCORING = {
    "source": "default",
    "weights": {"text": 0.0, "url_in_bio": 1.0, "contact_in_bio": 0.0, "personal_url": 0.0},
    "bias": 0.0,
    "thresholds": {"ham": 0.4, "spam": 0.9},
    "spam_at_fpr": {"0.005": 0.95, "0.01": 0.8, "0.02": 0.7, "0.03": 0.6, "0.05": 0.5},
}
LINK = "I sell the best garden furniture in town, see https://garden.example for offers"
PLAIN = "I am a retired teacher who likes long walks and reading history books"


@pytest.fixture(scope="module")
def fixed_model(trained_model: Path, tmp_path_factory) -> Path:
    """The session's model with a profile context whose scoring is :data:`FIXED_SCORING`."""
    out = Path(shutil.copytree(trained_model, tmp_path_factory.mktemp("budget") / "model"))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["contexts"]["profile"] = {**manifest["contexts"]["content"], "scoring": FIXED_SCORING}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def _profiles(path: Path, labeled: bool = False) -> Path:
    rows = [{"id": "link", "about": LINK, "label": "spam"}, {"id": "plain", "about": PLAIN, "label": "ham"}]
    path.write_text(
        "".join(json.dumps(r if labeled else {k: v for k, v in r.items() if k != "label"}) + "\n" for r in rows)
    )
    return path


def _labels(model: Path, path: Path, *extra: str) -> dict[str, tuple[float, str]]:
    result = run_cli("classify", "--model", model, "--context", "profile", "--jobs", "1", path, *extra)
    assert result.code == 0, result.stderr
    return {item["id"]: (item["score"], item["label"]) for item in result.json_lines()}


def test_classify_max_fpr_labels_profiles_at_the_stored_profile_cut(fixed_model, tmp_path):
    path = _profiles(tmp_path / "p.jsonl")
    assert _labels(fixed_model, path) == {"link": (0.7311, "unsure"), "plain": (0.5, "unsure")}
    assert _labels(fixed_model, path, "--max-fpr", "0.01") == {"link": (0.7311, "unsure"), "plain": (0.5, "unsure")}
    assert _labels(fixed_model, path, "--max-fpr", "0.02") == {"link": (0.7311, "spam"), "plain": (0.5, "unsure")}
    assert _labels(fixed_model, path, "--max-fpr", "0.05") == {"link": (0.7311, "spam"), "plain": (0.5, "spam")}


def test_load_scorer_takes_the_budget_and_lowers_a_ham_threshold_above_the_cut(fixed_model):
    assert load_scorer(fixed_model, "profile", max_fpr=0.02).thresholds == Thresholds(ham=0.4, spam=0.7)
    assert load_scorer(fixed_model, "profile", max_fpr=0.005).thresholds == Thresholds(ham=0.4, spam=0.95)
    assert load_scorer(fixed_model, "profile").thresholds == Thresholds(ham=0.4, spam=0.9)
    with pytest.raises(UsageError, match="not both"):
        load_scorer(fixed_model, "profile", spam=0.8, max_fpr=0.01)


def test_evaluate_max_fpr_measures_the_profile_score_at_the_budget(fixed_model, tmp_path):
    path = _profiles(tmp_path / "labeled.jsonl", labeled=True)
    runs = {
        extra: run_cli("evaluate", "--model", fixed_model, "--context", "profile", path, "--json", *extra.split())
        for extra in ("", "--max-fpr 0.02", "--max-fpr 0.05")
    }
    out = {}
    for extra, result in runs.items():
        assert result.code == 0, result.stderr
        out[extra] = json.loads(result.stdout)
    assert out[""]["thresholds"] == {"ham": 0.4, "spam": 0.9}
    assert (out[""]["overall"]["recall"], out[""]["overall"]["fpr"]) == (0.0, 0.0)
    assert out["--max-fpr 0.02"]["thresholds"] == {"ham": 0.4, "spam": 0.7}
    assert (out["--max-fpr 0.02"]["overall"]["recall"], out["--max-fpr 0.02"]["overall"]["fpr"]) == (1.0, 0.0)
    assert (out["--max-fpr 0.05"]["overall"]["recall"], out["--max-fpr 0.05"]["overall"]["fpr"]) == (1.0, 1.0)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--max-fpr", "0.04"], "must be one of"),
        (["--max-fpr", "0.02", "--spam-threshold", "0.9"], "not both"),
    ],
)
def test_bad_profile_budgets_are_one_line_usage_errors(fixed_model, tmp_path, extra, message):
    result = run_cli(
        "classify", "--model", fixed_model, "--context", "profile", _profiles(tmp_path / "p.jsonl"), *extra
    )
    assert_one_line_error(result, 2)
    assert message in result.stderr


def test_a_profile_scoring_without_budgets_says_so(trained_model, tmp_path):
    # a model without a profile context scores profiles with its content context and default weights
    result = run_cli("classify", "--model", trained_model, "--context", "profile", "--max-fpr", "0.01", stdin="{}\n")
    assert_one_line_error(result, 2)
    assert "no spam threshold for a false-positive budget of 0.01 (it has none" in result.stderr


def test_profile_training_stores_a_profile_cut_per_budget(profile_model):
    scoring = json.loads((profile_model / "manifest.json").read_text())["contexts"]["profile"]["scoring"]
    cuts = [scoring["spam_at_fpr"][fpr_key(b)] for b in FP_BUDGETS]
    assert cuts == sorted(cuts, reverse=True)  # a larger budget never asks for a higher score
    assert all(0.5 <= c <= 0.99 for c in cuts)


def test_the_shipped_profile_scoring_has_every_budget_and_its_default_among_its_range():
    from helpers import DEFAULT_MODEL

    scoring = json.loads((DEFAULT_MODEL / "manifest.json").read_text())["contexts"]["profile"]["scoring"]
    cuts = [scoring["spam_at_fpr"][fpr_key(b)] for b in FP_BUDGETS]
    assert cuts == sorted(cuts, reverse=True)
    assert cuts[-1] <= scoring["thresholds"]["spam"] <= cuts[0]
    assert scoring["thresholds"]["ham"] <= scoring["thresholds"]["spam"]


def test_info_lists_the_profile_scorings_budgets_for_the_profile_context(fixed_model, tmp_path):
    info = json.loads(run_cli("info", "--model", fixed_model, "--json").stdout)["contexts"]
    assert info["profile"]["fp_budgets"] == ["0.005", "0.01", "0.02", "0.03", "0.05"]
    unbudgeted = Path(shutil.copytree(fixed_model, tmp_path / "model"))
    manifest = json.loads((unbudgeted / "manifest.json").read_text())
    manifest["contexts"]["profile"]["scoring"] = {"source": "default"}  # text budgets, but no profile cuts
    (unbudgeted / "manifest.json").write_text(json.dumps(manifest))
    info = json.loads(run_cli("info", "--model", unbudgeted, "--json").stdout)["contexts"]
    assert (info["profile"]["fp_budgets"], info["content"]["fp_budgets"][0]) == ([], "0.005")
