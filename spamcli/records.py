"""Reading input: plain lines, JSON lines, CSV/TSV, Parquet and Decidim's ``label;text`` files.

Every reader yields :class:`Record` objects, one per input record, in input order. A record that
cannot be read (invalid UTF-8, broken JSON, no text field, an over-long line, an empty message)
is still yielded, with ``error`` set, so a stream keeps one output line per input record.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, TextIO

from .errors import InputError, UsageError

FORMATS = ("auto", "text", "jsonl", "csv", "tsv", "parquet", "decidim")
TEXT_FIELDS = ("text", "content", "message", "body", "comment", "sms", "about", "bio", "description")
LABEL_FIELDS = ("label", "class", "is_spam", "spam", "category", "type")
ID_FIELDS = ("id", "comment_id", "message_id", "uuid")
DEFAULT_MAX_BYTES = 1_000_000
_SURROGATE_RE = re.compile("[\udc80-\udcff]")  # undecodable bytes under errors="surrogateescape"
# Any lone surrogate: JSON may spell one ("\ud800"); it is no character, cannot be written as UTF-8,
# and would break language identification and the output line.
_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_NOT_UNICODE = "is not valid Unicode (a lone surrogate such as a \\ud800 escape)"
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, as Windows tools write at the start of a file

SPAM_LABELS = {"spam", "1", "true", "yes", "y", "t", "junk", "scam", "fraud", "promo", "blocked"}
HAM_LABELS = {"ham", "0", "false", "no", "n", "f", "normal", "ok", "legit", "not_spam", "not spam"}


# the errors of a record with nothing in it: classify reports them; learn counts them as empty, not unreadable
EMPTY_LINE, EMPTY_TEXT = "empty line", "empty text"


@dataclass
class Record:
    """One input record. ``error`` is set when it could not be read; ``label``: 1 spam, 0 ham."""

    id: object
    text: str = ""
    lang: str | None = None
    label: int | None = None
    fields: dict = field(default_factory=dict)
    error: str | None = None


def parse_label(value: object) -> int:
    """Map spam/ham, 1/0, true/false (and a few synonyms) to 1/0; ValueError otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in SPAM_LABELS:
        return 1
    if text in HAM_LABELS:
        return 0
    raise ValueError(f"unknown label {value!r} (use spam/ham, 1/0 or true/false)")


def detect_format(path: str | None, first_line: bytes = b"") -> str:
    """Format from the file extension, else from the first line (``{`` means JSON lines)."""
    if path and path != "-":
        suffix = "".join(Path(path).suffixes[-2:]).lower()
        for ext, fmt in (
            (".jsonl", "jsonl"),
            (".ndjson", "jsonl"),
            (".json", "jsonl"),
            (".csv", "csv"),
            (".tsv", "tsv"),
            (".tab", "tsv"),
            (".parquet", "parquet"),
            (".pq", "parquet"),
        ):
            if suffix.endswith(ext):
                return fmt
    stripped = first_line.removeprefix(BOM).lstrip()
    if stripped.startswith(b"{"):
        return "jsonl"
    head = stripped.split(b";", 1)[0].lower()
    if b";" in stripped and head in (b"spam", b"ham"):
        return "decidim"
    return "text"


# ---- bounded line reading -----------------------------------------------------------------
def iter_lines(stream: BinaryIO, max_bytes: int = DEFAULT_MAX_BYTES, strip_bom: bool = True) -> Iterator[bytes | None]:
    """Lines without their newline; ``None`` for a line longer than ``max_bytes`` (skipped in
    bounded chunks, so a 10 MB line never sits in memory whole). A UTF-8 BOM that starts the
    stream is dropped (``strip_bom``) and does not count towards the first line's length."""
    first = strip_bom
    while True:
        line = stream.readline(max_bytes + 1 + (len(BOM) if first else 0))
        if not line:
            return
        if first:
            first = False
            line = line.removeprefix(BOM)
            if not line:  # the file was just a BOM: no line, as the block reader sees it
                return
        ended = line.endswith(b"\n")
        if len(line) - ended > max_bytes:
            while not ended:  # discard the rest of the over-long line
                rest = stream.readline(1 << 20)
                ended = not rest or rest.endswith(b"\n")
            yield None
            continue
        yield line.rstrip(b"\r\n")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8")


