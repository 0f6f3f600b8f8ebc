"""``spamcli train`` end to end: input formats, label spellings, the summary, bad training data."""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from pathlib import Path

import pytest
from helpers import SAMPLES, assert_one_line_error, killed_at, run_cli

from spamcli import SpamFilter
from spamcli.bundle import load_bundle

HAM_TEXT = "Thanks for the notes from the meeting, see you on Monday."
SPAM_TEXT = "WIN a FREE iPhone now, claim your prize at http://win.example"


def _train(tmp_path: Path, *args) -> tuple[Path, object]:
    out = tmp_path / "model"
    return out, run_cli("train", *args, "--out", out, "--min-per-class", "5")


def _assert_usable_model(out: Path) -> None:
    """A written model has a manifest, loads, and ranks an obvious spam above an obvious ham."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "spamcli-model"
    assert "multi" in manifest["contexts"]["content"]["models"]
    ham, spam = SpamFilter.load(out).score([HAM_TEXT, SPAM_TEXT], ["en", "en"])
    assert spam.score > ham.score


def _relabel(tmp_path: Path, spellings: list[tuple[str, str]]) -> Path:
    """messages.csv with its labels spelled by cycling through ``(spam, ham)`` pairs."""
    with open(SAMPLES / "messages.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    path = tmp_path / "relabeled.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        for i, row in enumerate(rows):
            spam, ham = spellings[i % len(spellings)]
            writer.writerow({"text": row["text"], "label": spam if row["label"] == "spam" else ham})
    return path


def test_train_csv_with_detected_columns_writes_model_and_prints_summary_on_stderr_only(trained_run):
    out, result = trained_run
    assert result.stdout == ""
    assert "training summary" in result.stderr
    for lang in ("en", "es", "de"):
        assert lang in result.stderr
    assert f"model written to {out}" in result.stderr
    _assert_usable_model(out)
    manifest = json.loads((out / "manifest.json").read_text())
    summary = manifest["contexts"]["content"]["summary"]
    assert (summary["spam"], summary["ham"]) == (32, 32)
    for entry in manifest["contexts"]["content"]["models"].values():
        assert (out / entry["file"]).is_file()
        assert len(entry["sha256"]) == 64


@pytest.mark.parametrize(
    ("args", "counts"),
    [
        pytest.param(
            [SAMPLES / "comments.tsv", "--text-col", "msg", "--label-col", "verdict"], 8, id="tsv-named-columns"
        ),
        pytest.param([SAMPLES / "messages.jsonl"], 8, id="jsonl-1-0-labels"),
        pytest.param(["--spam", SAMPLES / "spam.txt", "--ham", SAMPLES / "ham.txt"], 12, id="plain-spam-ham-files"),
        pytest.param([SAMPLES / "decidim.txt"], 6, id="decidim-label-semicolon-text"),
    ],
)
def test_train_reads_each_input_format(tmp_path, args, counts):
    out, result = _train(tmp_path, *args)
    assert result.code == 0, result.stderr
    assert f"{counts} spam, {counts} ham" in result.stderr
    _assert_usable_model(out)


def test_train_accepts_1_0_true_false_and_any_case_labels(tmp_path):
    path = _relabel(tmp_path, [("1", "0"), ("true", "false"), ("SPAM", "Ham"), ("True", "FALSE")])
    out, result = _train(tmp_path, path)
    assert result.code == 0, result.stderr
    assert "32 spam, 32 ham" in result.stderr
    _assert_usable_model(out)


def test_train_tsv_whose_columns_cannot_be_detected_exits_3(tmp_path):
    out, result = _train(tmp_path, SAMPLES / "comments.tsv")
    assert_one_line_error(result, 3)
    assert "no text field" in result.stderr
    assert not out.exists()


def test_train_with_one_class_only_exits_3_with_one_line(tmp_path):
    out, result = _train(tmp_path, "--spam", SAMPLES / "spam.txt")
    assert_one_line_error(result, 3)
    assert "only spam" in result.stderr
    assert not (out / "manifest.json").exists()


def test_train_with_unknown_labels_exits_3_naming_the_label(tmp_path):
    path = _relabel(tmp_path, [("maybe", "perhaps")])
    _, result = _train(tmp_path, path)
    assert_one_line_error(result, 3)
    assert "unknown label" in result.stderr


@pytest.mark.parametrize("option", ["--text-col", "--label-col"])
def test_train_with_missing_named_column_exits_3(tmp_path, option):
    _, result = _train(tmp_path, SAMPLES / "messages.csv", option, "no_such_column")
    assert_one_line_error(result, 3)
    assert "no_such_column" in result.stderr


def test_train_csv_without_label_column_exits_3(tmp_path):
    path = tmp_path / "unlabeled.csv"
    path.write_text("text\nhello there\nbuy cheap pills now\n", encoding="utf-8")
    _, result = _train(tmp_path, path)
    assert_one_line_error(result, 3)
    assert "no label field" in result.stderr


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.txt"])
def test_train_on_empty_file_exits_3(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    _, result = _train(tmp_path, path)
    assert_one_line_error(result, 3)


def test_train_on_missing_file_exits_3(tmp_path):
    _, result = _train(tmp_path, tmp_path / "nowhere.csv")
    assert_one_line_error(result, 3)
    assert "no such file" in result.stderr


def test_train_without_any_input_is_a_usage_error(tmp_path):
    _, result = _train(tmp_path)
    assert_one_line_error(result, 2)


def test_train_into_existing_model_dir_replaces_it_and_keeps_it_loadable(model_copy):
    before = {p.name for p in model_copy.glob("*.npz")}
    result = run_cli(
        "train",
        "--spam",
        SAMPLES / "spam.txt",
        "--ham",
        SAMPLES / "ham.txt",
        "--out",
        model_copy,
        "--min-per-class",
        "5",
    )
    assert result.code == 0, result.stderr
    bundle = load_bundle(model_copy)
    assert bundle.contexts["content"].summary["spam"] == 12
    after = {p.name for p in model_copy.glob("*.npz")}
    referenced = {
        e["file"]
        for e in json.loads((model_copy / "manifest.json").read_text())["contexts"]["content"]["models"].values()
    }
    assert referenced != before
    # the replaced model's files stay RETIRED_GRACE seconds for readers of the old manifest ...
    assert after == referenced | before
    assert not list(model_copy.glob(".*.tmp")), "no temporary files left behind"
    _assert_usable_model(model_copy)
    # ... and the first save after that removes them
    from spamcli.bundle import RETIRED_GRACE, save_bundle

    past = time.time() - RETIRED_GRACE - 1
    for name in before - referenced:
        os.utime(model_copy / name, (past, past))
    save_bundle(load_bundle(model_copy, with_site=False), model_copy)
    assert {p.name for p in model_copy.glob("*.npz")} == referenced, "files of the replaced model are cleaned up"


@pytest.mark.parametrize(
    ("point", "manifest"),
    [
        pytest.param("spamcli.tempfiles.create", "old", id="trained-nothing-written"),
        pytest.param("os.replace:.npz", "old", id="a-new-model-file-written-not-renamed"),
        pytest.param("os.replace:manifest.json", "old", id="model-files-in-place-manifest-written-not-renamed"),
        pytest.param("spamcli.bundle._remove_retired", "new", id="new-manifest-in-place-old-files-not-removed"),
    ],
)
def test_train_killed_midway_leaves_a_loadable_model(model_copy, point, manifest):
    """Whenever the kill lands, the directory holds the old model or the new one, both loadable:
    the train process (forked from this one) kills itself with SIGKILL at each step of writing."""
    from spamcli.cli import main

    before = (model_copy / "manifest.json").read_bytes()
    args = ["train", SAMPLES / "messages.csv", SAMPLES / "messages.jsonl", "--out", model_copy, "--min-per-class", "5"]
    assert killed_at(point, lambda: main([str(a) for a in args])) == -signal.SIGKILL
    assert ((model_copy / "manifest.json").read_bytes() == before) == (manifest == "old")
    _assert_usable_model(model_copy)


def test_clean_records_with_max_rows_keeps_a_seeded_uniform_sample_and_finds_duplicates_over_all():
    from spamcli.records import Record
    from spamcli.training import clean_records

    def word(i: int) -> str:  # letters: the normalised text keys fold digits together
        return "".join(chr(97 + (i // 26**k) % 26) for k in range(3))

    records = [Record(id=i, text=f"message {word(i)}", label=i % 2) for i in range(5_000)]
    records += [Record(id=9_000, text=f"message {word(7)}", label=1)]  # a duplicate after the sample filled
    kept, stats = clean_records(records, max_rows=500, seed=3)
    again, _ = clean_records(records, max_rows=500, seed=3)
    assert len(kept) == 500 and [r.id for r in kept] == [r.id for r in again]
    assert stats["clean"] == 5_000 and stats["duplicates"] == 1
    ids = sorted(r.id for r in kept)
    assert ids[0] < 1_000 and ids[-1] > 4_000  # drawn from the whole input, not its head
    assert 100 < sum(1 for i in ids if i >= 2_500) < 400  # and about evenly from both halves


def test_train_with_max_rows_samples_and_says_so(tmp_path):
    words = [chr(97 + i // 26) + chr(97 + i % 26) for i in range(80)]  # distinct texts (digits fold together)
    rows = ["text,label"] + [f"free prize {w} claim now,spam" for w in words]
    rows += [f"see you at the meeting {w} today,ham" for w in words]
    data = tmp_path / "big.csv"
    data.write_text("\n".join(rows) + "\n")
    result = run_cli("train", data, "--out", tmp_path / "m", "--max-rows", "100", "--min-per-class", "5")
    assert result.code == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert "Naive Bayes counts over all 160 clean records" in said and "sample of 100 of them" in said
    ctx = load_bundle(tmp_path / "m").contexts["content"]
    assert ctx.summary["spam"] + ctx.summary["ham"] == 100
    assert ctx.models["multi"].doc_counts.tolist() == [80, 80]  # the counts take every record
    everything = run_cli("train", data, "--out", tmp_path / "all", "--max-rows", "0", "--min-per-class", "5")
    assert everything.code == 0, everything.stderr
    assert "sample" not in everything.stderr
    ctx = load_bundle(tmp_path / "all").contexts["content"]
    assert ctx.summary["spam"] + ctx.summary["ham"] == 160
    bad = run_cli("train", data, "--out", tmp_path / "m2", "--max-rows", "-1")
    assert_one_line_error(bad, 2)


def _two_language_records(n: int = 600) -> list:
    import random

    from spamcli.records import Record

    rng = random.Random(5)
    pools = [
        ("free prize claim now winner cash offer click link urgent credit loan cheap", 1),
        ("see you at the meeting today thanks for lunch tomorrow call me later please", 0),
        ("gratis premio reclama ahora ganador dinero oferta haz clic enlace urgente", 1),
        ("nos vemos en la reunion hoy gracias por la comida manana llamame luego", 0),
    ]
    records = []
    for i in range(n):
        words, label = pools[i % 4]
        text = " ".join(rng.choice(words.split()) for _ in range(8)) + f" n{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}"
        records.append(Record(id=i, text=text, label=label))
    records.append(Record(id=900, text=records[10].text, label=1 - records[10].label))  # labeled both ways, late
    records.insert(20, Record(id=901, text=records[3].text, label=1 - records[3].label))  # both ways, early
    records.append(Record(id=902, text=records[11].text, label=records[11].label))  # a duplicate
    records.append(
        Record(id=903, text=" " + records[12].text.replace(" ", "  "), label=1 - records[12].label)
    )  # both ways, spaced
    return records


def test_a_sampled_regression_keeps_the_naive_bayes_counts_of_every_record():
    """--max-rows below the input: every final model (fallback and per language) counts exactly what
    the in-memory path counts over all rows, texts labeled both ways and duplicates taken out alike."""
    import numpy as np

    from spamcli.training import TrainOptions, train_context

    records = _two_language_records()
    full, full_report = train_context(records, TrainOptions(max_rows=None, min_per_class=20))
    part, report = train_context(records, TrainOptions(max_rows=300, min_per_class=20))
    assert full_report.conflicting == 3 and not full_report.warnings
    assert report.spam + report.ham < 300 and "Naive Bayes counts over all 597 clean records" in report.warnings[0]
    assert {"multi", "en", "es"} <= set(part.models) and set(part.models) == set(full.models)
    for name, model in part.models.items():
        assert np.array_equal(model.columns, full.models[name].columns), name
        assert np.array_equal(model.counts, full.models[name].counts), name
        assert np.array_equal(model.doc_counts, full.models[name].doc_counts), name
    assert part.models["multi"].kind == "nblr"  # the regression, on the sample, over these counts


def test_max_rows_at_or_above_the_input_gives_the_in_memory_model():
    import numpy as np

    from spamcli.training import TrainOptions, train_context

    records = _two_language_records()
    full, _ = train_context(records, TrainOptions(max_rows=None, min_per_class=20))
    same, report = train_context(records, TrainOptions(max_rows=600, min_per_class=20))
    assert not report.warnings
    for name, model in full.models.items():
        other = same.models[name]
        for attr in ("columns", "counts", "doc_counts", "coef_plain", "coef_nb"):
            assert np.array_equal(getattr(model, attr), getattr(other, attr)), (name, attr)
        assert (model.intercept, model.calib_a, model.calib_b) == (other.intercept, other.calib_a, other.calib_b)
    assert full.thresholds == same.thresholds
