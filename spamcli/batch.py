"""Batch output for cron jobs: ``classify --output FILE --only spam,unsure`` and the label summary.

:func:`open_sink` writes output dicts as CSV (a path ending in ``.csv``) or JSON lines (anything
else), to a temporary file beside the target that replaces it only when the run finishes, so a
job reading ``flagged.csv`` never sees half a file. :class:`LabelCounts` tallies labels for the
summary printed at the end.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import TextIO

from . import tempfiles
from .errors import UsageError

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
    def add(self, items: list[dict]) -> None:
        self.update(label_of(item) for item in items)

    def summary(self) -> str:
        total = sum(self.values())
        parts = ", ".join(f"{self.get(label, 0)} {label}" for label in LABELS if self.get(label, 0) or label != "error")
        return f"{total} records: {parts}"


_encode_any = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(item, ensure_ascii=False)
_encode_str = json.encoder.encode_basestring  # a str as a JSON string, as that encoder writes it
_SCORE_KEYS = ("id", "score", "label", "lang", "model")
_FINITE = (float("-inf"), float("inf"))


def json_line(item: dict) -> str:
    """``json.dumps(item, ensure_ascii=False)``, the same characters, written directly for the usual
    scored record ``{"id", "score", "label", "lang", "model"}`` (a quarter of the encoder's time);
    any other item goes through the encoder."""
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
            return (
                f'{{"id": {rec_id if id_type is int else _encode_str(rec_id)}, "score": {score!r}, '
                f'"label": {_encode_str(label)}, "lang": {_encode_str(lang)}, "model": {_encode_str(model)}}}'
            )
    return _encode_any(item)


class JsonLinesSink:
    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, items: list[dict]) -> None:
        self.stream.write("".join([json_line(item) + "\n" for item in items]))
        self.stream.flush()


class CsvSink:
    """CSV with the scoring columns first, then the input's other fields (from the first record)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.writer: csv.DictWriter | None = None

    def write(self, items: list[dict]) -> None:
        if not items:
            return
        if self.writer is None:
            keys = list(dict.fromkeys(k for item in items for k in item))
            fields = [k for k in _LEADING if k in keys] + [k for k in keys if k not in _LEADING]
            if "error" not in fields:
                fields.append("error")
            self.writer = csv.DictWriter(self.stream, fieldnames=fields, extrasaction="ignore")
            self.writer.writeheader()
        for item in items:
            self.writer.writerow({k: _cell(v) for k, v in item.items()})
        self.stream.flush()


def _cell(value: object) -> object:
    if isinstance(value, list):
        return ";".join(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value


class FileSink:
    """A CSV or JSON-lines sink on a temporary file that becomes ``path`` on :meth:`commit`.

    The temporary file is locked while it is written (see tempfiles.py): one that a killed run
    (SIGKILL) left beside ``path`` is removed by the next run writing ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        directory = self.path.parent or Path(".")
        tempfiles.remove_stale(directory, re.compile(re.escape(self.path.name)))
        fd, self.tmp = tempfiles.create(directory / self.path.name)
        self.stream = os.fdopen(fd, "w", encoding="utf-8", newline="")
        is_csv = self.path.suffix.lower() == ".csv"
        self.sink = CsvSink(self.stream) if is_csv else JsonLinesSink(self.stream)

    def write(self, items: list[dict]) -> None:
        self.sink.write(items)

    def commit(self) -> None:
        self.stream.flush()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)
        os.replace(self.tmp, self.path)  # before close, which releases the lock
        self.stream.close()

    def abort(self) -> None:
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)
        self.stream.close()


def open_sink(path: Path) -> FileSink:
    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"--output directory does not exist: {path.parent}")
    return FileSink(path)
