"""Reading records: every format, labels, format detection, bounded line reading."""

from __future__ import annotations

import io
import random

import pytest
from helpers import SAMPLES

from spamcli import transport
from spamcli.errors import InputError, UsageError
from spamcli.records import ReadOptions, detect_format, iter_lines, parse_label, read_records
from spamcli.transport import block_lines, read_raw


def _read(path, **options) -> list:
    return list(read_records(str(path), ReadOptions(**options)))


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("spam", 1),
        ("ham", 0),
        ("SPAM ", 1),
        (" Ham", 0),
        ("1", 1),
        ("0", 0),
        (1, 1),
        (0, 0),
        (1.0, 1),
        ("true", 1),
        ("False", 0),
        (True, 1),
        (False, 0),
        ("not spam", 0),
    ],
)
def test_parse_label_maps_spellings_to_1_and_0(value, label):
    assert parse_label(value) == label


@pytest.mark.parametrize("value", ["maybe", "2", 2, "", None, 0.5])
def test_parse_label_rejects_unknown_values(value):
    with pytest.raises(ValueError, match="unknown label"):
        parse_label(value)


@pytest.mark.parametrize(
    ("path", "first_line", "fmt"),
    [
        ("a.csv", b"", "csv"),
        ("a.CSV", b"", "csv"),
        ("a.tsv", b"", "tsv"),
        ("a.jsonl", b"", "jsonl"),
        ("a.ndjson", b"", "jsonl"),
        ("a.parquet", b"", "parquet"),
        ("a.txt", b"", "text"),
        (None, b'  {"text": "hi"}', "jsonl"),
        (None, b'\xef\xbb\xbf{"text": "hi"}', "jsonl"),
        (None, b"spam;buy now", "decidim"),
        (None, b"HAM;hello; how are you", "decidim"),
        (None, b"hello; how are you", "text"),
        ("-", b"just a message", "text"),
    ],
)
def test_detect_format_by_extension_then_first_line(path, first_line, fmt):
    assert detect_format(path, first_line) == fmt


def test_read_plain_text_numbers_records_and_flags_bad_lines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"hello there\r\n\n\xff\xfe\nlast line")
    records = _read(path)
    assert [r.id for r in records] == [1, 2, 3, 4]
    assert records[0].text == "hello there" and records[0].error is None
    assert records[1].error == "empty line"
    assert "UTF-8" in records[2].error
    assert records[3].text == "last line"


@pytest.mark.parametrize("name", ["in.jsonl", "in.txt"])
def test_leading_utf8_bom_is_dropped_so_the_first_record_survives(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "hello"}\n{"id": "b", "text": "bye"}\n')
    records = _read(path)
    assert [(r.id, r.text, r.error) for r in records] == [("a", "hello", None), ("b", "bye", None)]


def test_read_csv_detects_text_label_id_and_lang_columns():
    records = _read(SAMPLES / "messages.csv", need_label=True)
    assert len(records) == 64
    assert all(r.error is None for r in records)
    assert records[0].id == 1 and records[0].label == 1 and records[0].text.startswith("WIN a FREE iPhone")
    assert sum(r.label for r in records) == 32


