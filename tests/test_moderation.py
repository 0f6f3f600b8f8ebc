"""Training from moderators' decisions: moderation exports, the rule language, Decidim's own file."""

from __future__ import annotations

import json

import pytest
from helpers import SAMPLES, assert_one_line_error, run_cli

from spamcli.errors import UsageError
from spamcli.moderation import ModerationLabeler, compile_rule
from spamcli.records import ReadOptions, read_records

EXPORT = SAMPLES / "moderation_export.csv"


def _summary(out) -> dict:
    return json.loads((out / "manifest.json").read_text())["contexts"]["content"]["summary"]


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(["--hidden-col", "hidden_at", "--blocked-col", "blocked"], id="hidden-and-blocked-columns"),
        pytest.param(["--label-rule", "hidden_at != '' or blocked == true"], id="label-rule"),
    ],
)
def test_train_from_moderation_export_maps_hidden_blocked_to_spam_kept_to_ham_and_skips_unreviewed(tmp_path, options):
    out = tmp_path / "model"
    result = run_cli("train", EXPORT, "--text-col", "body", *options, "--out", out, "--min-per-class", "5")
    assert result.code == 0, result.stderr
    assert "8 spam (hidden/blocked), 8 ham (reviewed and kept), 3 skipped" in " ".join(result.stderr.split())
    summary = _summary(out)
    assert (summary["spam"], summary["ham"]) == (8, 8)


@pytest.mark.parametrize("option", ["--hidden-col", "--blocked-col", "--reviewed-col"])
@pytest.mark.parametrize("command", ["train", "learn"])
def test_a_misspelled_decision_column_is_an_input_error_and_nothing_is_written(tmp_path, option, command):
    """Beside a right ``--hidden-col``, a ``--blocked-col`` no row holds would make every blocked
    author's message "not blocked", silently: a lopsided site. Exit 3 names it, and nothing is made."""
    out = tmp_path / "model"
    args = ["--hidden-col", "hidden_at", option, "blokced"] if option != "--hidden-col" else [option, "hiden_at"]
    where = ["--out", out, "--min-per-class", "5"] if command == "train" else ["--model", out]
    result = run_cli(command, EXPORT, "--text-col", "body", *args, *where)
    assert_one_line_error(result, 3)
    assert f"({option}) in the moderation export (columns: id, body," in result.stderr
    assert not out.exists()


def test_a_decision_column_held_only_by_rows_without_text_is_not_missing(tmp_path):
    rows = [
        {"id": 1, "body": "", "hidden_at": "2024-01-01"},  # hidden, its text gone: nothing to teach
        {"id": 2, "body": "See you at the reading group on Monday", "reviewed_at": "2024-01-02"},
    ]
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_cli("learn", "--model", tmp_path / "m", export, "--text-col", "body", "--hidden-col", "hidden_at")
    assert result.code == 0, result.stderr
    misspelled = run_cli("learn", "--model", tmp_path / "m", export, "--text-col", "body", "--hidden-col", "hiden_at")
    assert_one_line_error(misspelled, 3)
    assert "--label-rule \"hiden_at != ''\" instead" in misspelled.stderr


def test_ham_rule_replaces_the_reviewed_column(tmp_path):
    out = tmp_path / "model"
    rule = "report_count <= 2"  # kept only if few reports; reviewed r11 (3 reports) is then skipped
    # a --reviewed-col the rule replaces is not read, so not required to exist
    args = ["--hidden-col", "hidden_at", "--blocked-col", "blocked", "--ham-rule", rule, "--reviewed-col", "unused"]
    result = run_cli("train", EXPORT, "--text-col", "body", *args, "--out", out, "--min-per-class", "5")
    assert result.code == 0, result.stderr
    assert _summary(out)["ham"] == 10  # 7 reviewed and 3 unreviewed rows with <= 2 reports


def test_a_rule_that_does_not_parse_is_a_usage_error(tmp_path):
    result = run_cli("train", EXPORT, "--label-rule", "hidden_at = 1", "--out", tmp_path / "m")
    assert_one_line_error(result, 2)
    assert "column 10" in result.stderr


@pytest.mark.parametrize(
    ("rule", "row", "expected"),
    [
        ("hidden_at != '' or blocked == true", {"hidden_at": "2024-01-01", "blocked": "false"}, True),
        ("hidden_at != '' or blocked == true", {"hidden_at": "", "blocked": "1"}, True),
        ("hidden_at != '' or blocked == true", {"hidden_at": "", "blocked": "no"}, False),
        ("hidden_at != '' or blocked == true", {}, False),
        ("report_count >= 3 and not kept", {"report_count": "3", "kept": ""}, True),
        ("report_count >= 3 and not kept", {"report_count": "10", "kept": "yes"}, False),
        ("report_count > 2", {"report_count": "many"}, False),
        ("reason ~ 'spam|scam'", {"reason": "Obvious SCAM"}, True),
        ("(a or b) and c", {"a": "1", "c": "x"}, True),
        ('status == "Hidden"', {"status": "hidden"}, True),
        ("hidden", {"hidden": "null"}, False),
    ],
)
def test_rule_language(rule, row, expected):
    assert compile_rule(rule)(row) is expected


@pytest.mark.parametrize("rule", ["", "a ==", "(a", "a b", "__import__('os').system('x')", "a = 1", "a and"])
def test_rule_language_rejects_anything_outside_its_grammar(rule):
    with pytest.raises(UsageError):
        compile_rule(rule)


def test_moderation_labeler_needs_a_spam_rule():
    with pytest.raises(UsageError):
        ModerationLabeler(reviewed_col="reviewed_at")


def test_decidim_label_semicolon_file_named_csv_is_read_as_decidim(tmp_path):
    path = tmp_path / "blocked_accounts.csv"
    path.write_text("spam;Best carpets in town; call now\nspam;Visit https://x.example\n", encoding="utf-8")
    records = list(read_records(str(path), ReadOptions(need_label=True)))
    assert [(r.label, r.text) for r in records] == [
        (1, "Best carpets in town; call now"),
        (1, "Visit https://x.example"),
    ]


def test_train_profile_context_from_the_shipped_decidim_file(datasets_dir, model_copy):
    blocked = datasets_dir / "decidim_spam" / "blocked_accounts.csv"
    if not blocked.is_file():
        pytest.skip(f"decidim_spam not in {datasets_dir}")
    result = run_cli(
        "train", blocked, "--ham", SAMPLES / "genuine_bios.txt", "--context", "profile", "--out", model_copy
    )
    assert result.code == 0, result.stderr
    manifest = json.loads((model_copy / "manifest.json").read_text())
    summary = manifest["contexts"]["profile"]["summary"]
    lines = [line for line in blocked.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert summary["unreadable"] == 0
    assert summary["spam"] + summary["duplicates_dropped"] >= len(lines) - 1
    assert set(manifest["contexts"]) == {"content", "profile"}
