"""The hostile-input corpus (tests/hostile/) through classify, train, evaluate, learn and export.

Contract checked on every run: a documented exit code, no traceback, an error is one line; in
classify one output line per input record; and nothing outside the given paths is touched (the
run's working directory and HOME are a fresh directory whose other contents are compared).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import REPO, cli_env, run_cli

CORPUS = Path(__file__).parent / "hostile"
EXIT_CODES = {0, 2, 3, 4}


@pytest.fixture
def place(tmp_path):
    """A working directory with the corpus, a 10 MB line, an over-limit CSV field and a model."""
    work = tmp_path / "work"
    shutil.copytree(CORPUS, work)
    (work / "home").mkdir()
    (work / "long.txt").write_bytes(b"short line\n" + b"x" * 10_000_000 + b"\nafter the long line\n")
    (work / "oversized.csv").write_text(
        'text,label\nhello,ham\n"' + "y" * 1_100_000 + '\nforged,spam\n",spam\nlast row,ham\n', encoding="utf-8"
    )
    return work


def _run(place: Path, *args, stdin: bytes = b""):
    env = cli_env()
    env["HOME"] = str(place / "home")
    before = _listing(place)
    result = run_cli(*args, stdin=stdin, env=env)
    assert result.code in EXIT_CODES, (args, result.code, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    if result.code:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result, before


def _listing(place: Path) -> dict[str, float]:
    return {str(p.relative_to(place)): p.stat().st_mtime for p in place.rglob("*") if p.is_file()}


def _touched(place: Path, before: dict, allowed: set[str]) -> set[str]:
    after = _listing(place)
    changed = {k for k in after if before.get(k) != after[k]} | (set(before) - set(after))
    return {k for k in changed if not any(k == a or k.startswith(a + "/") for a in allowed)}


def _input_records(path: Path) -> int:
    if path.suffix == ".csv":
        return -1  # counted by the reader's own record boundaries, checked per file below
    return path.read_bytes().count(b"\n")


@pytest.mark.parametrize("name", ["messages.txt", "records.jsonl", "long.txt", "oversized.csv", "labeled.csv"])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_classify_gives_one_line_per_record_and_touches_nothing(place, name, jobs):
    result, before = _run(place, "classify", place / name, "--jobs", jobs)
    lines = result.stdout.splitlines()
    expected = {"oversized.csv": 3, "labeled.csv": 6}.get(name, _input_records(place / name))
    assert len(lines) == expected, result.stdout[:2000]
    for line in lines:
        item = json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the output"))
        assert "error" in item or {"score", "label"} <= set(item)
    assert not _touched(place, before, set())


def test_classify_from_stdin_and_profiles_and_csv_output(place):
    result, _ = _run(place, "classify", "-", stdin=(place / "messages.txt").read_bytes())
    assert len(result.stdout.splitlines()) == _input_records(place / "messages.txt")
    result, before = _run(place, "classify", place / "profiles.jsonl", "--context", "profile", "-o", place / "p.csv")
    assert result.code == 0
    text = (place / "p.csv").read_bytes().decode("utf-8")  # strict: a lone surrogate would fail here
    assert "'=1+1" in text
    assert not _touched(place, before, {"p.csv"})


def test_train_evaluate_learn_and_export_on_the_corpus(place):
    model = place / "model"
    result, before = _run(place, "train", place / "labeled.csv", place / "oversized.csv", "--out", model)
    assert result.code == 0, result.stderr  # the unreadable rows are counted and skipped
    assert "unreadable 4" in " ".join(result.stderr.split())  # 3 in labeled.csv, the over-long field
    assert not _touched(place, before, {"model"})
    result, _ = _run(place, "train", place / "one_class.csv", "--out", model)
    assert result.code == 3
    result, before = _run(place, "evaluate", place / "labeled.csv")
    assert result.code in (0, 3)
    result, _ = _run(place, "evaluate", place / "labeled.csv", "--json")
    if result.code == 0:
        json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the output"))
    site = place / "site-model"
    result, before = _run(place, "learn", "--model", site, "--spam", place / "messages.txt")
    assert result.code == 0
    result, _ = _run(place, "learn", "--model", site, "--forget", place / "records.jsonl")
    assert result.code in (0, 3)
    result, before = _run(place, "export", "--model", site, "--out", place / "export.json")
    assert result.code == 0
    json.loads((place / "export.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert not _touched(place, before, {"export.json"})
    assert not (REPO / "models" / "default" / "site.sqlite").exists()


def test_a_model_with_a_nan_is_exit_4_for_every_command(place):
    model = place / "nan-model"
    shutil.copytree(REPO / "models" / "default", model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["contexts"]["content"]["thresholds"]["spam"] = float("nan")
    (model / "manifest.json").write_text(json.dumps(manifest))
    for args in (
        ("classify", "--model", model),
        ("evaluate", place / "labeled.csv", "--model", model),
        ("learn", "--model", model, "--spam", place / "messages.txt"),
        ("export", "--model", model, "--out", place / "x.json"),
        ("info", "--model", model),
    ):
        result, _ = _run(place, *args, stdin=b"hello\n")
        assert result.code == 4, (args, result.stderr)
    assert not (place / "x.json").exists()
    assert "site.sqlite" not in os.listdir(model)  # the refused learn wrote nothing
