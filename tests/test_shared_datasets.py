"""Real data from ``../shared/datasets`` (or ``$SPAMCLI_DATASETS``): skipped cleanly where absent.

These train on thousands of messages, so they are marked slow (``pytest -m 'not slow'`` skips them).
"""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

from spamcli import datasets

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(datasets.REGISTRY))
def test_registered_dataset_loads_labeled_records_with_groups(datasets_dir, name):
    info = datasets.REGISTRY[name]
    if not all((datasets_dir / info.folder / f).is_file() for f in info.files):
        pytest.skip(f"{name} not in {datasets_dir}")
    records = datasets.load(name, datasets_dir)
    assert records
    assert all(r.label in (0, 1) and r.text.strip() and r.error is None for r in records)
    assert all(r.fields["source"] == name and r.fields["group"] for r in records)
    train, test = datasets.split_by_group(records)
    assert len(train) + len(test) == len(records)
    assert not {r.fields["group"] for r in train} & {r.fields["group"] for r in test}


def test_cross_validation_on_sms_spam_collection_separates_spam_from_ham(datasets_dir):
    path = datasets_dir / "sms_spam_collection" / "sms_spam_collection.csv"
    if not path.is_file():
        pytest.skip("sms_spam_collection not present")
    result = run_cli("evaluate", path, "--cv", "3", "--json", timeout=600)
    assert result.code == 0, result.stderr
    overall = json.loads(result.stdout)["overall"]
    assert overall["n"] > 4000
    assert overall["auc"] > 0.95
    assert overall["fpr"] < 0.05


def test_model_trained_on_three_youtube_videos_scores_comments_of_a_fourth(datasets_dir, tmp_path):
    folder = datasets_dir / "youtube_spam_collection"
    files = sorted(folder.glob("Youtube0*.csv"))
    if len(files) < 2:
        pytest.skip("youtube_spam_collection not present")
    train_files, test_file = files[:-1], files[-1]
    out = tmp_path / "model"
    common = ["--text-col", "CONTENT", "--label-col", "CLASS"]
    result = run_cli("train", *train_files, *common, "--out", out, timeout=600)
    assert result.code == 0, result.stderr
    result = run_cli("evaluate", test_file, *common, "--model", out, "--json", timeout=600)
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["overall"]["auc"] > 0.85
    assert report["overall"]["n"] > 300


def test_standard_split_seed_draws_another_split_of_the_same_kind(datasets_dir):
    if not all((datasets_dir / datasets.REGISTRY[n].folder).is_dir() for n in datasets.CONTENT_TRAIN_SETS):
        pytest.skip(f"content training sets not all in {datasets_dir}")
    train7, test7 = datasets.standard_split(datasets_dir)
    train3, test3 = datasets.standard_split(datasets_dir, seed=3)
    sms7 = {r.fields["group"] for r in test7["sms_multilingual"]}
    sms3 = {r.fields["group"] for r in test3["sms_multilingual"]}
    assert sms7 != sms3  # another draw ...
    for train, test in ((train7, test7), (train3, test3)):
        for name in datasets.CONTENT_TRAIN_SETS:  # ... that still keeps every group on one side
            assert not {r.fields["group"] for r in train[name]} & {r.fields["group"] for r in test[name]}
        english_test = {r.fields["group"] for r in test["sms_spam_collection"]}
        assert not english_test & {r.fields["group"] for r in train["sms_multilingual"]}  # translations too
        share = len(test["sms_spam_collection"]) / (
            len(test["sms_spam_collection"]) + len(train["sms_spam_collection"])
        )
        assert 0.15 < share < 0.25
    assert [r.text for r in test7["youtube_spam_collection"]] == [r.text for r in test3["youtube_spam_collection"]]