def test_read_csv_with_bom_and_id_and_lang_columns(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("\ufeffID,Message,Lang\nx1,hello there,en\n,hola amigo,es\n", encoding="utf-8")
    records = _read(path, lang_field="Lang")
    assert [(r.id, r.text) for r in records] == [("x1", "hello there"), (2, "hola amigo")]
    assert [r.lang for r in records] == ["en", "es"]


def test_read_tsv_with_named_columns():
    records = _read(SAMPLES / "comments.tsv", text_field="msg", label_field="verdict")
    assert len(records) == 16
    assert [r.label for r in records[:2]] == [1, 1] and records[-1].label == 0


def test_read_csv_named_column_missing_raises_input_error():
    with pytest.raises(InputError, match="no column 'body'"):
        _read(SAMPLES / "messages.csv", text_field="body")


def test_read_jsonl_takes_id_text_and_label_fields():
    records = _read(SAMPLES / "messages.jsonl", need_label=True)
    assert [r.id for r in records[:3]] == ["m1", "m2", "m3"]
    assert [r.label for r in records[:2]] == [1, 0]


def test_read_jsonl_flags_broken_json_and_missing_text(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "ok"}\n{"text": \n{"body_html": "x"}\n"a string"\n{"text": ""}\n', encoding="utf-8")
    errors = [r.error for r in _read(path)]
    assert errors[0] is None
    assert "invalid JSON" in errors[1]
    assert "no text field" in errors[2]
    assert "not an object" in errors[3]
    assert errors[4] == "empty text"


def test_read_jsonl_with_unknown_label_flags_the_record(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a", "label": "spam"}\n{"text": "b", "label": "perhaps"}\n', encoding="utf-8")
    records = _read(path, need_label=True)
    assert records[0].label == 1 and records[0].error is None
    assert "unknown label" in records[1].error


def test_read_decidim_splits_label_and_text_at_first_semicolon():
    records = _read(SAMPLES / "decidim.txt")
    assert len(records) == 12
    assert records[0].label == 1 and records[0].text.startswith("Buy cheap essays")
    assert records[-1].label == 0


def test_read_decidim_keeps_semicolons_in_text(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("spam;buy; now; cheap\nham;hello\nnope;what\n", encoding="utf-8")
    records = _read(path)
    assert records[0].text == "buy; now; cheap"
    assert records[1].label == 0
    assert "unknown label" in records[2].error


def test_read_plain_file_with_default_label(tmp_path):
    records = _read(SAMPLES / "spam.txt", format="text", default_label=1)
    assert len(records) == 12 and {r.label for r in records} == {1}


def test_read_parquet_by_extension(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [7, 8], "text": ["hello", "buy now"], "label": ["ham", "spam"]}), path)
    records = _read(path, need_label=True)
    assert [(r.id, r.text, r.label) for r in records] == [(7, "hello", 0), (8, "buy now", 1)]


def test_over_long_line_is_an_error_record_and_the_next_line_survives(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"first\n" + b"z" * 3000 + b"\nnext\n")
    records = _read(path, max_bytes=1000)
    assert [r.id for r in records] == [1, 2, 3]
    assert "longer than 1000 bytes" in records[1].error
    assert records[2].text == "next"


def test_iter_lines_skips_a_10_mb_line_in_bounded_chunks_and_reads_the_next():
    stream = io.BytesIO(b"a\n" + b"x" * 10_000_000 + b"\nnext\nlast")
    assert list(iter_lines(stream, max_bytes=1_000_000)) == [b"a", None, b"next", b"last"]


def test_iter_lines_accepts_a_line_of_exactly_max_bytes():
    assert list(iter_lines(io.BytesIO(b"abcd\nabcde\n"), max_bytes=4)) == [b"abcd", None]


def test_unknown_format_is_a_usage_error():
    with pytest.raises(UsageError):
        _read(SAMPLES / "spam.txt", format="xml")


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        _read(tmp_path / "none.txt")


def test_lone_surrogates_from_json_escapes_become_error_records(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"text": "hi \\ud800 there"}\n{"text": "ok", "lang": "\\udfff"}\n'
        '{"text": "ok", "id": "a\\ud800"}\n{"text": "fine", "id": "b"}\n',
        encoding="utf-8",
    )
    recs = list(read_records(str(path)))
    assert [r.error.split(" ")[0] if r.error else None for r in recs] == ["text", "lang", "id", None]
    assert all("lone surrogate" in r.error for r in recs[:3])
    assert recs[2].id == 3  # an unwritable id is replaced by the line number
    assert recs[3].id == "b" and recs[3].text == "fine"


def _lines_as_blocks(path, opts):
    blocks = read_raw(str(path), opts, blocks=True)
    return [line for block in blocks for line in block_lines(block, opts.max_bytes)]


@pytest.mark.parametrize("seed", range(40))
def test_blocks_split_into_the_same_lines_as_line_reading(tmp_path, monkeypatch, seed):
    """classify's workers split blocks of a file into lines: the same numbered lines as reading it
    line by line, over long lines, CR LF, a BOM, blank lines and a missing last newline."""
    rng = random.Random(seed)
    monkeypatch.setattr(transport, "BLOCK_BYTES", rng.choice([1, 2, 5, 16, 64, 4096]))
    max_bytes = rng.choice([1, 3, 8, 20, 100])
    pieces = [b"\xef\xbb\xbf"] if rng.random() < 0.3 else []
    for _ in range(rng.randrange(0, 30)):
        size = rng.choice([0, 1, 2, max_bytes - 1, max_bytes, max_bytes + 1, max_bytes + 3, 3 * max_bytes, 250])
        pieces.append(bytes(rng.choice(b'ab {}"\xc3\xa9\r') for _ in range(max(0, size))))
        pieces.append(rng.choice([b"\n", b"\r\n", b"\n\n"]))
    if pieces and rng.random() < 0.5:
        pieces.pop()  # no newline at the end
    path = tmp_path / "in.txt"
    path.write_bytes(b"".join(pieces))
    opts = ReadOptions(format=rng.choice(["text", "jsonl", "auto"]), max_bytes=max_bytes)
    expected = list(read_raw(str(path), opts))
    assert _lines_as_blocks(path, opts) == expected


def test_a_10_mb_line_in_blocks_is_one_too_long_line_and_the_next_line_survives(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "a"}\n' + b"x" * 10_000_000 + b'\n{"text": "next"}\n')
    opts = ReadOptions(max_bytes=1_000_000)
    blocks = list(read_raw(str(path), opts, blocks=True))
    assert max(len(b.data) for b in blocks) <= 1_000_001
    lines = [line for block in blocks for line in block_lines(block, opts.max_bytes)]
    assert [(line.number, line.raw) for line in lines] == [(1, b'{"text": "a"}'), (2, None), (3, b'{"text": "next"}')]


def test_a_bom_before_an_over_long_first_line_does_not_count_towards_its_length():
    assert list(iter_lines(io.BytesIO(b"\xef\xbb\xbfabcd\nx"), max_bytes=4)) == [b"abcd", b"x"]
    assert list(iter_lines(io.BytesIO(b"\xef\xbb\xbfabcde\nx"), max_bytes=4)) == [None, b"x"]


def test_a_file_that_is_only_a_bom_has_no_lines_read_either_way(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf")
    opts = ReadOptions(format="text")
    assert list(read_raw(str(path), opts)) == []
    assert _lines_as_blocks(path, opts) == []
    path.write_bytes(b"\xef\xbb\xbf\n")  # a BOM, then one empty line
    assert [r.raw for r in read_raw(str(path), opts)] == [b""]
    assert [r.raw for r in _lines_as_blocks(path, opts)] == [b""]