def _too_long(max_bytes: int) -> str:
    return f"record longer than {max_bytes} bytes (raise --max-bytes to accept it)"


def _pick(fields: dict, wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    """The key of ``fields`` to use: ``wanted`` if given, else the first candidate present
    (case-insensitive)."""
    if wanted:
        return wanted if wanted in fields else None
    return _pick_candidate(tuple(fields), candidates)


@lru_cache(maxsize=256)
def _pick_candidate(keys: tuple, candidates: tuple[str, ...]) -> str | None:
    """:func:`_pick` for one set of keys; cached, since every record of a file has the same keys."""
    lower = {str(k).lower(): k for k in keys}
    for name in candidates:
        if name in lower:
            return lower[name]
    return None


@dataclass
class ReadOptions:
    """How to find text, id, language and label in structured records."""

    format: str = "auto"
    text_field: str | None = None
    id_field: str | None = None
    label_field: str | None = None
    lang_field: str | None = "lang"
    need_label: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    default_label: int | None = None  # for --spam/--ham plain files
    allow_empty_text: bool = False  # profiles: an empty or missing bio is a valid record


def record_from_fields(fields: dict, number: int, opts: ReadOptions) -> Record:
    """Build a Record from a dict (a JSON object or a CSV row)."""
    id_key = _pick(fields, opts.id_field, ID_FIELDS)
    rec_id = fields.get(id_key) if id_key else number
    if rec_id is None or rec_id == "":
        rec_id = number
    if not isinstance(rec_id, (str, int, float)) or isinstance(rec_id, bool):  # echoed: keep it a scalar
        return Record(id=number, fields=fields, error="id is not a string or a number")
    # the id is echoed in the output: a lone surrogate would make it unwritable
    if isinstance(rec_id, str) and not rec_id.isascii() and _LONE_SURROGATE_RE.search(rec_id):
        return Record(id=number, fields=fields, error=f"id {_NOT_UNICODE}")
    text_key = _pick(fields, opts.text_field, TEXT_FIELDS)
    if text_key is None and opts.allow_empty_text:
        text_key = ""
    if text_key is None:
        want = opts.text_field or "/".join(TEXT_FIELDS[:4])
        return Record(id=rec_id, fields=fields, error=f"no text field ({want})")
    text = fields.get(text_key)
    if isinstance(text, (list, dict, bool)):
        return Record(id=rec_id, fields=fields, error=f"{text_key} is not text (a JSON {type(text).__name__})")
    text = "" if text is None else str(text)  # a number is read as its digits
    lang = None
    if opts.lang_field and opts.lang_field in fields:
        value = str(fields.get(opts.lang_field) or "").strip()
        lang = value if value and value != "und" else None
    rec = Record(id=rec_id, text=text, lang=lang, fields=fields)
    if opts.need_label or opts.label_field:
        label_key = _pick(fields, opts.label_field, LABEL_FIELDS)
        if label_key is None:
            rec.error = f"no label field ({opts.label_field or '/'.join(LABEL_FIELDS[:3])})"
            return rec
        try:
            rec.label = parse_label(fields.get(label_key))
        except ValueError as exc:
            rec.error = str(exc)
            return rec
    # (ASCII text holds no surrogate: the usual record skips both searches)
    if not text.isascii() and _LONE_SURROGATE_RE.search(text):
        rec.error = "invalid UTF-8" if _SURROGATE_RE.search(text) else f"text {_NOT_UNICODE}"
    elif lang and not lang.isascii() and _LONE_SURROGATE_RE.search(lang):
        rec.error = f"{opts.lang_field} {_NOT_UNICODE}"  # a given language is echoed as "lang"
    elif not text.strip() and not opts.allow_empty_text:
        rec.error = EMPTY_TEXT
    return rec


_INVALID = "is not valid UTF-8 or Unicode (an undecodable byte or a lone surrogate such as \\ud800)"


def unwritable_field(rec: Record) -> str | None:
    """The error of a record whose input fields cannot be echoed, else None.

    Where input fields are passed through to the output (profiles), a field or key holding a lone
    surrogate (a ``\\ud800`` JSON escape, or an undecodable byte read under ``surrogateescape``)
    cannot be written, so the record is an error record instead, as with a bad ``text``."""
    bad = _unencodable_field(rec.fields)
    return None if bad is None else f"{bad} {_INVALID}"


def _unencodable_field(fields: dict) -> str | None:
    """The name of the first field (or key) that could not be written as UTF-8, else None."""

    def bad(value) -> bool:  # iterative: a JSON value may be nested nearly as deep as the parser allows
        todo = [value]
        while todo:
            value = todo.pop()
            if isinstance(value, str):
                if not value.isascii() and _LONE_SURROGATE_RE.search(value):
                    return True
            elif isinstance(value, dict):
                todo.extend(value.keys())
                todo.extend(value.values())
            elif isinstance(value, list):
                todo.extend(value)
        return False

    for key, value in fields.items():
        if bad(key) or bad(value):
            return key.encode("utf-8", "backslashreplace").decode("ascii") if isinstance(key, str) else str(key)
    return None


def parse_line(fmt: str, number: int, raw: bytes | None, opts: ReadOptions) -> Record:
    """The Record of line ``number`` of a plain-text (``fmt="text"``) or JSON-lines (``"jsonl"``)
    input, or of either (``"auto"``: decided per line), as :func:`iter_lines` gave it (``raw``
    None: too long)."""
    if raw is None:
        return Record(id=number, error=_too_long(opts.max_bytes))
    if fmt == "auto":  # decided per line: a line that opens a JSON object is a record, others are text
        fmt = "jsonl" if raw.removeprefix(BOM).lstrip().startswith(b"{") else "text"
    if fmt == "text":
        try:
            text = _decode(raw)
        except UnicodeDecodeError as exc:
            return Record(id=number, error=f"invalid UTF-8 at byte {exc.start}")
        if not text.strip():
            return Record(id=number, error=EMPTY_LINE)
        return Record(id=number, text=text, label=opts.default_label)
    try:
        obj = json.loads(_decode(raw))
    except UnicodeDecodeError as exc:
        return Record(id=number, error=f"invalid UTF-8 at byte {exc.start}")
    except json.JSONDecodeError as exc:
        if not raw.strip():
            return Record(id=number, error=EMPTY_LINE)
        return Record(id=number, error=f"invalid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return Record(id=number, error="invalid JSON: nested too deeply")
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        return Record(id=number, error=f"invalid JSON: {str(exc).splitlines()[0][:100]}")
    if not isinstance(obj, dict):
        return Record(id=number, error="JSON line is not an object")
    return record_from_fields(obj, number, opts)


def _read_decidim(stream: BinaryIO, opts: ReadOptions) -> Iterator[Record]:
    """Decidim's dataset format: no header, ``label;text``, split at the first ``;``."""
    for number, raw in enumerate(iter_lines(stream, opts.max_bytes), start=1):
        if raw is None:
            yield Record(id=number, error=_too_long(opts.max_bytes))
            continue
        try:
            line = _decode(raw)
        except UnicodeDecodeError as exc:
            yield Record(id=number, error=f"invalid UTF-8 at byte {exc.start}")
            continue
        if not line.strip():
            yield Record(id=number, error=EMPTY_LINE)
            continue
        label_text, sep, text = line.partition(";")
        if not sep:
            yield Record(id=number, error="expected 'label;text'")
            continue
        try:
            label = parse_label(label_text)
        except ValueError as exc:
            yield Record(id=number, error=str(exc))
            continue
        if not text.strip():
            yield Record(id=number, error=EMPTY_TEXT)
            continue
        yield Record(id=number, text=text, label=label)


_START, _UNQUOTED, _QUOTED, _QUOTE_SEEN = range(4)
_TERMINATORS = ("\r\n", "\n", "\r")


def csv_records(stream: TextIO, delimiter: str, max_chars: int, chunk: int = 65536) -> Iterator[str | None]:
    """The logical records of a CSV/TSV text stream (read with ``newline=""``), each as its text.

    Python's csv module raises on a field over its size limit but then resumes *inside* that field,
    so a long quoted field holding newlines came back as many forged rows. Here record boundaries
    are found first, with the quoting rules of csv's default dialect (a quote opens a quoted field
    only at the start of a field, ``""`` inside one is a quote, a newline inside one is text, text
    after a closing quote continues the field), reading at most ``chunk`` characters at a time. A
    record longer than ``max_chars`` is read to its real end without being kept and yields None;
    the next record starts where it really ends.
    """
    special = re.compile('["' + re.escape(delimiter) + "]")
    carry = ""

    def readline(size: int) -> str:
        """``stream.readline(size)``, but a CR cut off at the size limit gets the LF after it."""
        nonlocal carry
        if carry == "\r":
            line, carry = carry, ""
        else:
            line, carry = carry + stream.readline(size), ""
        if line.endswith("\r") and (len(line) >= size or line == "\r"):
            carry = stream.read(1)
            if carry == "\n":
                line, carry = line + carry, ""
        return line

    while True:
        state, expect = _START, 0  # expect: where the character that decides START/QUOTE_SEEN is
        parts: list[str] | None = []
        size = 0
        ended = False
        while not ended:
            line = readline(chunk)
            if not line:
                break
            if not size and '"' not in line and line[-1] in "\n\r" and len(line) <= max_chars:
                yield line  # the usual row: one whole line, no quotes
                break
            size += len(line)
            if parts is not None:
                parts.append(line)
                if size > max_chars:
                    parts = None
            body = line
            for term in _TERMINATORS:
                if line.endswith(term):
                    body = line[: -len(term)]
                    break
            for m in special.finditer(body):
                p, ch = m.start(), m.group()
                if state in (_START, _QUOTE_SEEN) and p > expect:  # another character came first
                    state = _UNQUOTED
                if state == _QUOTED:
                    if ch == '"':
                        state, expect = _QUOTE_SEEN, p + 1
                elif state == _UNQUOTED:
                    if ch != '"':
                        state, expect = _START, p + 1
                else:  # _START or _QUOTE_SEEN, and this is the very next character
                    state, expect = (_QUOTED, expect) if ch == '"' else (_START, p + 1)
            if state in (_START, _QUOTE_SEEN) and len(body) > expect:
                state = _UNQUOTED
            expect -= len(body)  # positions in the next chunk of the same physical line
            ended = len(body) < len(line) and state != _QUOTED  # a newline outside quotes
        if size == 0:
            if not line:
                return
            continue
        yield None if parts is None else "".join(parts)


def _read_csv(stream: BinaryIO, opts: ReadOptions, delimiter: str) -> Iterator[Record]:
    csv.field_size_limit(max(opts.max_bytes, 131072))
    text_stream = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
    records = csv_records(text_stream, delimiter, opts.max_bytes)

    def parse(record: str) -> list[str]:
        return next(csv.reader([record], delimiter=delimiter), [])

    first = next(records, "")
    if first is None:
        raise InputError(f"cannot read the CSV header: {_too_long(opts.max_bytes)}")
    if not first:
        return
    try:
        header = parse(first)
    except csv.Error as exc:
        raise InputError(f"cannot read the CSV header: {exc}") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    wanted = opts.text_field
    if wanted and wanted not in header:
        raise InputError(f"no column {wanted!r} in the header (columns: {', '.join(header)})")
    if opts.label_field and opts.label_field not in header:
        raise InputError(f"no column {opts.label_field!r} in the header (columns: {', '.join(header)})")
    for number, record in enumerate(records, start=1):
        if record is None:
            yield Record(id=number, error=_too_long(opts.max_bytes))
            continue
        try:
            row = parse(record)
        except csv.Error as exc:
            yield Record(id=number, error=f"unreadable CSV row: {exc}")
            continue
        if not row:
            yield Record(id=number, error=EMPTY_LINE)
            continue
        yield record_from_fields(dict(zip(header, row)), number, opts)


def _read_parquet(path: str, opts: ReadOptions) -> Iterator[Record]:
    open_binary(path).close()  # a missing or unreadable file says so, before the extra is asked for
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("reading Parquet needs the parquet extra: pip install 'spamcli[parquet]'") from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"cannot read Parquet file {path}: {exc}") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for fields in batch.to_pylist():
            number += 1
            yield record_from_fields({k: _plain(v) for k, v in fields.items()}, number, opts)


def _plain(value: object) -> object:
    """A Parquet value as JSON data: timestamps, dates and times in ISO 8601, decimals and
    durations as strings, bytes as text when they are UTF-8 (else hex), lists and maps inside."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)  # Decimal, timedelta, and whatever else pyarrow gives


def open_binary(path: str | None) -> BinaryIO:
    """``-`` or ``None`` is stdin; a missing or unreadable file raises InputError."""
    if path in (None, "-"):
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by open_input
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"is a directory, not a file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror}") from None


Source = str | os.PathLike | BinaryIO | None
"""What an input is read from: a path, ``-`` or None for stdin, or an open binary stream."""
LINE_FORMATS = ("text", "jsonl", "auto")  # read line by line ("auto": each line decides)


def is_stream(source: Source) -> bool:
    """Whether ``source`` is an open stream (read as it is, and not closed here), not a name."""
    return hasattr(source, "read")


@contextmanager
def open_input(source: Source, opts: ReadOptions) -> Iterator[tuple[str, BinaryIO | None]]:
    """The format ``source`` is to be read in, and its stream (None for Parquet, which is read by
    its path), closed on exit unless it is stdin or a stream given open. A format of
    :data:`LINE_FORMATS` is read with :func:`iter_lines`; "auto" is then decided line by line."""
    if opts.format not in FORMATS:
        raise UsageError(f"unknown format {opts.format!r}; choose from {', '.join(FORMATS)}")
    fmt = opts.format
    named = not is_stream(source) and source not in (None, "-")
    if fmt == "auto" and named:
        fmt = detect_format(str(source))
        if fmt == "text":
            fmt = "auto"  # sniff the content below
        elif fmt == "csv":
            fmt = "auto-csv"  # Decidim ships its label;text files as .csv: sniff the first line
    if fmt == "parquet":
        if not named:
            raise UsageError("Parquet cannot be read from stdin; give a file")
        yield fmt, None
        return
    stream = source if is_stream(source) else open_binary(source)
    try:
        if fmt == "auto-csv":
            fmt = "csv"
            if stream.seekable():  # the CSV reader needs the real file object, so rewind after a look
                fmt = "decidim" if detect_format(None, stream.readline(65536)) == "decidim" else "csv"
                stream.seek(0)
        if fmt == "auto" and stream.seekable():  # a file is one data set: Decidim's label;text by its first line
            if detect_format(None, stream.readline(65536)) == "decidim":
                fmt = "decidim"
            stream.seek(0)
        yield fmt, stream
    finally:
        if stream is not sys.stdin.buffer and stream is not source:
            stream.close()


def read_format(fmt: str, stream: BinaryIO | None, source: Source, opts: ReadOptions) -> Iterator[Record]:
    """The records of an input :func:`open_input` opened, in its format ``fmt``."""
    if fmt == "parquet":
        yield from _read_parquet(str(source), opts)
    elif fmt in LINE_FORMATS:
        for number, raw in enumerate(iter_lines(stream, opts.max_bytes), start=1):
            yield parse_line(fmt, number, raw, opts)
    elif fmt == "decidim":
        yield from _read_decidim(stream, opts)
    else:
        yield from _read_csv(stream, opts, "," if fmt == "csv" else "\t")


def read_records(source: Source, opts: ReadOptions | None = None) -> Iterator[Record]:
    """All records of a file (or stdin for ``-``/None, or an open binary stream), in order, in the
    given or detected format."""
    opts = opts or ReadOptions()
    with open_input(source, opts) as (fmt, stream):
        yield from read_format(fmt, stream, source, opts)
