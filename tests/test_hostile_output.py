"""Output paths and files a hostile record or a careless path cannot turn into damage."""

from __future__ import annotations

import csv
import json
import os
import stat
import threading

import pytest
from helpers import assert_one_line_error, run_cli

MESSAGES = "WIN a FREE iPhone now at http://win.example\nsee you at lunch tomorrow\n"
# export writes the session's small model: the output path is under test, and the shipped model
# takes seconds to export


def test_output_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    result = run_cli("classify", "--output", link, stdin=MESSAGES)
    assert result.code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(target.read_text().splitlines()) == 2 and "score" in target.read_text()


def test_output_to_a_character_device_writes_it_and_never_replaces_it(tmp_path, trained_model):
    # A node of its own (the null device's numbers) in tmp_path, never /dev/null itself: were the
    # bug back, the test would replace only this node, not the machine's /dev/null.
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("creating a device node needs root")
    before = os.lstat(node)
    for args in (["classify", "--output", node], ["export", "--model", trained_model, "--out", node]):
        result = run_cli(*args, stdin=MESSAGES)
        assert result.code == 0, result.stderr
        after = os.lstat(node)
        assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temporary file left beside it


@pytest.mark.parametrize("command", ["classify", "export"])
def test_output_to_a_fifo_is_written_directly_and_stays_a_fifo(tmp_path, trained_model, command):
    fifo = tmp_path / ("out.jsonl" if command == "classify" else "model.json")
    os.mkfifo(fifo)
    received = []

    def read() -> None:
        with open(fifo, "rb") as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    args = (
        ["classify", "--output", fifo] if command == "classify" else ["export", "--model", trained_model, "--out", fifo]
    )
    result = run_cli(*args, stdin=MESSAGES)
    reader.join(timeout=60)
    assert result.code == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    data = received[0].decode("utf-8")
    assert (len(data.splitlines()) == 2) if command == "classify" else json.loads(data)["format"] == "spamcli-export"


def test_export_through_a_symlink_writes_its_target(tmp_path, trained_model):
    target = tmp_path / "real.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert run_cli("export", "--model", trained_model, "--out", link).code == 0
    assert link.is_symlink() and json.loads(target.read_text())["format"] == "spamcli-export"


@pytest.mark.parametrize("command", ["classify", "export"])
def test_output_to_a_directory_is_a_usage_error(tmp_path, trained_model, command):
    args = (
        ["classify", "--output", tmp_path]
        if command == "classify"
        else ["export", "--model", trained_model, "--out", tmp_path]
    )
    assert_one_line_error(run_cli(*args, stdin=MESSAGES), 2)
    assert tmp_path.is_dir()


def _csv_rows(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_header_holds_the_scoring_columns_when_the_first_batch_is_all_errors(tmp_path):
    lines = ["{broken json", "", json.dumps({"id": "a", "text": "WIN a FREE iPhone http://x.example"})]
    lines.append(json.dumps({"id": "b", "text": "lunch tomorrow?", "late_column": "seen late"}))
    out = tmp_path / "out.csv"
    result = run_cli("classify", "--output", out, "--batch-size", "1", "--jobs", "1", stdin="\n".join(lines) + "\n")
    assert result.code == 0, result.stderr
    rows = _csv_rows(out)
    assert len(rows) == 4
    assert {"id", "score", "label", "lang", "model", "error"} <= set(rows[0])
    assert rows[0]["error"] and rows[1]["error"]
    assert rows[2]["id"] == "a" and float(rows[2]["score"]) > 0 and rows[2]["label"] in ("spam", "unsure", "ham")
    assert rows[3]["label"] and rows[3]["score"]


def test_csv_profile_columns_first_seen_late_are_kept(tmp_path):
    lines = [json.dumps({"id": 1, "about": ""}), json.dumps({"id": 2, "about": "hiking", "city": "Lyon"})]
    out = tmp_path / "out.csv"
    result = run_cli(
        "classify", "--context", "profile", "--output", out, "--batch-size", "1", stdin="\n".join(lines) + "\n"
    )
    assert result.code == 0, result.stderr
    rows = _csv_rows(out)
    assert rows[1]["city"] == "Lyon" and "signals" in rows[0]


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised_unless_csv_raw(tmp_path):
    hostile = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]
    lines = [json.dumps({"id": h, "about": "I like hiking", "name": h}) for h in hostile]
    out = tmp_path / "out.csv"
    result = run_cli("classify", "--context", "profile", "--output", out, stdin="\n".join(lines) + "\n")
    assert result.code == 0, result.stderr
    rows = _csv_rows(out)
    assert [r["name"] for r in rows] == ["'" + h for h in hostile]
    assert [r["id"] for r in rows] == ["'" + h for h in hostile]
    assert all(not r["score"].startswith("'") for r in rows)  # numbers stay numbers
    raw = tmp_path / "raw.csv"
    result = run_cli("classify", "--context", "profile", "--output", raw, "--csv-raw", stdin="\n".join(lines) + "\n")
    assert result.code == 0, result.stderr
    assert [r["name"] for r in _csv_rows(raw)] == hostile
