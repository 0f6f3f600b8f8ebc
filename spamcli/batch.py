"""Batch output for cron jobs: ``classify --output FILE --only spam,unsure`` and the label summary.

:func:`open_sink` writes output dicts as CSV (a path ending in ``.csv``) or JSON lines (anything
else), to a temporary file beside the target that replaces it only when the run finishes, so a
job reading ``flagged.csv`` never sees half a file (see outfile.py for links, devices and pipes).
:class:`LabelCounts` tallies labels for the summary printed at the end.

JSON lines are strict JSON: a non-finite number is written as ``null`` and U+2028, U+2029 and
U+0085 (line breaks to JavaScript and to some line-oriented tools) are escaped. CSV holds every
column any record had (rows are spooled until the end, so a column first seen late is not
dropped), the scoring columns first, and neutralises spreadsheet formulas (below).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path
from typing import TextIO

from .errors import InputError, UsageError

LABELS = ("spam", "unsure", "ham", "error")
_LEADING = ("id", "score", "label", "signals", "reason", "text_score", "lang", "model", "error")


def parse_only(value: str | None) -> set[str] | None:
    """``spam,unsure`` -> {"spam", "unsure"}; None keeps everything."""
    if not value:
        return None
    wanted = {v.strip().lower() for v in value.split(",") if v.strip()}
    unknown = wanted - set(LABELS)
    if unknown or not wanted:
        raise UsageError(f"--only takes a comma-separated list of {', '.join(LABELS)} (got {value!r})")
    return wanted


def label_of(item: dict) -> str:
    return "error" if "error" in item else str(item.get("label"))


class LabelCounts(Counter):
    """Records per label (``error``: records that could not be read)."""

    def add(self, items: list[dict]) -> None:
        self.update(label_of(item) for item in items)

    @property
    def seen(self) -> int:
        return sum(self.values())

    @property
    def usable(self) -> int:
        """Records that could be read and scored."""
        return self.seen - self.get("error", 0)

    def check(self) -> None:
        """InputError (exit code 3) unless the input held a record that could be scored."""
        if self.seen == 0:
            raise InputError("no records in the input")
        if self.usable == 0:
            raise InputError(f"none of the {self.seen} records could be read (see the error records)")

    def summary(self) -> str:
        total = sum(self.values())
        parts = ", ".join(f"{self.get(label, 0)} {label}" for label in LABELS if self.get(label, 0) or label != "error")
        return f"{total} records: {parts}"


_encode_any = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode  # json.dumps(item, ensure_ascii=False)
_encode_str = json.encoder.encode_basestring  # a str as a JSON string, as that encoder writes it
_SCORE_KEYS = ("id", "score", "label", "lang", "model")
_FINITE = (float("-inf"), float("inf"))


def json_line(item: dict) -> str:
    """``json.dumps(item, ensure_ascii=False)``, the same characters, written directly for the usual
    scored record ``{"id", "score", "label", "lang", "model"}`` (a quarter of the encoder's time);
    any other item goes through the encoder. Strict JSON (see module docstring)."""
    if tuple(item) == _SCORE_KEYS:
        rec_id, score = item["id"], item["score"]
        label, lang, model = item["label"], item["lang"], item["model"]
        id_type = type(rec_id)
        if (
            (id_type is int or id_type is str)
            and type(score) is float
            and _FINITE[0] < score < _FINITE[1]
            and type(label) is str
            and type(lang) is str
            and type(model) is str
        ):
            line = (
                f'{{"id": {rec_id if id_type is int else _encode_str(rec_id)}, "score": {score!r}, '
                f'"label": {_encode_str(label)}, "lang": {_encode_str(lang)}, "model": {_encode_str(model)}}}'
            )
            return line if line.isascii() else _escape_separators(line)
    try:
        line = _encode_any(item)
    except ValueError:  # NaN or infinity: JSON has no such numbers
        line = _encode_any(_finite(item))
    return line if line.isascii() else _escape_separators(line)


_SEPARATORS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}


def _escape_separators(line: str) -> str:
    """U+2028/U+2029/U+0085 as JSON escapes: they can only occur inside JSON strings here."""
    for char, escape in _SEPARATORS.items():
        if char in line:
            line = line.replace(char, escape)
    return line


def _finite(value: object) -> object:
    """``value`` with every non-finite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class JsonLinesSink:
    """JSON lines on a stream (stdout), flushed after every batch; what is written stays written."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, items: list[dict]) -> None:
        self.stream.write("".join([json_line(item) + "\n" for item in items]))
        self.stream.flush()

    def commit(self) -> None:
        """Nothing to do: each batch was written and flushed."""

    def abort(self) -> None:
        """Nothing to undo on a stream."""


# Columns a scored record has, always in the CSV header (in this order) whatever the data.
_SCORING_COLUMNS = ("id", "score", "label", "lang", "model", "error")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CsvSink:
    """CSV: the scoring columns first, then every other field any record had, in first-seen order.

    Rows are spooled (as JSON lines in a temporary file, not in memory) until :meth:`finish`, which
    writes the header and then the rows: the header cannot depend on which records came first.
    A string cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a CR is prefixed with ``'`` so a
    spreadsheet shows it as text instead of running it as a formula (OWASP's advice), unless
    ``raw`` (``classify --csv-raw``).
    """

    def __init__(self, stream: TextIO, raw: bool = False):
        self.stream = stream
        self.raw = raw
        self.keys: dict[str, None] = {}
        import tempfile  # here: JSON lines to stdout need none

        self.spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed in finish/close

    def write(self, items: list[dict]) -> None:
        for item in items:
            self.keys.update(dict.fromkeys(item))
            self.spool.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")

    def finish(self) -> None:
        keys = list(self.keys)
        leading = [k for k in _LEADING if k in self.keys or k in _SCORING_COLUMNS]
        fields = leading + [k for k in keys if k not in leading]
        writer = csv.DictWriter(self.stream, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        self.spool.seek(0)
        for line in self.spool:
            writer.writerow({k: self._cell(v) for k, v in json.loads(line).items()})
        self.close()

    def close(self) -> None:
        self.spool.close()

    def _cell(self, value: object) -> object:
        if isinstance(value, list):
            value = ";".join(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in value)
        elif isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False)
        if not self.raw and isinstance(value, str) and value.startswith(_FORMULA_START):
            return "'" + value
        return value


class FileSink:
    """A CSV or JSON-lines sink on an :class:`~spamcli.outfile.OutputFile`: the data becomes
    ``path``'s on :meth:`commit`, and :meth:`abort` leaves ``path`` as it was."""

    def __init__(self, path: Path, csv_raw: bool = False):
        from .outfile import OutputFile  # only for --output

        self.path = Path(path)
        self.out = OutputFile(self.path, "--output")
        is_csv = self.path.suffix.lower() == ".csv"
        self.sink = CsvSink(self.out.stream, raw=csv_raw) if is_csv else JsonLinesSink(self.out.stream)

    def write(self, items: list[dict]) -> None:
        self.sink.write(items)

    def commit(self) -> None:
        if isinstance(self.sink, CsvSink):
            self.sink.finish()
        self.out.commit()

    def abort(self) -> None:
        if isinstance(self.sink, CsvSink):
            self.sink.close()
        self.out.abort()


def open_sink(path: Path, csv_raw: bool = False) -> FileSink:
    return FileSink(path, csv_raw=csv_raw)
