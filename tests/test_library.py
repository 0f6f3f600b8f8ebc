"""The library calls behind the commands, used directly from Python: classify_inputs and
write_classified, train_from_inputs with merge_context, learn_from_inputs, load_scorer."""

from __future__ import annotations

import io
import json

import pytest
from helpers import SAMPLES, run_cli

from spamcli.batch import JsonLinesSink, json_line, open_sink
from spamcli.bundle import load_bundle, merge_context
from spamcli.classifying import classify_inputs, load_scorer, write_classified
from spamcli.errors import InputError, UsageError
from spamcli.learning import learn_from_inputs
from spamcli.records import ReadOptions, read_records
from spamcli.trainer import train_from_inputs
from spamcli.training import TrainOptions
from spamcli.transport import parse_items, read_raw


def _lines(scorer, source, jobs: int, opts: ReadOptions | None = None) -> str:
    out = []
    for batches in classify_inputs(scorer, [source], opts, jobs=jobs):
        for batch in batches:
            out += [json_line(item) + "\n" for item in batch]
    return "".join(out)


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("name", ["messages.jsonl", "spam.txt", "messages.csv"])
def test_classify_inputs_on_an_in_memory_stream_gives_the_lines_of_the_cli(trained_model, name, jobs):
    data = (SAMPLES / name).read_bytes() + b"\n{broken\n"
    fmt = "csv" if name.endswith(".csv") else "auto"
    expected = run_cli("classify", "--model", trained_model, "--format", fmt, "--jobs", "1", stdin=data)
    assert expected.code == 0, expected.stderr
    scorer = load_scorer(trained_model)
    got = _lines(scorer, io.BytesIO(data), jobs, ReadOptions(format=fmt))
    assert got == expected.stdout
    assert got.count("\n") >= 10


def test_classify_inputs_reads_a_file_by_its_path_as_the_cli_does(trained_model):
    path = SAMPLES / "profiles.csv"
    expected = run_cli("classify", "--model", trained_model, "--context", "profile", path)
    scorer = load_scorer(trained_model, "profile")
    assert _lines(scorer, str(path), 2, ReadOptions(allow_empty_text=True)) == expected.stdout


def test_write_classified_commits_a_file_and_keeps_the_old_one_when_nothing_was_usable(spam_filter, tmp_path):
    out = tmp_path / "flagged.jsonl"
    out.write_text("old\n")
    counts = write_classified(classify_inputs(spam_filter, [io.BytesIO(b"{bad\n")]), open_sink(out))
    assert (counts.seen, counts.usable) == (1, 0)
    with pytest.raises(InputError, match="none of the 1 records"):
        counts.check()
    assert out.read_text() == "old\n"
    source = io.BytesIO(b"WIN a FREE iPhone at http://x.example\nsee you at lunch\n")
    counts = write_classified(classify_inputs(spam_filter, [source]), open_sink(out), only={"spam"})
    counts.check()
    assert counts.usable == 2
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [1]
    with pytest.raises(InputError, match="no records"):
        write_classified(classify_inputs(spam_filter, [io.BytesIO(b"")]), JsonLinesSink(io.StringIO())).check()


def test_load_scorer_refuses_options_of_the_other_context(trained_model):
    with pytest.raises(UsageError, match="profile scoring has no spam threshold"):
        load_scorer(trained_model, "profile", max_fpr=0.01)  # its content context has no profile cuts
    with pytest.raises(UsageError, match="need --context profile"):
        load_scorer(trained_model, trusted_ids=SAMPLES / "ham.txt")
    with pytest.raises(UsageError, match="not both"):
        load_scorer(trained_model, spam=0.5, max_fpr=0.01)
    assert load_scorer(load_bundle(trained_model), spam=0.7).thresholds.spam == 0.7


def test_raw_items_parse_into_the_records_read_records_gives():
    data = (SAMPLES / "messages.jsonl").read_bytes() + b"plain text\n\n\xff\n"
    opts = ReadOptions()
    for blocks in (False, True):
        parsed = list(parse_items(read_raw(io.BytesIO(data), opts, blocks=blocks), opts))
        assert parsed == list(read_records(io.BytesIO(data), opts))


def test_train_from_inputs_then_merge_context_keeps_the_other_context(tmp_path):
    out = tmp_path / "model"
    content = train_from_inputs([str(SAMPLES / "messages.csv")])
    merge_context(out, content.context)
    profile = train_from_inputs(
        spam=[str(SAMPLES / "spam.txt")],
        ham=[str(SAMPLES / "genuine_bios.txt")],
        train_options=TrainOptions(context="profile"),
    )
    merge_context(out, profile.context)
    bundle = load_bundle(out)
    assert sorted(bundle.contexts) == ["content", "profile"]
    assert content.report.spam == 32 and content.moderation is None
    (out / "manifest.json").write_text("{")
    warnings = []
    merge_context(out, content.context, warn=warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith(f"replacing unreadable model in {out}: ")
    assert sorted(load_bundle(out).contexts) == ["content"]


def test_train_from_inputs_labels_a_moderation_export_and_checks_its_options():
    export = [str(SAMPLES / "moderation_export.csv")]
    result = train_from_inputs(export, moderation={"hidden_col": "hidden_at"}, train_options=TrainOptions())
    assert set(result.moderation) == {"spam", "ham", "skipped"}
    assert result.moderation["spam"] > 0
    with pytest.raises(UsageError, match="--label-col cannot be combined"):
        train_from_inputs(["x.csv"], read_options=ReadOptions(label_field="label"), moderation={"hidden_col": "h"})
    with pytest.raises(UsageError, match="give labeled files"):
        train_from_inputs()


def test_learn_from_inputs_reads_streams_and_counts_unreadable_records(model_copy):
    report, unreadable = learn_from_inputs(model_copy, [io.BytesIO(b"cheap watches here\n{bad\n")], "spam")
    assert (report.learned, unreadable) == (1, 1)
    with pytest.raises(InputError, match=r"no messages in the input \(1 unreadable\)"):
        learn_from_inputs(model_copy, [io.BytesIO(b"{bad\n")], "ham")
