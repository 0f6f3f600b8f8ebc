"""Hostile records: each class of attack gives at most its own error record, and the rest goes on."""

from __future__ import annotations

import json

from helpers import cli_env, run_cli, run_cli_process


def _jsonl(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def _oversized_quoted_field(lines: int) -> str:
    """A quoted field over the 1 MB record limit holding newlines that look like CSV rows."""
    fake = "".join(f"forged {i} WIN a FREE iPhone http://x.example,ham\n" for i in range(lines))
    return '"' + "x" * 1_000_000 + "\n" + fake + '",spam\n'


def test_csv_field_over_the_limit_is_one_error_and_the_reader_resumes_at_the_next_real_row(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(
        "text,label\nhello there,ham\n" + _oversized_quoted_field(50) + '"see you, tomorrow",ham\n', encoding="utf-8"
    )
    result = run_cli("classify", path)
    assert result.code == 0, result.stderr
    items = _jsonl(result)
    assert len(items) == 3  # one line per real row: nothing forged from inside the long field
    assert "error" not in items[0] and "error" not in items[2]
    assert items[1]["id"] == 2 and "longer than" in items[1]["error"]
    assert items[2]["id"] == 3


def test_an_oversized_field_cannot_poison_training(tmp_path):
    rows = ["text,label"]
    for i in range(40):
        rows.append(f"WIN a FREE iPhone now {i} claim at http://x.example,spam")
        rows.append(f"see you at lunch tomorrow {i},ham")
    fake = "".join(f"WIN a FREE iPhone claim {i} at http://x.example,ham\n" for i in range(4000))
    clean, hostile = tmp_path / "clean.csv", tmp_path / "hostile.csv"
    clean.write_text("\n".join(rows) + "\n", encoding="utf-8")
    hostile.write_text("\n".join(rows) + "\n" + '"' + "x" * 1_000_000 + "\n" + fake + '",spam\n', encoding="utf-8")
    scores = []
    for path in (clean, hostile):
        model = tmp_path / path.stem
        result = run_cli("train", path, "--out", model, "--min-per-class", "5")
        assert result.code == 0, result.stderr
        scored = _jsonl(run_cli("classify", "--model", model, stdin="WIN a FREE iPhone claim at http://x.example\n"))
        scores.append(scored[0]["score"])
    assert scores[0] > 0.8
    assert scores[1] == scores[0]  # the over-long row is skipped as unreadable, not read as 4,000 ham rows


def test_parquet_timestamps_decimals_dates_and_bytes_pass_through_as_strings(tmp_path):
    import datetime
    import decimal

    pa = __import__("pytest").importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": [1, 2],
            "about": ["Cheap pills at www.pills.example", "I teach maths at the local school"],
            "created_at": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5), None], pa.timestamp("us")),
            "balance": pa.array([decimal.Decimal("1.50"), decimal.Decimal("2")], pa.decimal128(10, 2)),
            "born": pa.array([datetime.date(2000, 1, 1), None]),
            "blob": [b"\xff\x00", b"ok"],
        }
    )
    path = tmp_path / "users.parquet"
    pq.write_table(table, path)
    result = run_cli("classify", path, "--context", "profile")
    assert result.code == 0, result.stderr
    items = _jsonl(result)
    assert [i["id"] for i in items] == [1, 2] and all("score" in i for i in items)
    assert items[0]["created_at"] == "2024-01-02T03:04:05" and items[1]["created_at"] is None
    assert items[0]["balance"] == "1.50" and items[0]["born"] == "2000-01-01"
    assert items[0]["blob"] == "ff00" and items[1]["blob"] == "ok"


def test_an_echoed_field_that_is_not_unicode_is_that_records_error_only(tmp_path):
    lines = [
        json.dumps({"id": "a", "about": "I like hiking", "name": "Ann"}),
        '{"id": "b", "about": "Buy now", "name": "x\\ud800y"}',
        '{"id": "c", "about": "Hello", "\\udfff": 1}',
        json.dumps({"id": "d", "about": "Gardening and open data", "name": "Dee"}),
    ]
    env = {**cli_env(), "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": ""}  # a process's locale: not in-process
    result = run_cli_process("classify", "-", "--context", "profile", stdin="\n".join(lines) + "\n", env=env)
    assert result.code == 0, result.stderr
    items = _jsonl(result)
    assert [i["id"] for i in items] == ["a", "b", "c", "d"]
    assert "score" in items[0] and "score" in items[3]
    assert "name" in items[1]["error"] and "error" in items[2]


def test_an_undecodable_byte_in_a_csv_column_is_an_error_record_and_the_csv_output_stays_utf8(tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes(b"id,about,name\n1,I like hiking,Ann\n2,Buy now,X\xffY\n3,Gardening,Dee\n")
    out = tmp_path / "o.csv"
    result = run_cli("classify", path, "--context", "profile", "--output", out)
    assert result.code == 0, result.stderr
    text = out.read_bytes().decode("utf-8")  # strict: raises on any invalid byte
    assert len(text.strip().splitlines()) == 4  # header + one row per record
    jsonl = _jsonl(run_cli("classify", path, "--context", "profile"))
    assert "error" in jsonl[1] and "name" in jsonl[1]["error"]
    assert "score" in jsonl[0] and "score" in jsonl[2]


def test_a_field_that_is_never_echoed_does_not_spoil_a_message(tmp_path):
    """Messages echo only their id: a bad unrelated field is no reason to refuse the message."""
    lines = ['{"id": "m", "text": "see you at lunch", "note": "x\\ud800y"}', '{"id": "n", "text": "hello"}']
    result = run_cli("classify", "-", stdin="\n".join(lines) + "\n")
    assert result.code == 0, result.stderr
    items = _jsonl(result)
    assert [i["id"] for i in items] == ["m", "n"] and all("score" in i for i in items)
    assert "note" not in result.stdout
